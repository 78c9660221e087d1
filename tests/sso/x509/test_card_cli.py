"""``iam ca …`` and ``iam card …``: uploading a third-party CA (critical audit), checking a
certificate, AD mapping strings, bindings and account requests from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam.cli import Ctx, cli
from iam.directory.base import NewUser
from iam.models.audit import AuditEvent
from iam.services import Services
from sso.x509.models import UploadedCA
from tests.sso.x509.pki import CardPki, Responder


@pytest.fixture
def run(card_services: Any, responder: Responder) -> Any:
    import sso

    sso.register(cli)
    svc: Services = card_services()

    def invoke(*args: str) -> Any:
        ctx = Ctx()
        ctx._settings = svc.settings
        ctx._services = svc
        return CliRunner().invoke(cli, list(args), obj=ctx, catch_exceptions=False)

    invoke.services = svc  # type: ignore[attr-defined]
    return invoke


def test_upload_a_third_party_ca_is_audited_and_trusted(run: Any, pki: CardPki, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pem"
    foreign.write_bytes(pki.foreign_root.pem)
    card = tmp_path / "card.pem"
    card.write_bytes(pki.issued["foreign"].pem)
    before = run("card", "check", str(card), "--json")
    assert before.exit_code == 1 and json.loads(before.output)["refused"] == "untrusted"
    added = run("ca", "add", str(foreign))
    assert added.exit_code == 0 and "Trusted" in added.output
    assert "Already trusted" in run("ca", "add", str(foreign)).output
    svc = run.services
    with svc.transaction() as s:
        assert s.scalar(select(UploadedCA)) is not None
        ev = s.scalar(select(AuditEvent).where(AuditEvent.event == "card.ca_added"))
        assert ev is not None and ev.severity == "critical" and ev.actor.startswith("cli")
    svc.extensions.pop("sso.x509.validator", None)  # a fresh process
    after = json.loads(run("card", "check", str(card), "--json").output)
    # the chain is trusted now; this CA publishes no CRL or OCSP, so fail-closed refuses next
    assert after["refused"] == "revocation_unknown"
    assert run("ca", "reload").output.strip() == "2 trust anchor(s), 1 intermediate(s)."
    listed = json.loads(run("ca", "list", "--json").output)
    assert {r["source"] for r in listed} == {"folder", "uploaded"}
    sha = next(r["sha256"] for r in listed if r["source"] == "uploaded")
    assert run("ca", "remove", sha).exit_code == 0


def test_a_certificate_that_is_not_a_ca_is_refused(run: Any, pki: CardPki, tmp_path: Path) -> None:
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(pki.issued["good"].pem)
    out = run("ca", "add", str(leaf))
    assert out.exit_code == 1 and "is not a CA certificate" in out.output
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert "not a certificate" in run("ca", "add", str(junk)).output


def test_check_bind_list_revoke(run: Any, pki: CardPki, tmp_path: Path) -> None:
    svc = run.services
    user = svc.directory.create_user(NewUser(username="dora", enabled=True))
    card = tmp_path / "card.pem"
    card.write_bytes(pki.issued["serial_only"].pem)
    assert json.loads(run("card", "check", str(card), "--json").output)["refused"] == "no_account"
    bound = json.loads(run("card", "bind", "dora", str(card), "--match", "issuer_serial", "--json").output)
    assert bound["sub"] == user.id and bound["match"] == "issuer_serial"
    checked = json.loads(run("card", "check", str(card), "--json").output)
    assert checked["account"] == "dora" and checked["rule"] == "binding"
    assert run("card", "bind", "dora", str(card)).exit_code == 1  # already bound
    listed = json.loads(run("card", "bindings", "--user", "dora", "--json").output)
    assert [b["id"] for b in listed] == [bound["id"]]
    assert run("card", "revoke", bound["id"], "--reason", "card lost").exit_code == 0
    assert json.loads(run("card", "bindings", "--json").output) == []
    revoked = run("card", "revoke", bound["id"], "--reason", "again")
    assert revoked.exit_code == 1 and "no such active card binding" in revoked.output


def test_ad_mapping_strings(run: Any, pki: CardPki, tmp_path: Path) -> None:
    card = tmp_path / "card.pem"
    card.write_bytes(pki.issued["good"].pem)
    lines = run("card", "ad-mapping", str(card)).output.splitlines()
    serial = pki.issued["good"].cert.serial_number
    reversed_hex = serial.to_bytes((serial.bit_length() + 7) // 8, "big")[::-1].hex()
    assert f"X509:<I>C=RS,O=Test City,CN=Test Issuing CA<SR>{reversed_hex}" in lines
    assert any(line.startswith("X509:<SKI>") for line in lines)
    assert any(line.startswith("X509:<SHA1-PUKEY>") for line in lines)
    assert not any("<S>" in line or "<RFC822>" in line for line in lines)  # weak forms never
