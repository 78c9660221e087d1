"""The sign-in flow with second factors, through the Flask test client: code after the
password, step-up on acr_values / client / group level, the unreachable-level page, the ID
token's acr/amr, enrollment, devices, the admin API and CLI (R-MFA-3, R-MFA-4)."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from iam import clock
from iam.models.audit import AuditEvent
from sso.mfa import service as mfa
from sso.models import SsoSession
from tests.sso.helpers import (
    API_RESOURCE,
    PASSWORD,
    authorize_url,
    basic,
    csrf_from,
    exchange,
    follow_to_code,
    login,
    make_client,
    make_user,
)
from tests.sso.mfa.helpers import code, enroll, next_step


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(dt.datetime(2026, 11, 26, 0, 0, 5, tzinfo=dt.UTC))


def _claims(client, token: str) -> dict:
    keys = KeySet.import_key_set(client.get("/jwks").get_json())
    return dict(jwt.decode(token, keys, algorithms=["ES256", "RS256"]).claims)


def _post_code(client, path: str, value: str):
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return client.post(path, data={"code": value, "csrf_token": csrf_from(page.get_data(as_text=True))})


def _id_token(client, params, flow, secret) -> dict:
    resp = exchange(client, params["code"], flow, secret)
    assert resp.status_code == 200, resp.get_json()
    return _claims(client, resp.get_json()["id_token"])


def _events(services, name):
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_enrolled_user_gives_a_code_after_the_password(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, csecret = make_client(services)
    url, flow = authorize_url(cid)
    assert client.get(url).headers["Location"].endswith("/login")
    resp = login(client, "alice", PASSWORD)
    assert resp.headers["Location"].endswith("/mfa/")
    assert client.get("/mfa/").headers["Location"].endswith("/mfa/code")
    assert client.get("/account").headers["Location"].endswith("/login")  # no session yet
    wrong = _post_code(client, "/mfa/code", "000000" if code(services, secret) != "000000" else "111111")
    assert wrong.status_code == 401 and "not valid" in wrong.get_data(as_text=True)
    ok = _post_code(client, "/mfa/code", code(services, secret))
    params = follow_to_code(client, ok)
    claims = _id_token(client, params, flow, csecret)
    assert claims["acr"] == "mfa"
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_recovery_code_signs_in_once(services, client):
    user = make_user(services)
    _, codes = enroll(services, user.id)
    cid, csecret = make_client(services)
    url, flow = authorize_url(cid)
    client.get(url)
    login(client, "alice", PASSWORD)
    params = follow_to_code(client, _post_code(client, "/mfa/recovery", codes[0]))
    assert _id_token(client, params, flow, csecret)["acr"] == "mfa"
    client.get("/logout")
    client.cookie_jar.clear() if hasattr(client, "cookie_jar") else None
    other = client.application.test_client()
    other.get(authorize_url(cid)[0])
    login(other, "alice", PASSWORD)
    again = _post_code(other, "/mfa/recovery", codes[0])
    assert again.status_code == 401
    assert [e.details["left"] for e in _events(services, "mfa.recovery_code_used")] == [9]


def test_acr_values_mfa_steps_up_the_existing_session(services, client, mfa_settings):
    mfa_settings.require_enrolled = False  # password alone is enough unless a level needs more
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, csecret = make_client(services)
    params, flow = _plain_sign_in(client, cid)
    first = _id_token(client, params, flow, csecret)
    assert (first["acr"], first["amr"]) == ("password", ["pwd"])
    url, flow = authorize_url(cid, acr_values="mfa")
    resp = client.get(url)
    assert resp.headers["Location"].endswith("/mfa/")  # a step-up prompt, not a refusal
    assert client.get("/mfa/").headers["Location"].endswith("/mfa/code")
    page = client.get("/mfa/code").get_data(as_text=True)
    assert "needs a stronger sign-in (mfa)" in page
    params = follow_to_code(client, _post_code(client, "/mfa/code", code(services, secret)))
    claims = _id_token(client, params, flow, csecret)
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sid"] == first["sid"]  # the same SSO session, raised in place
    assert claims["auth_time"] == first["auth_time"]
    (event,) = _events(services, "login.step_up")
    assert event.details["amr_before"] == ["pwd"] and event.details["acr"] == "mfa"


def _plain_sign_in(client, cid, **kw):
    url, flow = authorize_url(cid, **kw)
    client.get(url)
    return follow_to_code(client, login(client, "alice", PASSWORD)), flow


def test_unknown_acr_values_are_ignored_and_lowest_listed_counts(services, client, mfa_settings):
    mfa_settings.require_enrolled = False
    make_user(services)
    cid, csecret = make_client(services)
    params, flow = _plain_sign_in(client, cid, acr_values="urn:unknown password")
    assert _id_token(client, params, flow, csecret)["acr"] == "password"


def test_level_out_of_reach_gets_a_clear_page_not_a_downgrade(services, client):
    make_user(services)  # no authenticator
    cid, _ = make_client(services)
    url, flow = authorize_url(cid, acr_values="mfa")
    client.get(url)
    resp = login(client, "alice", PASSWORD)
    assert resp.headers["Location"].split("?")[0].endswith("/authorize")
    assert client.get(resp.headers["Location"]).headers["Location"].endswith("/mfa/")
    page = client.get("/mfa/")
    text = page.get_data(as_text=True)
    assert page.status_code == 403
    assert "requires the sign-in level “mfa”" in text and "/mfa/enroll" in text
    cancel = client.get("/mfa/cancel")
    q = parse_qs(urlsplit(cancel.headers["Location"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == [flow.state]
    assert _events(services, "login.step_up_unreachable")


def test_smartcard_level_without_card_is_unreachable_even_with_totp(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    client.get(authorize_url(cid, acr_values="smartcard")[0])
    login(client, "alice", PASSWORD)
    resp = _post_code(client, "/mfa/code", code(services, secret))
    resp = client.get(resp.headers["Location"])  # back to /authorize: still too weak
    assert resp.headers["Location"].endswith("/mfa/")
    page = client.get("/mfa/")
    assert page.status_code == 403 and "smartcard" in page.get_data(as_text=True)
    assert "/mfa/enroll" not in page.get_data(as_text=True)  # an app would not help


def test_client_required_level(services, client, mfa_settings):
    mfa_settings.require_enrolled = False
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, csecret = make_client(services, require_acr="mfa")
    url, flow = authorize_url(cid)
    client.get(url)
    resp = client.get(login(client, "alice", PASSWORD).headers["Location"])
    assert resp.headers["Location"].endswith("/mfa/")
    params = follow_to_code(client, _post_code(client, "/mfa/code", code(services, secret)))
    assert _id_token(client, params, flow, csecret)["acr"] == "mfa"


def test_group_required_level(services, client, mfa_settings):
    mfa_settings.require_enrolled = False
    mfa_settings.group_levels = {"Finance-Admins": "mfa"}
    user = make_user(services, groups=["finance-admins"])
    secret, _ = enroll(services, user.id)
    make_user(services, "bob")
    cid, csecret = make_client(services)
    client.get(authorize_url(cid)[0])
    resp = client.get(login(client, "alice", PASSWORD).headers["Location"])
    assert resp.headers["Location"].endswith("/mfa/")
    bob = client.application.test_client()
    url, flow = authorize_url(cid)
    bob.get(url)
    params = follow_to_code(bob, login(bob, "bob", PASSWORD))
    assert _id_token(bob, params, flow, csecret)["acr"] == "password"


def test_prompt_none_with_too_weak_session_is_interaction_required(services, client, mfa_settings):
    mfa_settings.require_enrolled = False
    make_user(services)
    cid, _ = make_client(services)
    _plain_sign_in(client, cid)
    url, flow = authorize_url(cid, acr_values="mfa", prompt="none")
    q = parse_qs(urlsplit(client.get(url).headers["Location"]).query)
    assert q["error"] == ["interaction_required"]


def test_discovery_announces_the_levels(client):
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["acr_values_supported"] == ["password", "mfa", "smartcard"]


def test_enrollment_pages_reauth_qr_confirm_and_codes_shown_once(services, client):
    make_user(services)
    cid, csecret = make_client(services)
    _plain_sign_in(client, cid)
    page = client.get("/mfa/enroll")
    assert "Confirm your password" in page.get_data(as_text=True)
    wrong = client.post(
        "/mfa/enroll", data={"password": "nope", "csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert wrong.status_code == 401
    page = client.get("/mfa/enroll")
    client.post(
        "/mfa/enroll", data={"password": PASSWORD, "csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    page = client.get("/mfa/enroll").get_data(as_text=True)
    assert "<svg" in page and 'name="code"' in page
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', page).group(1)
    bad = client.post("/mfa/enroll/confirm", data={"code": "12", "csrf_token": csrf_from(page)})
    assert bad.status_code == 401 and secret in bad.get_data(as_text=True)  # same secret again
    done = client.post(
        "/mfa/enroll/confirm", data={"code": code(services, secret), "csrf_token": csrf_from(page)}
    )
    text = done.get_data(as_text=True)
    codes = re.findall(r"<li><code>([A-Z0-9-]{19})</code></li>", text)
    assert done.status_code == 200 and len(codes) == 10
    devices = client.get("/mfa/devices").get_data(as_text=True)
    assert "Authenticator app" in devices and "10 recovery codes left" in devices
    assert not any(c in devices for c in codes) and secret not in devices
    # R-MFA-4: enrolling after a password-only sign-in does not raise this session
    assert "password (pwd)" in devices and "mfa (pwd, otp, mfa)" not in devices
    assert "This session stays at its sign-in level (password)" in text
    with services.transaction() as s:
        row = s.scalars(select(SsoSession)).one()
        assert (row.acr, row.amr) == ("password", ["pwd"])
    url, flow = authorize_url(cid)  # the session's next ID token
    claims = _id_token(client, follow_to_code(client, client.get(url)), flow, csecret)
    assert (claims["acr"], claims["amr"]) == ("password", ["pwd"])
    assert not _events(services, "login.step_up")


def test_remove_device_needs_the_password(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    login(client, "alice", PASSWORD)
    follow_to_code(client, _post_code(client, "/mfa/code", code(services, secret)))
    page = client.get("/mfa/devices").get_data(as_text=True)
    client.post("/mfa/devices/totp/remove", data={"password": "wrong", "csrf_token": csrf_from(page)})
    with services.transaction() as s:
        assert mfa.has_totp(s, user.id)
    client.post("/mfa/devices/totp/remove", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    with services.transaction() as s:
        assert not mfa.has_totp(s, user.id)
    assert _events(services, "mfa.totp.removed")
    no_csrf = client.post("/mfa/devices/totp/remove", data={"password": PASSWORD})
    assert no_csrf.status_code == 400


def test_throttled_code_page(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    login(client, "alice", PASSWORD)
    wrong = "000000" if code(services, secret) != "000000" else "111111"
    for _ in range(services.settings.mfa.throttle_threshold):
        _post_code(client, "/mfa/code", wrong)
    resp = _post_code(client, "/mfa/code", code(services, secret))
    assert resp.status_code == 429 and "Too many wrong codes" in resp.get_data(as_text=True)


def _admin_token(services, client, scope="mfa:admin"):
    cid, secret = make_client(
        services, grant_types=["client_credentials"], scopes=["mfa:admin", "other"], redirect_uris=[]
    )
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": API_RESOURCE},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 200, resp.get_json()
    return cid, resp.get_json()["access_token"]


def test_admin_api_status_and_reset(services, client):
    user = make_user(services)
    enroll(services, user.id)
    cid, token = _admin_token(services, client)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/mfa/users/alice").status_code == 401
    status = client.get("/api/v1/mfa/users/alice", headers=auth).get_json()
    assert status["sub"] == user.id and status["totp"]["digits"] == 6 and status["recovery_codes_left"] == 10
    assert client.get("/api/v1/mfa/users/nobody", headers=auth).status_code == 404
    bad = client.post("/api/v1/mfa/users/alice/reset", json={"why": 1}, headers=auth)
    assert bad.status_code == 400
    done = client.post("/api/v1/mfa/users/alice/reset", json={"reason": "ticket 7"}, headers=auth)
    assert done.get_json() == {
        "sub": user.id,
        "had_totp": True,
        "recovery_codes_removed": 10,
        "sessions_ended": 0,
    }
    (event,) = _events(services, "mfa.reset")
    assert event.actor == f"client:{cid}" and event.severity == "critical"
    _, weak = _admin_token(services, client, scope="other")
    refused = client.post("/api/v1/mfa/users/alice/reset", headers={"Authorization": f"Bearer {weak}"})
    assert refused.status_code == 403


def test_openapi_lists_the_mfa_api(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/api/v1/mfa/users/{user}/reset" in paths and "/api/v1/mfa/users/{user}" in paths


def test_session_row_records_amr_and_acr(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    login(client, "alice", PASSWORD)
    _post_code(client, "/mfa/code", code(services, secret))
    next_step(services)
    with services.transaction() as s:
        row = s.scalars(select(SsoSession).where(SsoSession.sub == user.id)).one()
        assert (row.acr, row.amr) == ("mfa", ["pwd", "otp", "mfa"])


def test_client_level_no_longer_defined_is_refused_not_waived(services, client):
    make_user(services)
    cid, _ = make_client(services, require_acr="platinum")  # e.g. removed from mfa.levels since
    client.get(authorize_url(cid)[0])
    resp = client.get(login(client, "alice", PASSWORD).headers["Location"])
    assert resp.headers["Location"].endswith("/mfa/")
    resp = client.get("/mfa/")
    assert resp.status_code == 403 and "platinum" in resp.get_data(as_text=True)


def test_max_age_after_an_abandoned_step_up_is_a_fresh_sign_in(services, client, mfa_settings):
    mfa_settings.require_enrolled = False
    user = make_user(services)
    enroll(services, user.id)
    cid, csecret = make_client(services)
    params, flow = _plain_sign_in(client, cid)
    first = _id_token(client, params, flow, csecret)
    client.get(authorize_url(cid, acr_values="mfa")[0])
    client.get("/mfa/code")  # the step-up page is shown, then abandoned
    clock.advance(dt.timedelta(seconds=120))
    url, flow = authorize_url(cid, max_age="60")
    assert client.get(url).headers["Location"].endswith("/login")
    params = follow_to_code(client, login(client, "alice", PASSWORD))
    claims = _id_token(client, params, flow, csecret)
    assert claims["auth_time"] > first["auth_time"] and claims["sid"] != first["sid"]


def test_password_only_session_cannot_change_devices_without_the_second_factor(
    services, client, mfa_settings
):
    mfa_settings.require_enrolled = False  # a password-only session of a user with an app
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    _plain_sign_in(client, cid)
    page = client.get("/mfa/devices").get_data(as_text=True)
    resp = client.post("/mfa/devices/totp/remove", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    assert resp.headers["Location"].endswith("/mfa/")
    with services.transaction() as s:
        assert mfa.has_totp(s, user.id)  # the password alone did not remove it
    assert client.get("/mfa/enroll").headers["Location"].endswith("/mfa/")
    assert client.get("/mfa/").headers["Location"].endswith("/mfa/code")
    done = _post_code(client, "/mfa/code", code(services, secret))
    assert done.headers["Location"].endswith("/mfa/devices")
    page = client.get("/mfa/devices").get_data(as_text=True)
    assert "mfa (pwd, otp, mfa)" in page
    client.post("/mfa/devices/totp/remove", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    with services.transaction() as s:
        assert not mfa.has_totp(s, user.id)


def test_admin_reset_can_end_the_users_sessions(services, client):
    user = make_user(services)
    secret, _ = enroll(services, user.id)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    login(client, "alice", PASSWORD)
    follow_to_code(client, _post_code(client, "/mfa/code", code(services, secret)))
    assert client.get("/account").status_code == 200
    _, token = _admin_token(services, client)
    done = client.post(
        "/api/v1/mfa/users/alice/reset",
        json={"reason": "stolen phone", "end_sessions": True},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert done.get_json()["sessions_ended"] == 1
    assert client.get("/account").headers["Location"].endswith("/login")


def test_wrong_passwords_on_the_devices_pages_count_towards_lockout(services, client):
    make_user(services)
    cid, _ = make_client(services)
    client.get(authorize_url(cid)[0])
    follow_to_code(client, login(client, "alice", PASSWORD))
    for _ in range(services.settings.lockout.threshold):
        page = client.get("/mfa/enroll").get_data(as_text=True)
        client.post("/mfa/enroll", data={"password": "wrong", "csrf_token": csrf_from(page)})
    page = client.get("/mfa/enroll").get_data(as_text=True)
    resp = client.post("/mfa/enroll", data={"password": PASSWORD, "csrf_token": csrf_from(page)})
    assert resp.status_code == 401 and "too many failed attempts" in resp.get_data(as_text=True)
    assert [e.details["reason"] for e in _events(services, "mfa.reauth_failed")][-1] == "throttled"
