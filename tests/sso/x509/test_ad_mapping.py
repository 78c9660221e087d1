"""R-MFA-1 on the real Samba AD DC: a card signs in the AD account its UPN names; AD's strong
``altSecurityIdentities`` forms, the e-mail and a subject attribute map certificates too."""

from __future__ import annotations

import secrets
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_ADD

from iam.app import create_app
from iam.config import DirectorySettings
from iam.directory.ad import ActiveDirectory
from iam.directory.base import NewUser
from iam.services import Services
from sso.x509 import mapping
from sso.x509.certs import CertificateRefused
from sso.x509.service import CardValidator
from tests.conftest import make_settings
from tests.sso.helpers import csrf_from
from tests.sso.x509.pki import CardPki, Responder

pytestmark = pytest.mark.samba


def _user(d: ActiveDirectory, ou: str, **kw: Any) -> Any:
    name = "c" + secrets.token_hex(4)
    return d.create_user(
        NewUser(username=name, ou=ou, enabled=True, given_name="Card", family_name=name, **kw)
    )


def _settings(
    services: Services, samba_ad: DirectorySettings, ou: str, pki_files: dict[str, Path], **x509: Any
) -> Any:
    return make_settings(
        services.settings.var_dir,
        services.settings.database.url,
        directory=samba_ad.model_copy(update={"users_ou": ou, "groups_ou": ou}),
        x509={"enabled": True, "trust_dir": str(pki_files["ca"]), **x509},
        server={"trusted_proxies": ["10.9.9.9"]},
    )


def test_good_card_signs_in_the_ad_user_named_by_its_upn(
    sqlite_services: Services,
    samba_ad: DirectorySettings,
    ad_ou: str,
    pki: CardPki,
    pki_files: dict[str, Path],
    responder: Responder,
) -> None:
    svc = Services(_settings(sqlite_services, samba_ad, ad_ou, pki_files))
    try:
        upn = f"card-{secrets.token_hex(4)}@example.test"
        user = _user(svc.directory, ad_ou, upn=upn)
        card = pki.user(f"ad-{upn}", upn=upn)
        app = create_app(services=svc)
        client = app.test_client()
        head = {"X-SSL-Client-Cert": urllib.parse.quote(card.pem.decode(), safe="")}
        page = client.get("/card/login", headers=head, environ_base={"REMOTE_ADDR": "10.9.9.9"})
        resp = client.post(
            "/card/login",
            data={"csrf_token": csrf_from(page.get_data(as_text=True))},
            headers=head,
            environ_base={"REMOTE_ADDR": "10.9.9.9"},
        )
        assert resp.status_code == 302, resp.get_data(as_text=True)
        account = client.get("/account")
        assert account.status_code == 200
        assert user.username in account.get_data(as_text=True) or "Card" in account.get_data(as_text=True)
        # the same card for an account disabled in AD is refused
        svc.directory.disable(user.id)
        again = app.test_client()
        page = again.get("/card/login", headers=head, environ_base={"REMOTE_ADDR": "10.9.9.9"})
        refused = again.post(
            "/card/login",
            data={"csrf_token": csrf_from(page.get_data(as_text=True))},
            headers=head,
            environ_base={"REMOTE_ADDR": "10.9.9.9"},
        )
        assert refused.status_code == 403
        assert "disabled" in refused.get_data(as_text=True)
    finally:
        svc.dispose()


@pytest.mark.parametrize("form", ["issuer_serial", "sha1_pukey", "ski"])
def test_alt_security_identities_strong_forms(
    sqlite_services: Services,
    samba_dc: Any,
    samba_ad: DirectorySettings,
    ad_ou: str,
    pki: CardPki,
    pki_files: dict[str, Path],
    responder: Responder,
    form: str,
) -> None:
    settings = _settings(
        sqlite_services, samba_ad, ad_ou, pki_files, mapping=[{"kind": "ad_alt_security_identities"}]
    )
    directory = ActiveDirectory(settings.directory)
    try:
        user = _user(directory, ad_ou)
        card = pki.user(f"alt-{user.username}", cn=f"Alt {user.username}")  # no UPN, no e-mail
        values = mapping.alt_security_identities(card.cert)
        chosen = {
            "issuer_serial": next(v for v in values if "<SR>" in v),
            "sha1_pukey": next(v for v in values if "<SHA1-PUKEY>" in v),
            "ski": next(v for v in values if "<SKI>" in v),
        }[form]
        validator = CardValidator(settings, sqlite_services.reader)
        checked = validator.validate([card.cert])
        with sqlite_services.transaction() as s:
            with pytest.raises(CertificateRefused) as info:
                mapping.map_certificate(checked.cert, settings.x509, s, directory)
            assert info.value.reason == "no_account"
            samba_dc.modify(user.dn, {"altSecurityIdentities": [(MODIFY_ADD, [chosen])]})
            found = mapping.map_certificate(checked.cert, settings.x509, s, directory)
        assert found.user.id == user.id and found.rule == "ad_alt_security_identities"
        if form == "issuer_serial":
            assert chosen.startswith("X509:<I>C=RS,O=Test City,CN=Test Issuing CA<SR>")
    finally:
        directory.close()


def test_email_and_subject_attribute_rules(
    sqlite_services: Services,
    samba_ad: DirectorySettings,
    ad_ou: str,
    pki: CardPki,
    pki_files: dict[str, Path],
    responder: Responder,
) -> None:
    settings = _settings(
        sqlite_services,
        samba_ad,
        ad_ou,
        pki_files,
        mapping=[
            {"kind": "subject", "field": "serialNumber", "attribute": "employeeNumber"},
            {"kind": "email"},
        ],
    )
    directory = ActiveDirectory(settings.directory)
    try:
        tag = secrets.token_hex(4)
        by_mail = _user(directory, ad_ou, email=f"mail-{tag}@example.test")
        by_serial = _user(directory, ad_ou, employee_number=f"PNORS-{tag}")
        mail_card = pki.user(f"mail-{tag}", email=f"MAIL-{tag}@example.test")
        serial_card = pki.user(f"serial-{tag}", subject_serial=f"PNORS-{tag}")
        with sqlite_services.transaction() as s:
            assert mapping.map_certificate(mail_card.cert, settings.x509, s, directory).user.id == by_mail.id
            found = mapping.map_certificate(serial_card.cert, settings.x509, s, directory)
        assert found.user.id == by_serial.id and found.rule == "subject"
        # two accounts with the same e-mail: refused, never a guess
        _user(directory, ad_ou, email=f"mail-{tag}@example.test")
        with sqlite_services.transaction() as s, pytest.raises(CertificateRefused) as info:
            mapping.map_certificate(mail_card.cert, settings.x509, s, directory)
        assert info.value.reason == "ambiguous"
    finally:
        directory.close()
