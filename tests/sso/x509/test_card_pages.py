"""Card sign-in through the pages (the certificate arriving from nginx in a header), binding,
account requests with an administrator's approval, the admin API — on SQLite and PostgreSQL."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from iam import jobs
from iam.app import create_app
from iam.directory.base import NewUser
from iam.models.audit import AuditEvent
from iam.services import Services
from sso.x509.models import AccountRequest, CardBinding
from tests.sso.helpers import (
    API_RESOURCE,
    PASSWORD,
    authorize_url,
    csrf_from,
    exchange,
    follow_to_code,
    login,
    make_client,
)
from tests.sso.x509.pki import CardPki, Issued, Responder

PROXY = {"REMOTE_ADDR": "10.9.9.9"}  # the trusted proxy of card_services
STRANGER = {"REMOTE_ADDR": "10.1.2.3"}


def header(issued: Issued) -> dict[str, str]:
    return {"X-SSL-Client-Cert": urllib.parse.quote(issued.pem.decode(), safe="")}


@pytest.fixture
def card_app(card_services: Any, responder: Responder) -> Any:
    svc: Services = card_services()
    app = create_app(services=svc)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def card_user(card_app: Any) -> Any:
    d = card_app.extensions["iam.services"].directory
    user = d.create_user(
        NewUser(username="cuser", upn="card.user@example.test", given_name="Card", family_name="User")
    )
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    return d.get_user(user.id)


def card_login(client: Any, issued: Issued, environ: dict[str, str] = PROXY) -> Any:
    page = client.get("/card/login", headers=header(issued), environ_base=environ)
    html = page.get_data(as_text=True)
    return client.post(
        "/card/login",
        data={"csrf_token": csrf_from(html)},
        headers=header(issued),
        environ_base=environ,
    )


def events(app: Any, name: str) -> list[AuditEvent]:
    with app.extensions["iam.services"].transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_card_signs_in_the_upn_mapped_user_with_amr_sc(card_app: Any, card_user: Any, pki: CardPki) -> None:
    svc = card_app.extensions["iam.services"]
    client_id, secret = make_client(svc)
    client = card_app.test_client()
    url, flow = authorize_url(client_id)
    first = client.get(url)
    assert first.status_code == 302
    resp = card_login(client, pki.issued["good"])
    params = follow_to_code(client, resp, flow.redirect_uri)
    tokens = exchange(client, params["code"], flow, secret).get_json()
    signer = card_app.extensions["sso.signer"]
    claims = signer.verify(tokens["id_token"])
    assert claims["sub"] == card_user.id
    assert claims["amr"] == ["sc"]
    assert claims["acr"] == "smartcard"
    verified = events(card_app, "card.verified")
    assert verified[-1].details["rule"] == "upn" and verified[-1].subject == card_user.id


def test_hardware_card_adds_hwk(card_app: Any, card_user: Any, pki: CardPki) -> None:
    client = card_app.test_client()
    resp = card_login(client, pki.issued["hardware"])
    assert resp.status_code == 302
    assert events(card_app, "login.succeeded")[-1].details["amr"] == ["sc", "hwk"]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("expired", "The certificate has expired."),
        ("not_yet_valid", "The certificate is not valid yet."),
        ("server_eku", "not meant for signing in"),
        ("revoked", "The certificate has been revoked."),
        ("foreign", "not issued by a trusted authority"),
        ("wrong_eku", "not meant for signing in"),
        ("unmapped", "No account is linked to this certificate."),
    ],
)
def test_bad_cards_are_refused_on_the_page(
    card_app: Any, card_user: Any, pki: CardPki, name: str, words: str
) -> None:
    client = card_app.test_client()
    resp = card_login(client, pki.issued[name])
    assert resp.status_code == 403
    assert words in resp.get_data(as_text=True)
    assert "iam_session" not in (resp.headers.get("Set-Cookie") or "")
    assert events(card_app, "card.login_refused")


def test_the_proxys_own_verdict_is_kept_in_the_refusal(card_app: Any, card_user: Any, pki: CardPki) -> None:
    """nginx hands an expired card on (error_page 495) with $ssl_client_verify; the provider
    decides by its own checks and keeps nginx's words for the auditor."""
    client = card_app.test_client()
    verdict = {"X-SSL-Client-Verify": "FAILED:certificate has expired"}
    page = client.get("/card/login", headers={**header(pki.issued["expired"]), **verdict}, environ_base=PROXY)
    resp = client.post(
        "/card/login",
        data={"csrf_token": csrf_from(page.get_data(as_text=True))},
        headers={**header(pki.issued["expired"]), **verdict},
        environ_base=PROXY,
    )
    assert resp.status_code == 403
    refused = events(card_app, "card.login_refused")[-1]
    assert refused.details["reason"] == "expired"
    assert refused.details["proxy_verify"] == "FAILED:certificate has expired"
    # a "SUCCESS" from the proxy changes nothing either: the provider refuses the revoked card
    verdict = {"X-SSL-Client-Verify": "SUCCESS"}
    page = client.get("/card/login", headers={**header(pki.issued["revoked"]), **verdict}, environ_base=PROXY)
    resp = client.post(
        "/card/login",
        data={"csrf_token": csrf_from(page.get_data(as_text=True))},
        headers={**header(pki.issued["revoked"]), **verdict},
        environ_base=PROXY,
    )
    assert resp.status_code == 403
    refused = events(card_app, "card.login_refused")[-1]
    assert (refused.details["reason"], refused.details["proxy_verify"]) == ("revoked", "SUCCESS")


