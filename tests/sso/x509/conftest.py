"""Fixtures of the card tests: one test PKI with its CRL server and OCSP responder per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iam.services import Services
from tests.conftest import make_settings
from tests.sso.x509.pki import CardPki, Responder, make_pki


@pytest.fixture(scope="session")
def pki_and_responder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CardPki, Responder, dict[str, Path]]]:
    pki, responder = make_pki()
    files = pki.write(tmp_path_factory.mktemp("pki"))
    yield pki, responder, files
    responder.stop()


@pytest.fixture
def pki(pki_and_responder: tuple[CardPki, Responder, dict[str, Path]]) -> CardPki:
    return pki_and_responder[0]


@pytest.fixture
def responder(pki_and_responder: tuple[CardPki, Responder, dict[str, Path]]) -> Iterator[Responder]:
    r = pki_and_responder[1]
    r.down = r.ocsp_down = r.bad_nonce = False
    r.delay, r.delegate = 0.0, None
    r.ocsp_requests = r.crl_requests = 0
    yield r
    r.down = r.ocsp_down = r.bad_nonce = False
    r.delay, r.delegate = 0.0, None


@pytest.fixture
def pki_files(pki_and_responder: tuple[CardPki, Responder, dict[str, Path]]) -> dict[str, Path]:
    return pki_and_responder[2]


@pytest.fixture
def card_services(services: Services, pki_files: dict[str, Path]) -> Iterator[Any]:
    """``make(**x509)``: services on the same storage with card sign-in enabled and the test
    PKI's CA folder (nginx at 10.9.9.9 is the trusted proxy)."""
    made: list[Services] = []

    def make(**x509: Any) -> Services:
        base = services.settings
        values: dict[str, Any] = {"enabled": True, "trust_dir": str(pki_files["ca"]), **x509}
        svc = Services(
            make_settings(
                base.var_dir, base.database.url, x509=values, server={"trusted_proxies": ["10.9.9.9"]}
            )
        )
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.dispose()
