"""Authorization code + PKCE, ID token, userinfo, refresh rotation (R-SSO-1, R-SSO-2, R-SSO-4)."""

from __future__ import annotations

import datetime as dt

from joserfc import jwt
from joserfc.jwk import KeySet

from iam import clock
from tests.sso.helpers import (
    PASSWORD,
    REDIRECT,
    authorize_url,
    basic,
    exchange,
    login,
    make_client,
    make_user,
    sign_in_and_get_code,
)


def _verify(client, token: str) -> dict:
    keys = KeySet.import_key_set(client.get("/jwks").get_json())
    return dict(jwt.decode(token, keys, algorithms=["ES256", "RS256"]).claims)


def test_code_flow_issues_validated_tokens_with_claims(services, client):
    user = make_user(services, groups=["staff"])
    cid, secret = make_client(services, agency_code="UNIT-42")
    params, flow = sign_in_and_get_code(client, cid)
    assert params["state"] == flow.state
    resp = exchange(client, params["code"], flow, secret)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert resp.headers["Cache-Control"] == "no-store"
    claims = _verify(client, body["id_token"])
    assert claims["sub"] == user.id
    assert claims["aud"] == cid
    assert claims["iss"] == "http://localhost"
    assert claims["nonce"] == flow.nonce
    assert claims["preferred_username"] == "alice"
    assert claims["name"] == "Alice Anđelković"
    assert claims["email"] == "alice@example.test"
    assert claims["groups"] == ["staff"]
    assert claims["acr"] == "password"
    assert claims["amr"] == ["pwd"]
    assert claims["agency_code"] == "UNIT-42"
    assert abs(claims["auth_time"] - clock.timestamp()) < 5
    assert claims["sid"]
    assert claims["at_hash"]
    at = _verify(client, body["access_token"])
    assert at["client_id"] == cid and at["jti"] and at["agency_code"] == "UNIT-42"
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json()["sub"] == user.id
    assert info.get_json()["groups"] == ["staff"]
    assert body["refresh_token"].startswith("iam_rt_")


def test_sso_second_client_needs_no_password(services, client):
    make_user(services)
    cid1, s1 = make_client(services, name="one")
    cid2, s2 = make_client(services, name="two", redirect_uris=["https://two.example/cb"])
    sign_in_and_get_code(client, cid1)
    url, _flow = authorize_url(cid2, redirect_uri="https://two.example/cb")
    resp = client.get(url)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("https://two.example/cb?code=")


def test_unregistered_redirect_uri_is_refused_without_redirect(services, client):
    cid, _ = make_client(services)
    url, _ = authorize_url(cid, redirect_uri="https://rp.example/cb/../evil")
    resp = client.get(url)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    url, _ = authorize_url(cid, redirect_uri=REDIRECT + "?x=1")
    assert client.get(url).status_code == 400


def test_unknown_client_refused(services, client):
    url, _ = authorize_url("nope")
    resp = client.get(url)
    assert resp.status_code == 400 and "Location" not in resp.headers


def test_code_replay_is_refused_and_revokes_issued_tokens(services, client):
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    first = exchange(client, params["code"], flow, secret)
    assert first.status_code == 200
    again = exchange(client, params["code"], flow, secret)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    refresh = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first.get_json()["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert refresh.get_json()["error"] == "invalid_grant"


def test_code_replay_revokes_the_first_access_token(services, client):
    """RFC 6749 §4.1.2: a replayed code revokes every token issued from it, the access token too
    (introspection answers inactive, userinfo refuses it)."""
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    access = exchange(client, params["code"], flow, secret).get_json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    before = client.post("/introspect", data={"token": access}, headers=basic(cid, secret)).get_json()
    assert before["active"] is True
    assert exchange(client, params["code"], flow, secret).status_code == 400
    after = client.post("/introspect", data={"token": access}, headers=basic(cid, secret)).get_json()
    assert after == {"active": False}
    info = client.get("/userinfo", headers=bearer)
    assert info.status_code == 401 and info.get_json()["error"] == "invalid_token"


def test_pkce_mismatch_refused(services, client):
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    flow.verifier = "x" * 50
    resp = exchange(client, params["code"], flow, secret)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"


def test_pkce_plain_refused_and_required_for_public_clients(services, client):
    cid, _ = make_client(services, token_endpoint_auth_method="none")
    url, _ = authorize_url(cid, code_challenge_method="plain")
    resp = client.get(url)
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"]
    make_user(services)
    # public client without code_challenge
    from urllib.parse import urlencode

    q = urlencode({"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT, "scope": "openid"})
    resp = client.get("/authorize?" + q)
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"]


def test_pkce_challenge_without_method_is_refused(services, client):
    """S256 only: a challenge without a method would default to "plain" (RFC 9700 §2.1.1)."""
    from urllib.parse import urlencode

    cid, _ = make_client(services, token_endpoint_auth_method="none")
    q = urlencode(
        {
            "response_type": "code",
            "client_id": cid,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": "a" * 50,
        }
    )
    resp = client.get("/authorize?" + q)
    assert resp.status_code == 302 and "error=invalid_request" in resp.headers["Location"]


def test_missing_redirect_uri_is_a_clear_error(services, client):
    cid, _ = make_client(services)
    resp = client.get(f"/authorize?response_type=code&client_id={cid}&scope=openid")
    assert resp.status_code == 400 and b"redirect_uri" in resp.data


def test_public_client_code_flow(services, client):
    make_user(services)
    cid, secret = make_client(services, token_endpoint_auth_method="none")
    assert secret is None
    params, flow = sign_in_and_get_code(client, cid)
    resp = exchange(client, params["code"], flow, None)
    assert resp.status_code == 200, resp.get_json()


def test_wrong_redirect_uri_at_token_endpoint(services, client):
    make_user(services)
    cid, secret = make_client(services, redirect_uris=[REDIRECT, "https://rp.example/other"])
    params, flow = sign_in_and_get_code(client, cid)
    flow.redirect_uri = "https://rp.example/other"
    assert exchange(client, params["code"], flow, secret).get_json()["error"] == "invalid_grant"


def test_expired_code_refused(services, client):
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    clock.advance(dt.timedelta(seconds=services.settings.tokens.code_lifetime + 1))
    assert exchange(client, params["code"], flow, secret).get_json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_revokes_family(services, client):
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    rt1 = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]

    def refresh(rt: str):
        return client.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": rt},
            headers=basic(cid, secret),
        )

    r2 = refresh(rt1)
    assert r2.status_code == 200, r2.get_json()
    rt2 = r2.get_json()["refresh_token"]
    assert rt2 != rt1
    assert "id_token" in r2.get_json()
    reuse = refresh(rt1)
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    # the whole family is revoked: the legitimate newer token no longer works
    assert refresh(rt2).get_json()["error"] == "invalid_grant"


def test_refresh_token_bound_to_client(services, client):
    make_user(services)
    cid, secret = make_client(services)
    other, other_secret = make_client(services, name="other")
    params, flow = sign_in_and_get_code(client, cid)
    rt = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    resp = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": rt},
        headers=basic(other, other_secret),
    )
    assert resp.get_json()["error"] == "invalid_grant"


