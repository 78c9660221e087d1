"""Issue 13 parts 3–4 end to end: the security-policy acknowledgement through an independent
relying party (openid-client, ``node/rp.mjs policy``), application assignment by AD group in
the real Samba DC (refused at ``/authorize``, absent from the portal), and the portal and
"my access" pages in Chromium."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iam.directory.base import NewUser
from tests.e2e.conftest import (
    CI,
    LiveProvider,
    NodeRP,
    _provider_env,
    free_port,
    samba_fixture,
    unique,
)

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e

PASSWORD = "Corr3ct-Horse-Battery-9"
AD_PASSWORD = "Str0ng-Passw0rd!1"
POLICY_V1 = "# Security rules\n\nKeep your password secret.\n"
POLICY_V2 = "# Security rules, 2nd edition\n\nKeep your password secret. Lock your screen.\n"


@pytest.fixture(scope="module")
def acknowledging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveProvider, Path]]:
    """A provider (built-in directory, demo users) that requires the policy acknowledgement."""
    var_dir = tmp_path_factory.mktemp("provider-policy")
    folder = var_dir / "security-policy"
    folder.mkdir()
    (folder / "en.md").write_text(POLICY_V1)
    port = free_port()
    env = _provider_env(var_dir, port, None)
    env.update({"IAM_POLICY__REQUIRED": "true", "IAM_POLICY__DIR": str(folder)})
    provider = LiveProvider(kind="local", port=port, var_dir=var_dir, env=env)
    try:
        provider.start()
        yield provider, folder
    finally:
        provider.stop()


def _new_local_user(provider: LiveProvider, *groups: str) -> str:
    username = unique("nina")
    args = ["user", "add", username, "--given-name", "Nina", "--family-name", "Novak"]
    args += ["--email", f"{username}@example.test"]
    for g in groups:
        args += ["--group", g]
    provider.cli_json(*args, stdin=PASSWORD + "\n")
    return username


def test_first_sign_in_asks_for_the_policy_prompt_none_waits_new_version_asks_again(
    acknowledging: tuple[LiveProvider, Path], node_rp: NodeRP
) -> None:
    provider, folder = acknowledging
    username = _new_local_user(provider)
    client = provider.add_rp_client()

    # first sign-in: the policy page; prompt=none meanwhile → interaction_required; accept → code
    out = node_rp.run(provider, client, username=username, password=PASSWORD, mode="policy")
    assert out["stopped_at"] == "/policy"
    assert out["prompt_none"] == {
        "to": client["redirect_uri"],
        "error": "interaction_required",
        "state_matches": True,
    }
    assert "POST /policy" in out["sign_in_trail"]
    assert out["id_token_claims"]["preferred_username"] == username  # validated by openid-client
    first_version = out["policy_pages"][0]["version"]
    report = provider.cli_json("policy", "acceptances")
    mine = next(p for p in report["people"] if p["username"] == username)
    assert mine["accepted_current"] is True and mine["version"] == first_version
    assert mine["language"] == "en" and mine["ip"] == "127.0.0.1" and mine["accepted_at"]

    # accepted: the next sign-in (a new browser) goes straight to the code
    out = node_rp.run(provider, client, username=username, password=PASSWORD, mode="login")
    assert "policy_pages" not in out

    # a new version: asked again, at the next sign-in
    (folder / "en.md").write_text(POLICY_V2)
    refused = node_rp.run(
        provider, client, username=username, password=PASSWORD, mode="login", expect_ok=False
    )
    assert refused["ok"] is False and "security policy" in refused["error"]
    out = node_rp.run(
        provider, client, username=username, password=PASSWORD, mode="login", env={"RP_POLICY": "accept"}
    )
    assert out["policy_pages"][0]["version"] != first_version
    pending = provider.cli_json("policy", "acceptances", "--pending")
    assert username not in [p["username"] for p in pending["people"]]
    assert pending["current_version"] == out["policy_pages"][0]["version"]


def _sign_in(browser: Any, provider: LiveProvider, username: str, password: str) -> Page:
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(15_000)
    page: Page = context.new_page()
    page.goto(f"{provider.issuer}/login")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


def test_policy_page_in_chromium_then_portal_and_my_access_show_origins(
    acknowledging: tuple[LiveProvider, Path], browser: Any
) -> None:
    provider, _folder = acknowledging
    username = _new_local_user(provider, "staff", "finance")
    services = provider.services()
    user = services.directory.find_user(username=username)
    assert user is not None
    from provisioning.models import HrPerson, PersonStatus

    with services.transaction() as s:  # HR knows the person: finance is their position's birthright
        s.add(
            HrPerson(
                employee_number=unique("E"),
                given_name="Nina",
                family_name="Novak",
                department="Finance",
                title="Clerk",
                engagement="staff",
                start_date=dt.date(2026, 1, 1),
                status=PersonStatus.ACTIVE,
                username=username,
                sub=user.id,
                groups=["finance"],
            )
        )
    app = provider.cli_json(
        "client", "add", "--name", unique("Ledger "), "--redirect-uri", "https://ledger.example/cb",
        "--launch-uri", "https://ledger.example/", "--description", "The finance ledger",
        "--allowed-group", "finance",
    )  # fmt: skip
    hidden = provider.cli_json(
        "client", "add", "--name", unique("Payroll "), "--redirect-uri", "https://payroll.example/cb",
        "--launch-uri", "https://payroll.example/", "--allowed-group", unique("nobody-"),
    )  # fmt: skip
    page = _sign_in(browser, provider, username, PASSWORD)
    try:
        expect(page).to_have_url(f"{provider.issuer}/policy")
        expect(page.locator("#policy-text h1")).to_contain_text("Security rules")
        page.get_by_role("button", name="I have read the security policy and accept it").click()
        expect(page).to_have_url(f"{provider.issuer}/")
        apps = page.locator("#apps")
        expect(apps.locator(f"li[data-client-id='{app['client_id']}']")).to_contain_text("The finance ledger")
        expect(apps.locator(f"li[data-client-id='{hidden['client_id']}']")).to_have_count(0)
        expect(apps.get_by_role("link", name=app["client_name"])).to_have_attribute(
            "href", "https://ledger.example/"
        )
        page.locator("#my-access-link").click()
        expect(page).to_have_url(f"{provider.issuer}/my-access")
        expect(page.locator("#groups tr[data-group=finance]")).to_contain_text("Birthright (your position)")
        expect(page.locator("#groups tr[data-group=finance]")).to_contain_text("Finance / Clerk")
        expect(page.locator("#groups tr[data-group=staff]")).to_contain_text("Found in the directory")
        expect(page.locator("#password-expiry")).to_be_visible()
        expect(page.locator("#access-sso-sessions")).to_contain_text("127.0.0.1")
        expect(page.locator("body")).to_contain_text("Privileged roles (PIM)")
        # a phone: nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/", "/my-access", "/policy/acceptances"):
            page.goto(f"{provider.issuer}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        page.context.close()


# -- application assignment by group in the real Samba AD DC --------------------------------------
@pytest.mark.samba
@pytest.mark.parametrize("live_provider", [pytest.param("ad", marks=pytest.mark.samba)], indirect=True)
def test_assignment_by_ad_group_refuses_outsiders_and_admits_members(
    live_provider: LiveProvider, node_rp: NodeRP, browser: Any, request: pytest.FixtureRequest
) -> None:
    ad = samba_fixture(request, "ad_directory")
    team, dept = unique("e2e-app-team-"), unique("e2e-app-dept-")
    ad.create_group(team)
    dept_group = ad.create_group(dept)
    team_group = ad.get_group(team)
    from ldap3 import MODIFY_ADD

    samba_fixture(request, "samba_dc").modify(dept_group.dn, {"member": [(MODIFY_ADD, [team_group.dn])]})
    people = {}
    for who in ("inside", "outside"):
        username = unique(f"e2e{who[:3]}")
        user = ad.create_user(
            NewUser(
                username=username, given_name="Ana", family_name=who.title(), email=f"{username}@example.test"
            )
        )
        ad.set_password(user.id, AD_PASSWORD, must_change=False)
        ad.enable(user.id)
        people[who] = username
    ad.add_member(team, ad.find_user(username=people["inside"]).id)  # a member of dept through team

    client = live_provider.add_rp_client(
        extra=["--launch-uri", "https://dept-app.example/", "--allowed-group", dept]
    )
    refused = node_rp.run(
        live_provider, client, username=people["outside"], password=AD_PASSWORD, mode="login", expect_ok=False
    )
    assert refused["ok"] is False
    assert "answered 403" in refused["error"] and "not one of them" in refused["error"]
    assert refused["error"].startswith(f"GET {live_provider.issuer}/authorize?")  # after the password
    out = node_rp.run(live_provider, client, username=people["inside"], password=AD_PASSWORD, mode="login")
    assert dept in out["id_token_claims"]["groups"]

    for who, listed in (("outside", 0), ("inside", 1)):
        page = _sign_in(browser, live_provider, people[who], AD_PASSWORD)
        try:
            page.goto(f"{live_provider.issuer}/")
            expect(page.locator(f"li[data-client-id='{client['client_id']}']")).to_have_count(listed)
            if who == "outside":  # the refusal page, as Chromium shows it, and its way back
                page.goto(
                    f"{live_provider.issuer}/authorize?response_type=code&client_id={client['client_id']}"
                    f"&redirect_uri={client['redirect_uri']}&scope=openid&state=st-42"
                    "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
                )
                expect(page.locator("#error-page")).to_have_attribute("data-status", "403")
                expect(page.locator("h1")).to_have_text("You may not use e2e rp")
                href = page.locator("#error-next").get_attribute("href") or ""
                assert href.startswith(client["redirect_uri"]) and "error=access_denied" in href
                assert "state=st-42" in href
        finally:
            page.context.close()
