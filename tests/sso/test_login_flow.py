"""The sign-in pages: expired / must-change passwords, consent for third-party clients,
locked and disabled accounts (R-SSO-1, R-PW-5)."""

from __future__ import annotations

import socket

from pydantic import SecretStr
from sqlalchemy import select

from iam.config import DirectorySettings
from iam.directory.ad import ActiveDirectory
from iam.models.audit import AuditEvent
from sso.views.signin import REFUSED
from tests.sso.helpers import (
    PASSWORD,
    REDIRECT,
    authorize_url,
    csrf_from,
    database_down,
    exchange,
    follow_to_code,
    login,
    make_client,
    make_user,
)


def _change(client, username, old, new, confirm=None):
    page = client.get("/password/change")
    assert page.status_code == 200
    return client.post(
        "/password/change",
        data={
            "username": username,
            "current_password": old,
            "new_password": new,
            "confirm": confirm or new,
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )


def test_expired_password_changes_then_finishes_the_original_sign_in(services, client):
    user = make_user(services)
    services.directory.expire_password(user.id)
    cid, secret = make_client(services)
    url, flow = authorize_url(cid)
    client.get(url)
    resp = login(client, "alice", PASSWORD)
    assert resp.headers["Location"].endswith("/password/change")
    page = client.get("/password/change").get_data(as_text=True)
    assert "Your password has expired" in page
    resp = _change(client, "alice", PASSWORD, "N3w-Passphrase-ok")
    params = follow_to_code(client, resp)
    assert params["state"] == flow.state
    assert exchange(client, params["code"], flow, secret).status_code == 200
    # old password no longer works, new one does
    assert services.directory.authenticate("alice", "N3w-Passphrase-ok").id == user.id
    with services.transaction() as s:
        events = [e.event for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "login.password_change_required" in events and "password.changed" in events
    from iam.passwords import history

    with services.transaction() as s:  # kept as an argon2id hash for the history rules (R-PW-2)
        rows = history.entries(s, user.id)
        assert len(rows) == 1 and "N3w-Passphrase-ok" not in str(vars(rows[0]))


def test_must_change_refused_password_keeps_user_on_page(services, client):
    make_user(services, must_change=True)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    assert login(client, "alice", PASSWORD).headers["Location"].endswith("/password/change")
    short = _change(client, "alice", PASSWORD, "short")
    assert short.status_code == 400
    assert "The new password was refused" in short.get_data(as_text=True)
    assert "at least 12 characters" in short.get_data(as_text=True)  # the default profile
    personal = _change(client, "alice", PASSWORD, "alice-anđelković-2026")
    text = personal.get_data(as_text=True)
    assert personal.status_code == 400  # every broken rule is listed, diacritics folded
    assert "must not contain your given name" in text and "must not contain your surname" in text
    mismatch = _change(client, "alice", PASSWORD, "L0ng-enough-pass", confirm="different-one")
    assert mismatch.status_code == 400 and "differ" in mismatch.get_data(as_text=True)
    wrong_old = _change(client, "alice", "not-the-old", "L0ng-enough-pass")
    assert wrong_old.status_code == 400 and "Wrong username or password" in wrong_old.get_data(as_text=True)


def test_disabled_account_gets_a_clear_message_a_locked_one_the_common_refusal(services, client):
    """Disabled: said so. Locked in the directory: the words of a wrong password (issue 20 —
    AD answers "locked" whether or not the password is right, so saying it would tell anyone
    which names exist)."""
    user = make_user(services)
    services.directory.disable(user.id)
    r = login(client, "alice", PASSWORD)
    assert r.status_code == 401 and "disabled" in r.get_data(as_text=True)
    services.directory.enable(user.id)
    services.directory._set(user.id, locked=True)  # the built-in directory's lockout flag
    r = login(client, "alice", PASSWORD)
    assert r.status_code == 401 and str(REFUSED) in r.get_data(as_text=True)
    assert "locked" not in r.get_data(as_text=True)


def _consent_fields(page) -> dict[str, str]:
    import re

    html = page.get_data(as_text=True)
    fields = dict(re.findall(r'<input type="hidden" name="(flow|client)" value="([^"]*)"', html))
    return {"csrf_token": csrf_from(html), **fields}


def test_consent_page_cannot_be_swapped_for_another_client(services, client):
    """A consent click applies only to the client the page showed, even if another tab started
    an authorization for a different client in between."""
    from sso.models import Consent

    make_user(services)
    trusted, _ = make_client(services, name="Trusted", require_consent=True)
    evil, _ = make_client(
        services, name="Evil", require_consent=True, redirect_uris=["https://evil.example/cb"]
    )
    client.get(authorize_url(trusted)[0])
    client.get(login(client, "alice", PASSWORD).headers["Location"])
    page = client.get("/consent")
    assert b"Trusted" in page.data
    client.get(authorize_url(evil, redirect_uri="https://evil.example/cb")[0])  # the other tab
    resp = client.post("/consent", data={"action": "allow", **_consent_fields(page)})
    assert resp.status_code == 400
    with services.transaction() as s:
        assert s.scalars(select(Consent)).all() == []


def test_third_party_client_asks_consent_once(services, client):
    make_user(services)
    cid, secret = make_client(services, require_consent=True)
    url, flow = authorize_url(cid, scope="openid email")
    client.get(url)
    resp = login(client, "alice", PASSWORD)
    resp = client.get(resp.headers["Location"])
    assert resp.headers["Location"].endswith("/consent")
    page = client.get("/consent")
    assert b"email" in page.data
    resp = client.post("/consent", data={"action": "allow", **_consent_fields(page)})
    params = follow_to_code(client, resp)
    assert exchange(client, params["code"], flow, secret).status_code == 200
    # second time: no consent page
    url2, _ = authorize_url(cid, scope="openid email")
    assert client.get(url2).headers["Location"].startswith(REDIRECT)


def test_consent_denied_returns_access_denied(services, client):
    make_user(services)
    cid, _ = make_client(services, require_consent=True)
    url, flow = authorize_url(cid)
    client.get(url)
    client.get(login(client, "alice", PASSWORD).headers["Location"])
    page = client.get("/consent")
    resp = client.post("/consent", data={"action": "deny", **_consent_fields(page)})
    assert resp.headers["Location"].startswith(REDIRECT)
    assert (
        "error=access_denied" in resp.headers["Location"]
        and f"state={flow.state}" in resp.headers["Location"]
    )


def test_sign_in_events_record_address_and_user_agent(services, client):
    """R-AUD-1: who, when, from where, with what outcome — successes and refusals."""
    make_user(services)
    login(client, "alice", "wrong-password")
    client.get("/login", headers={"User-Agent": "TestBrowser/1"})
    login(client, "alice", PASSWORD)
    with services.transaction() as s:
        rows = {e.event: e for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))}
    failed, ok = rows["login.failed"], rows["login.succeeded"]
    assert failed.outcome == "failure" and failed.actor == "alice" and failed.ip == "127.0.0.1"
    assert failed.details == {"reason": "bad_credentials"}
    assert ok.outcome == "success" and ok.ip == "127.0.0.1" and ok.user_agent
    assert ok.at.tzinfo is not None


