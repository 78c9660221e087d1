"""Logout (RP-initiated, back-channel), sessions, key rotation (R-SSO-1, R-SSO-2)."""

from __future__ import annotations

import datetime as dt

from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from iam import clock
from iam.identities import disable_identity
from iam.models.jobs import Job
from sso import keys
from sso.models import SsoSession
from tests.sso.helpers import (
    REDIRECT,
    authorize_url,
    basic,
    csrf_from,
    database_down,
    exchange,
    make_client,
    make_user,
    sign_in_and_get_code,
)


def _tokens(services, client, **client_kw):
    cid, secret = make_client(services, **client_kw)
    params, flow = sign_in_and_get_code(client, cid)
    return cid, secret, exchange(client, params["code"], flow, secret).get_json()


def test_rp_initiated_logout_with_hint_redirects_to_registered_uri(services, client):
    make_user(services)
    cid, secret, tokens = _tokens(
        services,
        client,
        post_logout_redirect_uris=["https://rp.example/bye"],
        backchannel_logout_uri="https://rp.example/bcl",
    )
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://rp.example/bye",
            "state": "s1",
        },
    )
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://rp.example/bye?state=s1"
    # session over: the next authorization needs the password again
    url, _ = authorize_url(cid)
    assert client.get(url).headers["Location"].endswith("/login")
    # refresh tokens of that session are revoked
    r = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert r.get_json()["error"] == "invalid_grant"
    with services.transaction() as s:
        jobs = s.scalars(select(Job).where(Job.kind == "sso.backchannel_logout")).all()
        assert [j.payload["client_id"] for j in jobs] == [cid]


def test_access_token_is_not_an_id_token_hint(services, client):
    """Only our ID tokens may skip the logout confirmation."""
    make_user(services)
    _cid, _secret, tokens = _tokens(services, client)
    resp = client.get("/logout", query_string={"id_token_hint": tokens["access_token"]})
    assert resp.status_code == 400
    assert client.get("/account").status_code == 200  # still signed in


def test_logout_refuses_unregistered_post_logout_uri(services, client):
    make_user(services)
    _cid, _secret, tokens = _tokens(services, client, post_logout_redirect_uris=["https://rp.example/bye"])
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "https://evil.example/",
        },
    )
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_logout_without_hint_asks_for_confirmation(services, client):
    make_user(services)
    _tokens(services, client)
    page = client.get("/logout")
    assert page.status_code == 200 and b"Sign out?" in page.data
    # a forged POST without the CSRF token does not sign out
    client.post("/logout", data={"action": "logout"})
    assert client.get("/account").status_code == 200
    done = client.post(
        "/logout", data={"action": "logout", "csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert done.status_code == 200 and b"You are signed out" in done.data
    assert client.get("/account").headers["Location"].endswith("/login")


def test_disabling_identity_ends_sessions_tokens_and_notifies_clients(services, client):
    user = make_user(services)
    cid, secret, tokens = _tokens(services, client, backchannel_logout_uri="https://rp.example/bcl")
    with services.transaction() as s:
        disable_identity(s, sub=user.id, actor="test", reason="leaver")
    with services.transaction() as s:
        sessions = s.scalars(select(SsoSession).where(SsoSession.sub == user.id)).all()
        assert sessions and all(x.ended_at is not None for x in sessions)
        kinds = sorted(j.kind for j in s.scalars(select(Job)))
        assert "sso.backchannel_logout" in kinds and "iam.directory.disable" in kinds
    r = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert r.get_json()["error"] == "invalid_grant"


def test_user_sees_and_ends_own_sessions(services, client, app):
    make_user(services)
    cid, _secret, _tokens_ = _tokens(services, client)
    other = app.test_client()
    sign_in_and_get_code(other, cid)
    page = client.get("/account")
    html = page.get_data(as_text=True)
    assert html.count("/account/sessions/") == 2
    with services.transaction() as s:
        sids = [x.sid for x in s.scalars(select(SsoSession).where(SsoSession.ended_at.is_(None)))]
    other_sid = next(
        sid
        for sid in sids
        if f"/account/sessions/{sid}/end" in html and "this one" not in html.split(sid)[0][-200:]
    )
    client.post(f"/account/sessions/{other_sid}/end", data={"csrf_token": csrf_from(html)})
    with services.transaction() as s:
        live = s.scalars(select(SsoSession).where(SsoSession.ended_at.is_(None))).all()
    assert len(live) == 1


def test_key_rotation_publishes_next_key_before_it_signs(services, client, app):
    jwks1 = {k["kid"] for k in client.get("/jwks").get_json()["keys"]}
    assert len(jwks1) == 4  # active + next, for ES256 and RS256
    cid, secret = make_client(services, grant_types=["client_credentials"], redirect_uris=[], scopes=["api"])
    tok1 = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret)
    ).get_json()["access_token"]
    kid1 = jwt.decode(tok1, KeySet.import_key_set(client.get("/jwks").get_json())).header["kid"]
    with services.transaction() as s:
        promoted = keys.rotate(s, services.cipher, grace=3600, actor="test")
    assert promoted["ES256"] in jwks1  # the new signing key was already published
    app.extensions["sso.keyring"].reload()
    tok2 = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret)
    ).get_json()["access_token"]
    published = KeySet.import_key_set(client.get("/jwks").get_json())
    assert jwt.decode(tok2, published).header["kid"] == promoted["ES256"]
    assert kid1 in {k["kid"] for k in client.get("/jwks").get_json()["keys"]}  # old one still published
    jwt.decode(tok1, published)  # old tokens still verify
    clock.advance(dt.timedelta(seconds=3601))
    with services.transaction() as s:
        removed = keys.remove_expired(s)
    assert kid1 in removed
    app.extensions["sso.keyring"].reload()
    assert kid1 not in {k["kid"] for k in client.get("/jwks").get_json()["keys"]}