def test_disabled_account_cannot_refresh_or_use_userinfo(services, client):
    user = make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    tokens = exchange(client, params["code"], flow, secret).get_json()
    services.directory.disable(user.id)  # disabled in the directory, outside the provider
    # the token endpoint trusts the directory's last answer for tokens.directory_cache_seconds
    clock.advance(dt.timedelta(seconds=services.settings.tokens.directory_cache_seconds + 1))
    resp = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert info.status_code == 401
    # the SSO session no longer serves new authorizations either
    url, _ = authorize_url(cid)
    assert client.get(url).headers["Location"].endswith("/login")


def test_prompt_none_without_session_returns_login_required(services, client):
    cid, _ = make_client(services)
    url, flow = authorize_url(cid, prompt="none")
    resp = client.get(url)
    assert resp.status_code == 302
    loc = resp.headers["Location"]
    assert loc.startswith(REDIRECT) and "error=login_required" in loc and f"state={flow.state}" in loc


def test_prompt_login_forces_password_again(services, client):
    make_user(services)
    cid, _ = make_client(services)
    sign_in_and_get_code(client, cid)
    url, _ = authorize_url(cid, prompt="login")
    resp = client.get(url)
    assert resp.headers["Location"].endswith("/login")
    resp = login(client, "alice", PASSWORD)
    assert resp.status_code == 302  # back to /authorize, which now issues a code


def test_max_age_forces_reauthentication(services, client):
    make_user(services)
    cid, _ = make_client(services)
    sign_in_and_get_code(client, cid)
    clock.advance(dt.timedelta(seconds=120))
    url, _ = authorize_url(cid, max_age="60")
    assert client.get(url).headers["Location"].endswith("/login")
    url, _ = authorize_url(cid, max_age="600")
    assert client.get(url).headers["Location"].startswith(REDIRECT)


def test_idle_and_absolute_session_timeouts(services, client):
    make_user(services)
    cid, _ = make_client(services)
    sign_in_and_get_code(client, cid)
    clock.advance(dt.timedelta(seconds=services.settings.session.idle_timeout + 1))
    url, _ = authorize_url(cid)
    assert client.get(url).headers["Location"].endswith("/login")


def test_scope_outside_client_registration_refused(services, client):
    cid, _ = make_client(services, scopes=["openid"])
    url, _ = authorize_url(cid, scope="openid groups")
    resp = client.get(url)
    assert resp.status_code == 302 and "error=invalid_scope" in resp.headers["Location"]


def _refresh(client, cid: str, secret: str, rt: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=basic(cid, secret)
    )


def test_a_disable_in_the_directory_reaches_refresh_within_the_documented_bound(services, client):
    """tokens.directory_cache_seconds: the directory's answer is reused for that long (README)."""
    user = make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    rt = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    bound = services.settings.tokens.directory_cache_seconds
    assert bound > 0
    services.directory.disable(user.id)  # in AD, behind the provider's back
    clock.advance(dt.timedelta(seconds=bound - 1))
    within = _refresh(client, cid, secret, rt)
    assert within.status_code == 200  # the last answer still stands
    clock.advance(dt.timedelta(seconds=2))
    after = _refresh(client, cid, secret, within.get_json()["refresh_token"])
    assert after.status_code == 400 and after.get_json()["error"] == "invalid_grant"


def test_a_disable_through_the_provider_stops_refresh_at_once(services, client):
    """iam user disable / an HR leaver / the help desk: no bound, on every node (the identities
    row is read on every refresh), even with the directory's answer cached."""
    from iam.identities import disable_identity

    user = make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    rt = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    rt = _refresh(client, cid, secret, rt).get_json()["refresh_token"]  # the cache is warm
    with services.transaction() as s:
        disable_identity(s, sub=user.id, actor="test", reason="leaver", write_directory=False)
    resp = _refresh(client, cid, secret, rt)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
