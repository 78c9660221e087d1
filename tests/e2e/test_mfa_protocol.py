"""Levels of assurance seen by an independent relying party (panva/openid-client v6): step-up
on ``acr_values``, a client's minimum level, a group's level with membership read from the real
Samba AD DC; the ID token's ``acr``/``amr`` state what was achieved (R-MFA-3, R-MFA-4).

These tests run their own provider processes (not the shared pool), configured with
``IAM_MFA__*`` settings: ``require_enrolled = false`` (a password alone is enough unless a level
demands more, so the step-up is visible) and, for AD, a group that requires ``mfa``.
The provider runs on real time; a test enrolls with the code of the *previous* time step (inside
the ±1 window) so the relying party's current code is fresh — no sleeping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from ldap3 import MODIFY_ADD

from sso.mfa import service as mfa
from tests.e2e.conftest import (
    DEMO_PASSWORD,
    LiveProvider,
    NodeRP,
    _provider_env,
    free_port,
    samba_fixture,
    unique,
)

pytestmark = pytest.mark.e2e

AD_PASSWORD = "Str0ng-Passw0rd!1"


def _start(tmp: pytest.TempPathFactory, kind: str, directory: Any, extra: dict[str, str]) -> LiveProvider:
    var_dir = tmp.mktemp(f"mfa-provider-{kind}")
    port = free_port()
    env = _provider_env(var_dir, port, directory)
    env.update(extra)
    provider = LiveProvider(kind=kind, port=port, var_dir=var_dir, env=env, directory_settings=directory)
    provider.start()
    return provider


def _checked(provider: LiveProvider) -> Iterator[LiveProvider]:
    mark = provider.log_mark()
    yield provider
    assert provider.alive(), provider.diagnostics()
    new = provider.logs_since(mark)
    assert "Traceback" not in new, new[-6000:]


@pytest.fixture(scope="module")
def _local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    provider = _start(tmp_path_factory, "local", None, {"IAM_MFA__REQUIRE_ENROLLED": "false"})
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def local_provider(_local: LiveProvider) -> Iterator[LiveProvider]:
    yield from _checked(_local)


ADMIN_GROUP = unique("e2e-mfa-admins-")


@pytest.fixture(scope="module")
def _ad(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[LiveProvider]:
    directory = samba_fixture(request, "samba_ad")
    provider = _start(
        tmp_path_factory,
        "ad",
        directory,
        {
            "IAM_MFA__REQUIRE_ENROLLED": "false",
            "IAM_MFA__GROUP_LEVELS": json.dumps({ADMIN_GROUP: "mfa"}),
        },
    )
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def ad_provider(_ad: LiveProvider) -> Iterator[LiveProvider]:
    yield from _checked(_ad)


def enroll(provider: LiveProvider, sub: str) -> str:
    """Enroll an authenticator for ``sub`` in the provider's database; returns its secret."""
    svc = provider.services()
    m = svc.settings.mfa
    with svc.transaction() as s:
        e = mfa.start_enrollment(s, m, svc.cipher, sub=sub, account_name=sub, issuer_label="e2e")
    previous = pyotp.TOTP(e.secret, digits=m.digits, interval=m.period).at(time.time() - m.period)
    with svc.transaction() as s:
        codes = mfa.confirm_enrollment(
            s, m, svc.cipher, sub=sub, credential_id=e.credential_id, code=previous
        )
    assert codes is not None
    return e.secret


def _sub(provider: LiveProvider, username: str) -> str:
    user = provider.services().directory.find_user(username=username)
    assert user is not None
    return str(user.id)