def test_private_keys_encrypted_at_rest(services):
    from sso.models import SigningKey

    with services.transaction() as s:
        row = s.scalars(select(SigningKey)).first()
        assert row is not None and b"PRIVATE KEY" not in row.private_key


def test_discovery_document(services, client):
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == "http://localhost"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "none",
    }
    assert doc["backchannel_logout_supported"] is True
    assert doc["end_session_endpoint"].endswith("/logout")
    assert {"ES256", "RS256"} <= set(doc["id_token_signing_alg_values_supported"])


def test_login_does_not_enumerate_users(services, client):
    make_user(services)
    from tests.sso.helpers import login

    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    wrong = login(client, "alice", "nope-nope")
    unknown = login(client, "nobody-here", "nope-nope")
    assert wrong.status_code == unknown.status_code == 401

    def error_text(r):
        html = r.get_data(as_text=True)
        return html[html.index('id="form-error"') :][:120]

    assert error_text(wrong) == error_text(unknown)


def test_login_form_requires_csrf(services, client):
    make_user(services)
    r = client.post("/login", data={"username": "alice", "password": "x"})
    assert r.status_code in (400, 401)
    assert client.get("/account").headers["Location"].endswith("/login")
    _ = REDIRECT


def test_worker_signs_out_accounts_disabled_in_the_directory(services, client):
    """R-SSO-1: an account disabled in AD (outside the provider) loses its sessions and refresh
    tokens at the next sweep, and its applications get a back-channel logout."""
    from iam import jobs
    from iam.models.audit import AuditEvent
    from sso import jobs as sso_jobs  # noqa: F401 — registers the sweep

    user = make_user(services)
    other = make_user(services, "bob")
    cid, secret, tokens = _tokens(services, client, backchannel_logout_uri="https://rp.example/bcl")
    services.directory.disable(user.id)
    jobs.Worker(services).tick()  # first tick runs every periodic task
    with services.transaction() as s:
        live = s.scalars(select(SsoSession).where(SsoSession.ended_at.is_(None))).all()
        assert live == []
        queued = s.scalars(select(Job).where(Job.kind == "sso.backchannel_logout")).all()
        assert [j.payload["sub"] for j in queued] == [user.id]
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "identity.inactive_in_directory")).all()
        assert [(e.subject, e.details) for e in ev] == [(user.id, {"state": "disabled"})]
    r = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert r.get_json()["error"] == "invalid_grant"
    assert other.enabled


def test_discovery_and_jwks_are_served_from_memory_while_the_database_is_down(services, client, caplog):
    """Issue 17 (drills): relying parties that refresh keys during a database outage still get
    them: every process holds the published keys."""
    before = client.get("/jwks").get_json()
    assert len(before["keys"]) == 4
    doc = client.get("/.well-known/openid-configuration").get_json()
    with database_down(services):
        ring = client.application.extensions["sso.keyring"]
        ring._loaded_at -= 3600  # the keys are old: the ring looks at the table again
        resp = client.get("/jwks")
        assert resp.status_code == 200
        assert resp.get_json() == before
        ring.reload()  # a forced reload keeps what it has
        again = client.get("/jwks")
        assert again.status_code == 200 and again.get_json() == before
        found = client.get("/.well-known/openid-configuration")
        assert found.status_code == 200 and found.get_json() == doc
    warnings = [r for r in caplog.records if r.name == "sso.keys" and r.levelname == "WARNING"]
    assert len(warnings) == 1  # once per outage, not per request
