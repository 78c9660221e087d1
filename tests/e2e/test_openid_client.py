"""The provider against an independent, certified relying-party library: panva's openid-client
v6 (``node/rp.mjs``) signs in through the real login page of a running provider, on the
built-in directory and on the real Samba AD DC, and checks what a real application relies on."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from ldap3 import MODIFY_ADD

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    BackchannelReceiver,
    LiveProvider,
    NodeRP,
    samba_fixture,
    unique,
)

pytestmark = pytest.mark.e2e

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
AD_PASSWORD = "Str0ng-Passw0rd!1"
BOTH_DIRECTORIES = pytest.mark.parametrize(
    "live_provider", ["local", pytest.param("ad", marks=pytest.mark.samba)], indirect=True
)


@dataclass
class Person:
    """A user who can sign in, and what the provider must say about them."""

    id: str
    username: str
    password: str
    name: str
    email: str
    groups: list[str] = field(default_factory=list)


def _local_alice(provider: LiveProvider) -> Person:
    user = provider.services().directory.find_user(username="alice")
    assert user is not None, "the demo seed did not create alice"
    return Person(
        id=user.id,
        username="alice",
        password=DEMO_PASSWORD,
        name="Alice Anđelković",
        email="alice@example.test",
        groups=["finance", "staff"],
    )


def _ad_person(request: pytest.FixtureRequest) -> Person:
    """A new AD user in the test's OU, member of a group that is itself nested in another."""
    from iam.directory.base import NewUser

    ad = samba_fixture(request, "ad_directory")
    username = unique("e2e")
    inner, outer = unique("e2e-team-"), unique("e2e-dept-")
    inner_group = ad.create_group(inner)
    outer_group = ad.create_group(outer)
    nest = getattr(ad, "add_group_to_group", None)
    if nest is not None:
        nest(inner, outer)
    else:  # the directory API has no group nesting (yet): nest with the DC's admin connection
        samba_fixture(request, "samba_dc").modify(
            outer_group.dn, {"member": [(MODIFY_ADD, [inner_group.dn])]}
        )
    user = ad.create_user(
        NewUser(
            username=username,
            given_name="Erika",
            family_name="Mustermann",
            display_name="Erika Mustermann",
            email=f"{username}@example.test",
        )
    )
    ad.set_password(user.id, AD_PASSWORD, must_change=False)
    ad.enable(user.id)
    ad.add_member(inner, user.id)
    return Person(
        id=user.id,
        username=username,
        password=AD_PASSWORD,
        name="Erika Mustermann",
        email=f"{username}@example.test",
        groups=sorted([inner, outer]),
    )


@pytest.fixture
def person(live_provider: LiveProvider, request: pytest.FixtureRequest) -> Person:
    if live_provider.kind == "ad":
        return _ad_person(request)
    return _local_alice(live_provider)


def _jwks(provider: LiveProvider) -> KeySet:
    with urllib.request.urlopen(f"{provider.issuer}/jwks", timeout=10) as resp:  # noqa: S310
        return KeySet.import_key_set(json.load(resp))


