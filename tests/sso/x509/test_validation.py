"""R-MFA-1: chain validation against the trust anchors, dates, key usage, EKU, revocation by OCSP
and CRL with caching and fail-open/closed — each bad certificate refused with a clear reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from iam import clock
from iam.services import Services
from sso.x509.certs import CertificateRefused
from sso.x509.service import CardValidator
from tests.conftest import make_settings
from tests.sso.x509.pki import CardPki, Responder


def validator(services: Services, pki_files: dict[str, Path], **x509: Any) -> CardValidator:
    values: dict[str, Any] = {"enabled": True, "trust_dir": str(pki_files["ca"]), **x509}
    settings = make_settings(services.settings.var_dir, services.settings.database.url, x509=values)
    return CardValidator(settings, services.reader)


def refused(v: CardValidator, certs: list[Any]) -> CertificateRefused:
    with pytest.raises(CertificateRefused) as info:
        v.validate(certs)
    return info.value


def test_good_certificate_passes_with_its_path(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    v = validator(sqlite_services, pki_files)
    checked = v.validate([pki.issued["good"].cert])
    assert [c.subject for c in checked.path] == [
        pki.issued["good"].cert.subject,
        pki.inter.cert.subject,
        pki.root.cert.subject,
    ]
    assert checked.facts.upns == ("card.user@example.test",)
    assert checked.amr == ["sc"]
    assert responder.ocsp_requests == 2  # the card and the issuing CA, both by OCSP
    assert checked.warnings == []


def test_hardware_policy_gives_hwk(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    checked = validator(sqlite_services, pki_files).validate([pki.issued["hardware"].cert])
    assert checked.amr == ["sc", "hwk"]


@pytest.mark.parametrize(
    ("name", "reason", "words"),
    [
        ("expired", "expired", "expired"),
        ("revoked", "revoked", "revoked"),
        ("foreign", "untrusted", "not issued by a trusted authority"),
        ("wrong_eku", "wrong_eku", "not meant for signing in"),
        ("no_signature", "wrong_key_usage", "digitalSignature"),
    ],
)
def test_bad_certificates_are_refused_with_a_reason(
    sqlite_services: Services,
    pki: CardPki,
    pki_files: dict[str, Path],
    responder: Responder,
    name: str,
    reason: str,
    words: str,
) -> None:
    exc = refused(validator(sqlite_services, pki_files), [pki.issued[name].cert])
    assert exc.reason == reason
    assert words in str(exc)


def test_revoked_is_found_by_crl_alone_and_by_ocsp_alone(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    for mode in ("crl", "ocsp"):
        v = validator(sqlite_services, pki_files, revocation=mode)
        assert refused(v, [pki.issued["revoked"].cert]).reason == "revoked"
        assert v.validate([pki.issued["good"].cert]).path
    assert responder.crl_requests >= 1 and responder.ocsp_requests >= 1


def test_not_yet_valid_and_expiry_follow_the_clock(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    v = validator(sqlite_services, pki_files, revocation="none")
    clock.freeze(pki.now - dt.timedelta(days=2))
    assert refused(v, [pki.issued["good"].cert]).reason == "not_yet_valid"
    clock.freeze(pki.now + dt.timedelta(days=366))
    assert refused(v, [pki.issued["good"].cert]).reason == "expired"


def test_intermediate_sent_by_the_client_builds_the_path(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], tmp_path: Path, responder: Responder
) -> None:
    only_root = tmp_path / "ca"
    only_root.mkdir()
    (only_root / "root.pem").write_bytes(pki.root.pem)
    v = validator(sqlite_services, pki_files, trust_dir=str(only_root), revocation="none")
    assert refused(v, [pki.issued["good"].cert]).reason == "untrusted"
    assert len(v.validate([pki.issued["good"].cert, pki.inter.cert]).path) == 3


def test_forged_issuer_name_without_the_key_is_untrusted(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    """A certificate naming our issuing CA but signed by another key fails the signature."""
    forger = CardPki(base=pki.base)
    fake_inter = forger._ca("Test Issuing CA", forger.root, path_len=0)
    fake_inter.cert = fake_inter.cert  # same subject name as ours, different key
    forged = forger.user("forged", upn="card.user@example.test", issuer=fake_inter)
    exc = refused(validator(sqlite_services, pki_files, revocation="none"), [forged.cert])
    assert exc.reason == "untrusted"


def test_ocsp_down_fails_closed_or_open_by_setting(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    responder.down = True
    closed = validator(sqlite_services, pki_files, fetch_timeout=2)
    exc = refused(closed, [pki.issued["good"].cert])
    assert exc.reason == "revocation_unknown"
    assert "try again later" in str(exc)
    opened = validator(sqlite_services, pki_files, fail_open=True, fetch_timeout=2)
    checked = opened.validate([pki.issued["good"].cert])
    assert checked.warnings  # accepted, with the doubt recorded
    assert (
        refused(opened, [pki.issued["foreign"].cert]).reason == "untrusted"
    )  # fail-open is only about revocation


def test_ocsp_falls_back_to_crl_and_answers_are_cached(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    clock.freeze(pki.now)
    v = validator(sqlite_services, pki_files)
    v.validate([pki.issued["good"].cert])
    first = responder.ocsp_requests
    v.validate([pki.issued["good"].cert])
    assert responder.ocsp_requests == first  # cached until nextUpdate
    clock.freeze(pki.now + dt.timedelta(hours=2))  # past the OCSP nextUpdate (1 h)
    v.validate([pki.issued["good"].cert])
    assert responder.ocsp_requests == first + 2


def test_crl_is_cached_and_refreshed_after_the_interval(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    clock.freeze(pki.now)
    v = validator(sqlite_services, pki_files, revocation="crl", crl_refresh_interval=600)
    v.validate([pki.issued["good"].cert])
    fetched = responder.crl_requests
    assert fetched == 2  # the issuing CA's CRL and the root's
    v.validate([pki.issued["good"].cert])
    assert responder.crl_requests == fetched
    clock.freeze(pki.now + dt.timedelta(minutes=11))
    v.validate([pki.issued["good"].cert])
    assert responder.crl_requests == fetched + 2


def test_crl_from_a_configured_file(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization

    inter_crl = tmp_path / "inter.crl"
    root_crl = tmp_path / "root.crl"
    inter_crl.write_bytes(pki.crl(pki.inter).public_bytes(serialization.Encoding.PEM))
    root_crl.write_bytes(pki.crl(pki.root).public_bytes(serialization.Encoding.DER))
    v = validator(
        sqlite_services,
        pki_files,
        revocation="crl",
        crl_from_cdp=False,
        crl_files=[str(inter_crl), str(root_crl)],
    )
    assert refused(v, [pki.issued["revoked"].cert]).reason == "revoked"
    assert v.validate([pki.issued["good"].cert]).path
    assert responder.crl_requests == 0


def test_stale_crl_is_not_believed(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    v = validator(sqlite_services, pki_files, revocation="crl")
    clock.freeze(pki.now + dt.timedelta(days=2))  # the CRL's nextUpdate was a day after issue
    assert refused(v, [pki.issued["good"].cert]).reason == "revocation_unknown"


def test_ocsp_nonce_mismatch_is_no_answer(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    responder.bad_nonce = True
    v = validator(sqlite_services, pki_files, revocation="ocsp")
    assert refused(v, [pki.issued["good"].cert]).reason == "revocation_unknown"


def test_ocsp_response_signed_by_another_key_is_no_answer(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    real_key = pki.inter.key
    try:
        pki.inter.key = pki.foreign_root.key  # the responder signs with a key that is not the CA's
        v = validator(sqlite_services, pki_files, revocation="ocsp")
        assert refused(v, [pki.issued["good"].cert]).reason == "revocation_unknown"
    finally:
        pki.inter.key = real_key


def test_trust_folder_is_reloaded_when_it_changes(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], tmp_path: Path, responder: Responder
) -> None:
    folder = tmp_path / "ca"
    folder.mkdir()
    v = validator(sqlite_services, pki_files, trust_dir=str(folder), revocation="none", reload_interval=1)
    assert refused(v, [pki.issued["good"].cert, pki.inter.cert]).reason == "untrusted"
    (folder / "root.pem").write_bytes(pki.root.pem)
    v.trust.reload()
    assert v.validate([pki.issued["good"].cert, pki.inter.cert]).path


def test_ocsp_timeout_is_no_answer_and_falls_back_to_the_crl(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    import time

    responder.delay = 2.0
    only_ocsp = validator(sqlite_services, pki_files, revocation="ocsp", fetch_timeout=0.5)
    started = time.monotonic()
    assert refused(only_ocsp, [pki.issued["good"].cert]).reason == "revocation_unknown"
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.9  # the card's request was cut at the timeout, not answered late
    with_crl = validator(sqlite_services, pki_files, fetch_timeout=0.5)
    assert refused(with_crl, [pki.issued["revoked"].cert]).reason == "revoked"  # the CRL answered


def test_delegated_ocsp_responder_needs_the_ocsp_signing_usage(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], responder: Responder
) -> None:
    responder.delegate = pki.ocsp_signer(ocsp_signing=True)
    v = validator(sqlite_services, pki_files, revocation="ocsp")
    assert v.validate([pki.issued["good"].cert]).path
    assert refused(v, [pki.issued["revoked"].cert]).reason == "revoked"
    responder.delegate = pki.ocsp_signer(ocsp_signing=False)
    v = validator(sqlite_services, pki_files, revocation="ocsp")
    assert refused(v, [pki.issued["good"].cert]).reason == "revocation_unknown"


def test_running_process_notices_a_changed_folder_by_itself(
    sqlite_services: Services, pki: CardPki, pki_files: dict[str, Path], tmp_path: Path, responder: Responder
) -> None:
    folder = tmp_path / "ca"
    folder.mkdir()
    v = validator(sqlite_services, pki_files, trust_dir=str(folder), revocation="none", reload_interval=30)
    assert refused(v, [pki.issued["good"].cert, pki.inter.cert]).reason == "untrusted"
    (folder / "root.der").write_bytes(
        pki.root.cert.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)
    )
    assert refused(v, [pki.issued["good"].cert, pki.inter.cert]).reason == "untrusted"  # not yet looked
    current = v.trust._anchors
    assert current is not None
    current.loaded_at -= 31  # reload_interval seconds have passed (monotonic, not business time)
    assert v.validate([pki.issued["good"].cert, pki.inter.cert]).path
    (folder / "root.der").unlink()
    v.trust._anchors.loaded_at -= 31  # type: ignore[union-attr]
    assert refused(v, [pki.issued["good"].cert, pki.inter.cert]).reason == "untrusted"