def test_forged_header_from_an_untrusted_address_is_ignored(
    card_app: Any, card_user: Any, pki: CardPki
) -> None:
    client = card_app.test_client()
    page = client.get("/card/login", headers=header(pki.issued["good"]), environ_base=STRANGER)
    assert 'id="no-card"' in page.get_data(as_text=True)
    resp = client.post(
        "/card/login",
        data={"csrf_token": csrf_from(client.get("/login").get_data(as_text=True))},
        headers=header(pki.issued["good"]),
        environ_base=STRANGER,
    )
    assert resp.status_code == 400
    assert "No card certificate was presented." in resp.get_data(as_text=True)
    ignored = events(card_app, "card.untrusted_header_ignored")
    assert ignored and ignored[-1].details["peer"] == "10.1.2.3"
    assert not events(card_app, "login.succeeded")


def test_disabled_card_sign_in_is_not_found(services: Services) -> None:
    app = create_app(services=services)
    assert app.test_client().get("/card/login").status_code == 404


def test_bind_a_card_after_the_password_then_sign_in_with_it(
    card_app: Any, card_user: Any, pki: CardPki
) -> None:
    client = card_app.test_client()
    assert login(client, "cuser", PASSWORD).status_code == 302
    card = pki.issued["email_only"]  # no UPN: only a binding can map it
    page = client.get("/card/bind", headers=header(card), environ_base=PROXY)
    html = page.get_data(as_text=True)
    assert "Bind this card" in html
    wrong = client.post(
        "/card/bind",
        data={"csrf_token": csrf_from(html), "password": "nope"},
        headers=header(card),
        environ_base=PROXY,
    )
    assert wrong.status_code == 400 and "Wrong password." in wrong.get_data(as_text=True)
    ok = client.post(
        "/card/bind",
        data={"csrf_token": csrf_from(html), "password": PASSWORD},
        headers=header(card),
        environ_base=PROXY,
    )
    assert ok.status_code == 302
    with card_app.extensions["iam.services"].transaction() as s:
        row = s.scalar(select(CardBinding))
        assert row is not None and row.sub == card_user.id and row.match == "thumbprint"
    fresh = card_app.test_client()
    assert card_login(fresh, card).status_code == 302
    assert events(card_app, "card.verified")[-1].details["rule"] == "binding"
    # a card mapped to someone else by UPN cannot be bound to this account
    other = card_app.extensions["iam.services"].directory.create_user(
        NewUser(username="other", upn="nobody@example.test", enabled=True)
    )
    assert other
    refused = client.post(
        "/card/bind",
        data={"csrf_token": csrf_from(html), "password": PASSWORD},
        headers=header(pki.issued["unmapped"]),
        environ_base=PROXY,
    )
    assert refused.status_code == 400
    assert "belongs to another account" in refused.get_data(as_text=True)


