"""PIM pages and JSON API through Flask's test client (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from iam import clock
from iam.models.audit import AuditEvent
from pim import service
from pim.models import ElevationRequest, State
from sso import service as sso_service
from tests.pim.conftest import Env
from tests.sso.helpers import (
    API_RESOURCE,
    PASSWORD,
    csrf_from,
    exchange,
    login,
    make_client,
    sign_in_and_get_code,
)


@pytest.fixture
def web(pim: Env, app: Flask) -> tuple[Env, Flask]:
    with pim.tx() as s:
        service.add_eligibility(s, pim.services, actor=pim.actor("sec"), role="ops", username="alice")
    pim.run_jobs()
    return pim, app


def _browser(app: Flask, who: str) -> Any:
    c = app.test_client()
    resp = login(c, who, PASSWORD)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    return c


def _csrf(c: Any) -> str:
    return csrf_from(c.get("/account").get_data(as_text=True))


def _bearer(env: Env, app: Flask, who: str, *, acr: str = "mfa", scope: str = "openid pim") -> dict[str, str]:
    signer = app.extensions["sso.signer"]
    amr = ["pwd", "otp"] if acr == "mfa" else ["pwd"]
    tool = env.__dict__.get("tool")
    if tool is None:
        tool = env.__dict__["tool"] = make_client(env.services, name="PIM tool", scopes=["openid", "pim"])[0]
    token, _ = signer.access_token(
        client_id=tool,
        sub=env.users[who].id,
        scope=scope,
        audience=[API_RESOURCE],
        lifetime=600,
        extra={"acr": acr, "amr": amr},
    )
    return {"Authorization": f"Bearer {token}"}


def _state(env: Env, rid: str) -> str:
    with env.tx() as s:
        row = s.get(ElevationRequest, rid)
        assert row is not None
        return row.state


def test_pages_need_sign_in(web: tuple[Env, Flask]) -> None:
    _, app = web
    c = app.test_client()
    for path in ("/pim/", "/pim/approvals", "/pim/overview", "/pim/request/ops"):
        resp = c.get(path)
        assert resp.status_code == 302 and resp.headers["Location"].endswith("/login"), path


def test_request_step_up_approve_through_pages(web: tuple[Env, Flask]) -> None:
    env, app = web
    alice = _browser(app, "alice")
    page = alice.get("/pim/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Operations admins" in html and "password" in html  # level shown
    form = alice.get("/pim/request/ops")
    token = csrf_from(form.get_data(as_text=True))
    data = {"csrf_token": token, "minutes": "20", "justification": "rotate the backup keys"}
    resp = alice.post("/pim/request/ops", data=data)
    assert resp.status_code == 403 and "Stronger sign-in needed" in resp.get_data(as_text=True)
    resp = alice.post("/pim/request/ops", data={**data, "password": "wrong-password-1"})
    assert resp.status_code == 403  # a wrong re-check is no step-up
    resp = alice.post("/pim/request/ops", data={**data, "password": PASSWORD})  # dev mode re-check
    assert resp.status_code == 302
    with env.tx() as s:
        req = s.scalars(select(ElevationRequest)).one()
        rid = req.id
        assert req.level == "mfa" and req.duration == 20 * 60
    assert alice.post("/pim/request/ops", data={**data, "password": PASSWORD}).status_code == 409

    # the requester cannot approve, even by crafting the POST
    inbox = alice.get("/pim/approvals").get_data(as_text=True)
    assert rid not in inbox
    resp = alice.post(f"/pim/requests/{rid}/decide", data={"csrf_token": _csrf(alice), "verdict": "approve"})
    assert resp.status_code == 303 and _state(env, rid) == State.REQUESTED
    # nor can someone who is not an approver; nor without the CSRF token
    eve = _browser(app, "eve")
    eve_page = eve.get("/pim/approvals").get_data(as_text=True)
    assert rid not in eve_page
    eve.post(f"/pim/requests/{rid}/decide", data={"csrf_token": _csrf(eve), "verdict": "approve"})
    assert _state(env, rid) == State.REQUESTED
    boss = _browser(app, "boss")
    inbox = boss.get("/pim/approvals").get_data(as_text=True)
    assert rid in inbox
    assert boss.post(f"/pim/requests/{rid}/decide", data={"verdict": "approve"}).status_code == 400
    # a password-only session cannot decide (R-MFA-4): the role's level, as for requesting
    resp = boss.post(
        f"/pim/requests/{rid}/decide", data={"csrf_token": csrf_from(inbox), "verdict": "approve"}
    )
    assert resp.status_code == 403 and "Stronger sign-in needed" in resp.get_data(as_text=True)
    assert _state(env, rid) == State.REQUESTED
    resp = boss.post(  # dev mode: the password re-check stands in for the second factor
        f"/pim/requests/{rid}/decide",
        data={"csrf_token": csrf_from(inbox), "verdict": "approve", "password": PASSWORD},
    )
    assert resp.status_code == 303 and _state(env, rid) == State.APPROVED
    env.run_jobs()

    mine = alice.get("/pim/").get_data(as_text=True)
    assert "Show password once" in mine and "adm-alice" in mine
    shown = alice.post(f"/pim/requests/{rid}/password", data={"csrf_token": csrf_from(mine)})
    assert shown.status_code == 200 and 'id="admin-password"' in shown.get_data(as_text=True)
    assert "Show password once" not in alice.get("/pim/").get_data(as_text=True)

    assert boss.get("/pim/overview").status_code == 403
    sec = _browser(app, "sec")
    overview = sec.get("/pim/overview")
    assert overview.status_code == 200 and "adm-alice" in overview.get_data(as_text=True)
    resp = sec.post(
        f"/pim/requests/{rid}/revoke",
        data={"csrf_token": csrf_from(overview.get_data(as_text=True)), "reason": "test over"},
    )
    assert resp.status_code == 303 and _state(env, rid) == State.REVOKED


def test_api(web: tuple[Env, Flask]) -> None:
    env, app = web
    c = app.test_client()
    assert c.get("/api/v1/pim/me").status_code == 401
    assert c.get("/api/v1/pim/me", headers={"Authorization": "Bearer junk"}).status_code == 401
    no_scope = _bearer(env, app, "alice", scope="openid")
    assert c.get("/api/v1/pim/me", headers=no_scope).status_code == 403
    weak = _bearer(env, app, "alice", acr="password")
    body = {"role": "ops", "minutes": 15, "justification": "rotate the backup keys"}
    resp = c.post("/api/v1/pim/requests", json=body, headers=weak)
    assert resp.status_code == 401 and resp.get_json()["error"] == "insufficient_user_authentication"
    assert 'acr_values="mfa"' in resp.headers["WWW-Authenticate"]
    alice = _bearer(env, app, "alice")
    bad = c.post("/api/v1/pim/requests", json={**body, "extra": 1}, headers=alice)
    assert bad.status_code == 400 and "extra" in bad.get_json()["error_description"]
    resp = c.post("/api/v1/pim/requests", json=body, headers=alice)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    assert c.post(f"/api/v1/pim/requests/{rid}/approve", json={}, headers=alice).status_code == 403
    assert (
        c.post(f"/api/v1/pim/requests/{rid}/approve", json={}, headers=_bearer(env, app, "eve")).status_code
        == 403
    )
    assert c.get(f"/api/v1/pim/requests/{rid}", headers=_bearer(env, app, "eve")).status_code == 404
    boss = _bearer(env, app, "boss")
    assert [r["id"] for r in c.get("/api/v1/pim/approvals", headers=boss).get_json()["requests"]] == [rid]
    # R-MFA-4: deciding needs the role's level; the token's acr says password → RFC 9470 answer
    weak_boss = _bearer(env, app, "boss", acr="password")
    resp = c.post(f"/api/v1/pim/requests/{rid}/approve", json={}, headers=weak_boss)
    assert resp.status_code == 401 and resp.get_json()["error"] == "insufficient_user_authentication"
    assert 'error="insufficient_user_authentication", acr_values="mfa"' in resp.headers["WWW-Authenticate"]
    assert _state(env, rid) == State.REQUESTED
    resp = c.post(f"/api/v1/pim/requests/{rid}/approve", json={"comment": "go"}, headers=boss)
    assert resp.status_code == 200 and resp.get_json()["state"] == "approved"
    assert (
        c.post(f"/api/v1/pim/requests/{rid}/approve", json={}, headers=_bearer(env, app, "boss2")).status_code
        == 409
    )
    assert c.post(f"/api/v1/pim/requests/{rid}/password", headers=alice).status_code == 409  # not yet
    env.run_jobs()  # written to the directory and read back: active
    me = c.get("/api/v1/pim/me", headers=alice).get_json()
    assert [r["id"] for r in me["active"]] == [rid] and me["active"][0]["remaining_seconds"] > 800
    pw = c.post(f"/api/v1/pim/requests/{rid}/password", headers=alice)
    assert pw.status_code == 200 and len(pw.get_json()["password"]) >= 32
    assert c.post(f"/api/v1/pim/requests/{rid}/password", headers=alice).status_code == 409
    resp = c.post(f"/api/v1/pim/requests/{rid}/cancel", json={"reason": "done"}, headers=alice)
    assert resp.get_json()["state"] == "cancelled"
    assert c.get("/api/v1/pim/overview", headers=boss).status_code == 403
    assert c.get("/api/v1/pim/overview", headers=_bearer(env, app, "sec")).status_code == 200
    from tests.sso.helpers import make_user

    make_user(env.services, "ops-shared")
    with env.tx() as s:
        service.add_shared(s, env.services, actor=env.actor("sec"), username="ops-shared", roles=["ops"])
    env.run_jobs()
    assert c.post("/api/v1/pim/shared/ops-shared/checkout", headers=boss).status_code == 403
    shared = c.post("/api/v1/pim/shared/ops-shared/checkout", headers=alice)
    assert shared.status_code == 200 and env.services.directory.authenticate(
        "ops-shared", shared.get_json()["password"]
    )
    with env.tx() as s:  # no password in the audit log
        for ev in s.scalars(select(AuditEvent)):
            assert pw.get_json()["password"] not in str(ev.details)


def test_roles_api_db_overrides_file(web: tuple[Env, Flask]) -> None:
    env, app = web
    c = app.test_client()
    sec, boss = _bearer(env, app, "sec"), _bearer(env, app, "boss")
    new = {"groups": ["Ops Admins"], "approvers": ["boss"], "max_minutes": 10, "default_minutes": 5}
    assert c.put("/api/v1/pim/roles/ops", json=new, headers=boss).status_code == 403
    bad = c.put("/api/v1/pim/roles/ops", json={**new, "max_minutez": 3}, headers=sec)
    assert bad.status_code == 400 and "max_minutez" in bad.get_json()["error_description"]
    resp = c.put("/api/v1/pim/roles/ops", json=new, headers=sec)
    assert resp.status_code == 200 and resp.get_json()["source"] == "database"
    role = c.get("/api/v1/pim/roles/ops", headers=sec).get_json()
    assert role["max_minutes"] == 10 and role["source"] == "database"
    assert c.get("/api/v1/pim/roles/ops", headers=_bearer(env, app, "eve")).status_code == 403
    assert c.delete("/api/v1/pim/roles/ops", headers=sec).status_code == 204
    role = c.get("/api/v1/pim/roles/ops", headers=sec).get_json()
    assert role["max_minutes"] == 120 and role["source"] == "file"


def test_openapi_has_pim_paths(web: tuple[Env, Flask]) -> None:
    _, app = web
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert (
        "/api/v1/pim/requests" in doc["paths"] and "/api/v1/pim/requests/{request_id}/approve" in doc["paths"]
    )
    assert "/token" in doc["paths"]


def test_admin_account_tokens_end_with_the_elevation(web: tuple[Env, Flask]) -> None:
    """Sign in to the provider as the admin account with the password shown once: the ID and
    access token expire at the end of the elevation, and name the role."""
    env, app = web
    env.services.settings.tokens.access_token_lifetime = 3600
    env.services.settings.tokens.id_token_lifetime = 3600
    try:
        with env.tx() as s:
            rid = service.request_elevation(
                s, env.services, actor=env.actor("alice"), role="ops", minutes=10, justification="x" * 12
            ).id
        with env.tx() as s:
            service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
        env.run_jobs()
        with env.tx() as s:
            password = service.reveal_secret(s, env.services, actor=env.actor("alice"), request_id=rid)
            ends = s.get(ElevationRequest, rid).ends_at  # type: ignore[union-attr]
        client_id, secret = make_client(env.services)
        c = app.test_client()
        params, flow = sign_in_and_get_code(c, client_id, username="adm-alice", password=password)
        resp = exchange(c, params["code"], flow, secret)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        signer = app.extensions["sso.signer"]
        access = signer.verify(body["access_token"])
        id_token = signer.verify(body["id_token"])
        assert ends is not None
        assert access["exp"] == int(ends.timestamp()) == id_token["exp"]
        assert access["pim_roles"] == ["ops"] and body["expires_in"] <= 600
        # an ordinary account's token is untouched
        params, flow = sign_in_and_get_code(app.test_client(), client_id, username="boss")
    finally:
        env.services.settings.tokens.access_token_lifetime = 600
        env.services.settings.tokens.id_token_lifetime = 600
    clock.advance(dt.timedelta(minutes=11))
    env.run_jobs()
    with env.tx() as s:
        assert not sso_service.user_sessions(s, env.services.directory.find_user(username="adm-alice").id)  # type: ignore[union-attr]


def test_break_glass_page_needs_the_strongest_level(web: tuple[Env, Flask]) -> None:
    env, app = web
    with env.tx() as s:
        service.add_eligibility(s, env.services, actor=env.actor("sec"), role="glass", username="alice")
    alice = _browser(app, "alice")
    form = alice.get("/pim/request/glass").get_data(as_text=True)
    assert "Emergency use only" in form and 'type="hidden"' in form
    data = {"csrf_token": csrf_from(form), "minutes": "30", "justification": "ransomware spreading now"}
    resp = alice.post("/pim/request/glass", data={**data, "password": PASSWORD})
    # the dev-mode password re-check stands in for mfa only, never for a smart card
    assert resp.status_code == 403 and "smartcard" in resp.get_data(as_text=True)
    with env.tx() as s:
        assert s.scalars(select(ElevationRequest)).first() is None


def test_sign_in_to_the_provider_as_the_admin_account(web: tuple[Env, Flask]) -> None:
    """Instead of the password: the browser's session switches to the admin account, keeps the
    person's level, ends with the elevation."""
    from sso.models import SsoSession

    env, app = web
    with env.tx() as s:
        rid = service.request_elevation(
            s, env.services, actor=env.actor("alice"), role="ops", minutes=10, justification="x" * 12
        ).id
    alice = _browser(app, "alice")
    token = _csrf(alice)
    assert alice.post(f"/pim/requests/{rid}/use", data={"csrf_token": token}).status_code == 303
    assert "Signed in as" in alice.get("/account").get_data(as_text=True)  # still alice: not active yet
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    mallory = _browser(app, "eve")  # someone else's request: refused
    assert mallory.post(f"/pim/requests/{rid}/use", data={"csrf_token": _csrf(mallory)}).status_code == 303
    resp = alice.post(f"/pim/requests/{rid}/use", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/account")
    assert "adm-alice" in alice.get("/account").get_data(as_text=True) or "(admin)" in alice.get(
        "/account"
    ).get_data(as_text=True)
    admin_id = env.services.directory.find_user(username="adm-alice").id  # type: ignore[union-attr]
    with env.tx() as s:
        live = s.scalars(select(SsoSession).where(SsoSession.sub == admin_id)).all()
        req = s.get(ElevationRequest, rid)
        assert len(live) == 1 and req is not None and live[0].expires_at == req.ends_at
        assert live[0].acr == "password"  # the person's level is carried, never raised
        assert len(sso_service.user_sessions(s, env.users["eve"].id)) == 1
    clock.advance(dt.timedelta(minutes=11))
    env.run_jobs()
    assert alice.get("/account").status_code == 302  # the admin session ended with the elevation


def test_officer_manages_eligibility_on_the_overview(web: tuple[Env, Flask]) -> None:
    from pim.models import Eligibility

    env, app = web
    boss = _browser(app, "boss")
    boss.post("/pim/eligibility", data={"csrf_token": _csrf(boss), "role": "ops", "username": "eve"})
    sec = _browser(app, "sec")
    page = sec.get("/pim/overview").get_data(as_text=True)
    assert 'id="eligibility"' in page and ">alice<" in page
    resp = sec.post(
        "/pim/eligibility", data={"csrf_token": csrf_from(page), "role": "ops", "username": "eve"}
    )
    assert resp.status_code == 303
    with env.tx() as s:
        names = sorted(s.scalars(select(Eligibility.username).where(Eligibility.role == "ops")))
    assert names == ["alice", "eve"]  # boss's attempt did nothing
    sec.post(
        "/pim/eligibility/remove", data={"csrf_token": csrf_from(page), "role": "ops", "username": "eve"}
    )
    with env.tx() as s:
        assert sorted(s.scalars(select(Eligibility.username))) == ["alice"]