def test_acr_values_step_up_on_the_same_session(local_provider: LiveProvider, node_rp: NodeRP) -> None:
    secret = enroll(local_provider, _sub(local_provider, "alice"))
    client = local_provider.add_rp_client()
    out = node_rp.run(
        local_provider,
        client,
        mode="stepup",
        username="alice",
        password=DEMO_PASSWORD,
        env={"RP_TOTP_SECRET": secret, "RP_STEP_UP_ACR": "mfa"},
    )
    first = out["first"]["id_token_claims"]
    raised = out["step_up"]["id_token_claims"]
    assert (first["acr"], first["amr"]) == ("password", ["pwd"])
    assert (raised["acr"], raised["amr"]) == ("mfa", ["pwd", "otp", "mfa"])
    assert raised["sid"] == first["sid"]  # the SSO session was raised, not replaced
    assert "/login" not in out["step_up"]["sign_in_trail"]  # no password again
    assert "POST /mfa/code" in out["step_up"]["sign_in_trail"]
    assert out["code_form"]["hidden"] == ["csrf_token"]


def test_client_minimum_level(local_provider: LiveProvider, node_rp: NodeRP) -> None:
    secret = enroll(local_provider, _sub(local_provider, "bob"))
    client = local_provider.add_rp_client(extra=["--require-acr", "mfa"])
    assert client["require_acr"] == "mfa"
    out = node_rp.run(
        local_provider, client, mode="login", username="bob", password=DEMO_PASSWORD,
        env={"RP_TOTP_SECRET": secret},
    )  # fmt: skip
    claims = out["id_token_claims"]
    assert (claims["acr"], claims["amr"]) == ("mfa", ["pwd", "otp", "mfa"])
    assert out["access_token_claims"]["acr"] == "mfa"
    # someone without an authenticator gets a clear refusal page, never a weaker token
    refused = node_rp.run(
        local_provider, client, mode="login", username="admin", password=DEMO_PASSWORD, expect_ok=False
    )
    assert not refused["ok"]
    assert "/mfa/ answered 403" in refused["error"] and "requires the sign-in level" in refused["error"]


def test_discovery_lists_levels(local_provider: LiveProvider) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{local_provider.issuer}/.well-known/openid-configuration") as r:  # noqa: S310
        doc = json.load(r)
    assert doc["acr_values_supported"] == ["password", "mfa", "smartcard"]


@pytest.mark.samba
def test_ad_group_requires_mfa_for_its_members(
    ad_provider: LiveProvider, node_rp: NodeRP, request: pytest.FixtureRequest
) -> None:
    from iam.directory.base import NewUser

    ad = samba_fixture(request, "ad_directory")
    team = unique("e2e-mfa-team-")
    outer = ad.create_group(ADMIN_GROUP)
    inner = ad.create_group(team)
    # nested membership counts: the user is in the team, the team is in the admin group
    samba_fixture(request, "samba_dc").modify(outer.dn, {"member": [(MODIFY_ADD, [inner.dn])]})
    people = {}
    for role in ("member", "member-without-app", "other"):
        username = unique("e2emfa")
        user = ad.create_user(NewUser(username=username, given_name="Mira", family_name="Test"))
        ad.set_password(user.id, AD_PASSWORD, must_change=False)
        ad.enable(user.id)
        people[role] = (username, user.id)
    ad.add_member(team, people["member"][1])
    ad.add_member(ADMIN_GROUP, people["member-without-app"][1])
    secret = enroll(ad_provider, people["member"][1])
    client = ad_provider.add_rp_client()
    member = node_rp.run(
        ad_provider, client, mode="login", username=people["member"][0], password=AD_PASSWORD,
        env={"RP_TOTP_SECRET": secret},
    )  # fmt: skip
    assert (member["id_token_claims"]["acr"], member["id_token_claims"]["amr"]) == (
        "mfa",
        ["pwd", "otp", "mfa"],
    )
    assert "POST /mfa/code" in member["sign_in_trail"]
    # a member who has no authenticator gets the clear page, not a password-level token
    refused = node_rp.run(
        ad_provider, client, mode="login", username=people["member-without-app"][0], password=AD_PASSWORD,
        expect_ok=False,
    )  # fmt: skip
    assert "/mfa/ answered 403" in refused["error"] and "requires the sign-in level" in refused["error"]
    other = node_rp.run(ad_provider, client, mode="login", username=people["other"][0], password=AD_PASSWORD)
    assert (other["id_token_claims"]["acr"], other["id_token_claims"]["amr"]) == ("password", ["pwd"])