def _admin_token(app: Any, scope: str = "x509:admin") -> str:
    svc = app.extensions["iam.services"]
    client_id, secret = make_client(svc, grant_types=["client_credentials"], scopes=[scope])
    import base64

    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    resp = app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": API_RESOURCE},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def test_admin_api_lists_and_revokes_bindings(card_app: Any, card_user: Any, pki: CardPki) -> None:
    client = card_app.test_client()
    assert client.get("/api/v1/x509/bindings").status_code == 401
    weak = _admin_token(card_app, scope="openid")
    assert client.get("/api/v1/x509/bindings", headers={"Authorization": f"Bearer {weak}"}).status_code == 403
    token = _admin_token(card_app)
    auth = {"Authorization": f"Bearer {token}"}
    assert login(client, "cuser", PASSWORD).status_code == 302
    card = pki.issued["email_only"]
    html = client.get("/card/bind", headers=header(card), environ_base=PROXY).get_data(as_text=True)
    client.post(
        "/card/bind",
        data={"csrf_token": csrf_from(html), "password": PASSWORD},
        headers=header(card),
        environ_base=PROXY,
    )
    listed = client.get("/api/v1/x509/bindings", headers=auth).get_json()["bindings"]
    assert [b["sub"] for b in listed] == [card_user.id]
    revoked = client.post(
        f"/api/v1/x509/bindings/{listed[0]['id']}/revoke", json={"reason": "card lost"}, headers=auth
    )
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert (
        client.post(f"/api/v1/x509/bindings/{listed[0]['id']}/revoke", json={}, headers=auth).status_code
        == 404
    )
    assert card_login(card_app.test_client(), card).status_code == 403  # no longer maps
    ev = events(card_app, "card.binding_revoked")[-1]
    assert ev.actor and ev.actor.startswith("client:") and ev.details["reason"] == "card lost"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/x509/bindings/{binding_id}/revoke" in spec["paths"]


def test_account_from_a_card_needs_an_administrators_approval(card_app: Any, pki: CardPki) -> None:
    svc = card_app.extensions["iam.services"]
    client = card_app.test_client()
    card = pki.issued["newcomer"]
    refused = card_login(client, card)
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert 'id="card-request"' in html
    asked = client.post(
        "/card/request", data={"csrf_token": csrf_from(html)}, headers=header(card), environ_base=PROXY
    )
    assert asked.status_code == 200 and 'id="card-requested"' in asked.get_data(as_text=True)
    token = _admin_token(card_app)
    auth = {"Authorization": f"Bearer {token}"}
    pending = client.get("/api/v1/x509/requests", headers=auth).get_json()["requests"]
    assert len(pending) == 1
    assert pending[0]["proposed"]["username"] == "jelena.djordjevic"
    assert pending[0]["proposed"]["employee_number"] == "PNORS-7777"
    assert svc.directory.find_user(username="jelena.djordjevic") is None  # nothing before approval
    assert card_login(card_app.test_client(), card).status_code == 403
    approved = client.post(f"/api/v1/x509/requests/{pending[0]['id']}/approve", json={}, headers=auth)
    assert approved.status_code == 200 and approved.get_json()["status"] == "approved"
    again = client.post(f"/api/v1/x509/requests/{pending[0]['id']}/deny", json={}, headers=auth)
    assert again.status_code == 409
    assert jobs.run_due(svc) >= 1  # the worker creates the account and binds the card
    created = svc.directory.find_user(username="jelena.djordjevic")
    assert created is not None and created.given_name == "Jelena" and created.family_name == "Đorđević"
    with svc.transaction() as s:
        row = s.scalar(select(AccountRequest))
        assert row is not None and row.sub == created.id
    assert card_login(card_app.test_client(), card).status_code == 302
    assert [
        e.event
        for e in (
            events(card_app, "card.account_requested")
            + events(card_app, "card.account_request_approved")
            + events(card_app, "card.account_created")
        )
    ] == [
        "card.account_requested",
        "card.account_request_approved",
        "card.account_created",
    ]