def test_sign_in_while_the_directory_is_unreachable_is_503_and_says_so(services, client):
    """Issue 17 (drills): the directory being down is not a refused password: 503 with
    Retry-After and a page that says the directory cannot be reached; wrong-password wording and
    status are unchanged."""
    make_user(services)
    working = services.directory
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = int(s.getsockname()[1])
    services.__dict__["directory"] = ActiveDirectory(
        DirectorySettings(
            kind="ad",
            url=f"ldaps://127.0.0.1:{closed}",
            base_dn="DC=example,DC=test",
            bind_password=SecretStr("service-password"),
            connect_timeout=1.0,
        )
    )
    try:
        r = login(client, "alice", PASSWORD)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == str(services.settings.server.retry_after)
        body = r.get_data(as_text=True)
        assert "the directory cannot be reached" in body and "try again" in body
        assert str(REFUSED) not in body
    finally:
        services.__dict__["directory"] = working
    services.extensions.pop("iam.account_names", None)  # this test's stand-in directory
    r = login(client, "alice", "Wrong-password-1")
    assert r.status_code == 401 and str(REFUSED) in r.get_data(as_text=True)
    assert "Retry-After" not in r.headers


def test_sign_in_while_the_database_is_down_is_a_503_page(services, client):
    """Issue 17 (drills): a browser gets a page saying to try again (503, Retry-After), not 500."""
    make_user(services)
    page = client.get("/login")
    with database_down(services):
        r = client.post(
            "/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": csrf_from(page.get_data(as_text=True)),
            },
            headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
        )
        assert r.status_code == 503
        assert r.headers["Retry-After"] == str(services.settings.server.retry_after)
        assert r.mimetype == "text/html"
        assert "try again" in r.get_data(as_text=True)
    assert login(client, "alice", PASSWORD).status_code == 302  # back: signs in