@BOTH_DIRECTORIES
def test_code_flow_userinfo_refresh_and_logout(
    live_provider: LiveProvider, node_rp: NodeRP, person: Person
) -> None:
    client = live_provider.add_rp_client()
    started = int(time.time())
    out = node_rp.run(live_provider, client, username=person.username, password=person.password)

    assert out["discovery"]["issuer"] == live_provider.issuer
    assert out["discovery"]["code_challenge_methods_supported"] == ["S256"]
    assert out["login_form"] == {"action": "/login", "method": "POST", "hidden": ["csrf_token"]}
    assert out["callback_state_matches"] is True
    assert out["nonce_matches"] is True

    claims = out["id_token_claims"]  # already validated by openid-client
    assert claims["iss"] == live_provider.issuer
    assert claims["aud"] == client["client_id"]
    assert claims["sub"] == person.id  # AD: the objectGUID; built-in: the user's UUID
    assert claims["preferred_username"] == person.username
    assert claims["name"] == person.name
    assert claims["email"] == person.email
    assert claims["email_verified"] is True
    assert claims["groups"] == person.groups
    assert claims["acr"] == "password"
    assert claims["amr"] == ["pwd"]
    assert started - 5 <= claims["auth_time"] <= int(time.time()) + 5
    assert isinstance(claims["sid"], str)
    assert len(claims["sid"]) >= 16
    assert out["id_token_header"]["alg"] in ("ES256", "RS256")
    assert out["access_token_header"]["typ"] == "at+jwt"
    assert out["access_token_claims"]["sid"] == claims["sid"]
    assert out["token_response"]["has_refresh_token"] is True
    assert set(out["token_response"]["scope"].split()) == {"openid", "profile", "email", "groups"}

    info = out["userinfo"]
    assert info["sub"] == person.id
    assert info["preferred_username"] == person.username
    assert info["name"] == person.name
    assert info["email"] == person.email
    assert info["groups"] == person.groups

    refresh = out["refresh"]
    assert refresh["rotated"] == {"ok": True, "new_refresh_token": True, "differs": True}
    refreshed = refresh["refreshed_id_token_claims"]
    assert refreshed["sub"] == person.id
    assert refreshed["auth_time"] == claims["auth_time"]  # a refresh is not a new sign-in
    assert refreshed["sid"] == claims["sid"]
    assert "nonce" not in refreshed
    assert refresh["refreshed_userinfo"]["sub"] == person.id
    # the rotated-out token used again: refused, and the whole family with it
    assert refresh["reuse_old"]["error"] == "invalid_grant"
    assert refresh["reuse_old"]["status"] == 400
    assert refresh["new_after_reuse"]["error"] == "invalid_grant"

    logout = out["logout"]
    assert logout["status"] in (302, 303)
    assert logout["redirect_to"] == client["post_logout_redirect_uri"]
    assert logout["state"] == logout["expected_state"]
    assert logout["session_cookie_cleared"] is True
    assert logout["prompt_none_after"] == "login_required"


@pytest.mark.samba
@pytest.mark.parametrize("live_provider", ["ad"], indirect=True)
def test_refresh_refused_once_ad_account_is_disabled(
    live_provider: LiveProvider, node_rp: NodeRP, person: Person, request: pytest.FixtureRequest
) -> None:
    ad = samba_fixture(request, "ad_directory")
    client = live_provider.add_rp_client()
    signed_in = node_rp.run(
        live_provider, client, mode="login", username=person.username, password=person.password
    )
    tokens = signed_in["tokens"]
    assert tokens["refresh_token"]

    # the token family is healthy while the account is enabled
    fresh = node_rp.run(
        live_provider,
        client,
        mode="refresh",
        username=person.username,
        password=person.password,
        env={"RP_REFRESH_TOKEN": tokens["refresh_token"], "RP_EXPECT": "ok"},
    )
    new_refresh = fresh["refresh"]["refresh_token"]
    assert new_refresh
    assert new_refresh != tokens["refresh_token"]

    ad.disable(person.id)  # in AD itself, not through the provider

    refused = node_rp.run(
        live_provider,
        client,
        mode="refresh",
        username=person.username,
        password=person.password,
        env={"RP_REFRESH_TOKEN": new_refresh, "RP_EXPECT": "invalid_grant"},
    )
    assert refused["refresh"]["ok"] is False
    assert refused["refresh"]["error"] == "invalid_grant"
    assert refused["refresh"]["status"] == 400

    # the access token issued before is no longer honoured by userinfo either
    req = urllib.request.Request(
        f"{live_provider.issuer}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert err.value.code == 401
    err.value.close()


@BOTH_DIRECTORIES
def test_backchannel_logout_token(
    live_provider: LiveProvider,
    node_rp: NodeRP,
    person: Person,
    backchannel_receiver: BackchannelReceiver,
) -> None:
    client = live_provider.add_rp_client(backchannel_logout_uri=backchannel_receiver.url())
    assert client["backchannel_logout_uri"] == backchannel_receiver.url()
    out = node_rp.run(live_provider, client, username=person.username, password=person.password)
    claims = out["id_token_claims"]

    post = backchannel_receiver.wait_for(lambda r: "logout_token" in r.form)
    assert post.path == "/backchannel-logout"
    assert post.headers["content-type"].startswith("application/x-www-form-urlencoded")
    (value,) = post.form["logout_token"]

    token = jwt.decode(value, _jwks(live_provider), algorithms=["ES256", "RS256"])
    assert token.header["typ"] == "logout+jwt"
    assert token.header["kid"]
    logout = token.claims
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live_provider.issuer},
        aud={"essential": True, "value": client["client_id"]},
        sub={"essential": True, "value": person.id},
        sid={"essential": True, "value": claims["sid"]},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    registry.validate(logout)  # also checks exp/iat/nbf against the clock
    assert logout["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in logout
    assert logout["exp"] - logout["iat"] <= 300
    assert len(backchannel_receiver.posts) == 1, "one logout, one back-channel POST"