def test_denied_request_creates_nothing(card_app: Any, pki: CardPki, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from iam.cli import cli

    client = card_app.test_client()
    card = pki.issued["newcomer"]
    html = card_login(client, card).get_data(as_text=True)
    client.post(
        "/card/request", data={"csrf_token": csrf_from(html)}, headers=header(card), environ_base=PROXY
    )
    svc = card_app.extensions["iam.services"]
    with svc.transaction() as s:
        req = s.scalar(select(AccountRequest))
        assert req is not None
        from sso.x509 import service as cards

        cards.deny_request(s, request_id=req.id, actor="admin", reason="not an employee")
    assert jobs.run_due(svc) == 0
    assert svc.directory.find_user(username="jelena.djordjevic") is None
    assert events(card_app, "card.account_request_denied")[-1].details["reason"] == "not an employee"
    assert CliRunner  # the CLI path is covered in test_card_cli
    assert cli


def test_client_requiring_a_card_gets_a_step_up_to_the_card_page(
    card_app: Any, card_user: Any, pki: CardPki
) -> None:
    """R-MFA-4 with a card: an application demanding ``smartcard`` sends a password-signed-in
    user through the step-up page to the card; the ID token states what was achieved."""
    svc = card_app.extensions["iam.services"]
    # the user has used the card before, so it is one of their methods
    assert card_login(card_app.test_client(), pki.issued["good"]).status_code == 302
    client_id, secret = make_client(svc, require_acr="smartcard")
    client = card_app.test_client()
    url, flow = authorize_url(client_id)
    client.get(url)
    resp = login(client, "cuser", PASSWORD)
    # a card holder gives the card after the password (mfa.require_enrolled): the step-up
    # page sends the browser to the card page
    seen = []
    while resp.status_code == 302 and not resp.headers["Location"].endswith("/card/login"):
        seen.append(resp.headers["Location"])
        assert len(seen) < 6, seen
        resp = client.get(resp.headers["Location"])
    assert resp.status_code == 302 and "/mfa/" in seen, (resp.status_code, seen)
    resp = card_login(client, pki.issued["good"])
    params = follow_to_code(client, resp, flow.redirect_uri)
    claims = card_app.extensions["sso.signer"].verify(
        exchange(client, params["code"], flow, secret).get_json()["id_token"]
    )
    assert claims["acr"] == "smartcard"
    assert set(claims["amr"]) >= {"pwd", "sc"}


def test_wrong_passwords_on_the_bind_page_count_towards_lockout(
    card_app: Any, card_user: Any, pki: CardPki
) -> None:
    client = card_app.test_client()
    assert login(client, "cuser", PASSWORD).status_code == 302
    card = pki.issued["email_only"]
    html = client.get("/card/bind", headers=header(card), environ_base=PROXY).get_data(as_text=True)
    threshold = card_app.extensions["iam.settings"].lockout.threshold

    def bind(password: str) -> Any:
        return client.post(
            "/card/bind",
            data={"csrf_token": csrf_from(html), "password": password},
            headers=header(card),
            environ_base=PROXY,
        )

    for _ in range(threshold):
        assert bind("wrong-guess").status_code == 400
    locked = bind(PASSWORD)  # the right password no longer helps: locked by the provider
    assert locked.status_code == 400 and "Wrong password." in locked.get_data(as_text=True)
    with card_app.extensions["iam.services"].transaction() as s:
        assert s.scalar(select(CardBinding)) is None
