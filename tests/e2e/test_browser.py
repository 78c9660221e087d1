"""The sign-in pages in a real browser (Debian's Chromium through Playwright): the demo
application end to end, the generic error, forced and expired password changes, refused new
passwords, security headers and cookies, and a screenshot of the login page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CI, DEMO_PASSWORD, LiveProvider, samba_fixture, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e

AD_PASSWORD = "Str0ng-Passw0rd!1"
AD_NEW_PASSWORD = "N3w-Str0ng-Passw0rd!2"
GENERIC_LOGIN_ERROR = (
    "Wrong username or password, or too many failed attempts. Try again later or contact the help desk."
)
REFUSED_PREFIX = "The new password was refused:"


# -- helpers ----------------------------------------------------------------------------------------
def _start_demo_sign_in(page: Page, provider: LiveProvider) -> None:
    """Open the demo application and follow its sign-in link to the provider's login page."""
    page.goto(f"{provider.issuer}/demo/")
    page.locator("#demo-login").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(provider.issuer)}/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def _submit_login(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def _expect_demo_signed_in(page: Page, provider: LiveProvider, name: str) -> dict[str, Any]:
    expect(page).to_have_url(f"{provider.issuer}/demo/")
    expect(page.locator("#signed-in")).to_have_text(f"Signed in as {name}")
    claims: dict[str, Any] = json.loads(page.locator("#claims").inner_text())
    return claims


def _change_password(page: Page, current: str, new: str, confirm: str | None = None) -> None:
    page.get_by_label("Current password", exact=True).fill(current)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("Repeat the new password", exact=True).fill(new if confirm is None else confirm)
    page.get_by_role("button", name="Change password").click()


def _expect_change_page(page: Page, provider: LiveProvider, username: str) -> None:
    expect(page).to_have_url(f"{provider.issuer}/password/change")
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    field = page.get_by_label("Username", exact=True)
    expect(field).to_have_value(username)
    expect(field).to_have_attribute("readonly", re.compile(".*"))


def _local_user(provider: LiveProvider, password: str, *, must_change: bool = False) -> dict[str, Any]:
    username = unique("carol")
    args = ["user", "add", username, "--given-name", "Carol", "--family-name", "Ćirić"]
    args += ["--email", f"{username}@example.test", "--group", "staff"]
    if must_change:
        args.append("--must-change")
    created: dict[str, Any] = provider.cli_json(*args, stdin=password + "\n")
    created["name"] = "Carol Ćirić"
    return created


def _ad_user(request: pytest.FixtureRequest, *, must_change: bool) -> Any:
    from iam.directory.base import NewUser

    ad = samba_fixture(request, "ad_directory")
    username = unique("e2epw")
    user = ad.create_user(
        NewUser(
            username=username,
            given_name="Đorđe",
            family_name="Novak",
            display_name="Đorđe Novak",
            email=f"{username}@example.test",
        )
    )
    ad.set_password(user.id, AD_PASSWORD, must_change=must_change)
    ad.enable(user.id)
    return user


# -- tests --------------------------------------------------------------------------------------------
def test_demo_app_sign_in_and_out(live_provider: LiveProvider, page: Page) -> None:
    _start_demo_sign_in(page, live_provider)
    expect(page.get_by_text("to continue to Demo application")).to_be_visible()
    _submit_login(page, "alice", DEMO_PASSWORD)

    claims = _expect_demo_signed_in(page, live_provider, "Alice Anđelković")
    alice = live_provider.services().directory.find_user(username="alice")
    assert claims["sub"] == alice.id
    assert claims["preferred_username"] == "alice"
    assert claims["groups"] == ["finance", "staff"]
    assert claims["acr"] == "password"
    assert claims["amr"] == ["pwd"]
    assert claims["aud"] == "demo-app"
    assert claims["agency_code"] == "DEMO-001"
    assert claims["nonce"]
    assert claims["sid"]
    userinfo = json.loads(page.locator("#userinfo").inner_text())
    assert userinfo["sub"] == alice.id
    assert userinfo["email"] == "alice@example.test"

    # single sign-on: a second sign-in needs no password while the session lives
    page.goto(f"{live_provider.issuer}/demo/login")
    _expect_demo_signed_in(page, live_provider, "Alice Anđelković")

    # RP-initiated logout from the demo app: no confirmation page, straight back to the app
    page.get_by_role("link", name="Sign out").click()
    expect(page).to_have_url(f"{live_provider.issuer}/demo/")
    expect(page.locator("#demo-login")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "iam_session"]
    page.locator("#demo-login").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(live_provider.issuer)}/login"))


@pytest.mark.parametrize(
    "live_provider", ["local", pytest.param("ad", marks=pytest.mark.samba)], indirect=True
)
def test_unknown_user_and_wrong_password_look_the_same(
    live_provider: LiveProvider, page: Page, request: pytest.FixtureRequest
) -> None:
    if live_provider.kind == "ad":
        known, good_password = _ad_user(request, must_change=False).username, AD_PASSWORD
    else:
        known, good_password = "alice", DEMO_PASSWORD
    seen = []
    for username, password in ((known, "not-the-Passw0rd!"), (unique("nobody"), good_password)):
        _start_demo_sign_in(page, live_provider)
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as info:
            _submit_login(page, username, password)
        status = info.value.status
        error = page.locator("#form-error")
        expect(error).to_be_visible()
        seen.append((status, error.inner_text().strip(), page.url))
        expect(page.get_by_label("Username", exact=True)).to_have_value(username)
        expect(page.get_by_label("Password", exact=True)).to_have_value("")
    (status1, text1, url1), (status2, text2, url2) = seen
    assert text1 == text2 == GENERIC_LOGIN_ERROR
    assert status1 == status2 == 401
    assert url1 == url2 == f"{live_provider.issuer}/login"


@pytest.mark.samba
@pytest.mark.parametrize("live_provider", ["ad"], indirect=True)
def test_must_change_password_in_ad(
    live_provider: LiveProvider, page: Page, request: pytest.FixtureRequest
) -> None:
    user = _ad_user(request, must_change=True)  # pwdLastSet=0: the bind answers 773
    _start_demo_sign_in(page, live_provider)
    _submit_login(page, user.username, AD_PASSWORD)

    _expect_change_page(page, live_provider, user.username)
    expect(page.get_by_text("You must choose a new password before you continue.")).to_be_visible()
    _change_password(page, AD_PASSWORD, AD_NEW_PASSWORD)

    claims = _expect_demo_signed_in(page, live_provider, "Đorđe Novak")
    assert claims["sub"] == user.id
    assert claims["preferred_username"] == user.username
    ad = samba_fixture(request, "ad_directory")
    assert ad.authenticate(user.username, AD_NEW_PASSWORD).id == user.id


def test_expired_password_in_builtin_directory(live_provider: LiveProvider, page: Page) -> None:
    old, new = "Old-passw0rd-1", "New-passw0rd-2"
    carol = _local_user(live_provider, old)
    live_provider.services().directory.expire_password(carol["id"])

    _start_demo_sign_in(page, live_provider)
    _submit_login(page, carol["username"], old)
    _expect_change_page(page, live_provider, carol["username"])
    expect(page.get_by_text("Your password has expired. Choose a new one to continue.")).to_be_visible()
    _change_password(page, old, new)

    claims = _expect_demo_signed_in(page, live_provider, carol["name"])
    assert claims["sub"] == carol["id"]
    assert claims["groups"] == ["staff"]


@pytest.mark.parametrize(
    ("live_provider", "weak"),
    [
        pytest.param("local", "short1", id="local-too-short"),
        pytest.param("ad", "alllowercaseletters", id="ad-complexity", marks=pytest.mark.samba),
    ],
    indirect=["live_provider"],
)
def test_refused_new_password_shows_reason(
    live_provider: LiveProvider, weak: str, page: Page, request: pytest.FixtureRequest
) -> None:
    if live_provider.kind == "ad":
        user = _ad_user(request, must_change=True)
        username, name, current, good = user.username, "Đorđe Novak", AD_PASSWORD, AD_NEW_PASSWORD
    else:
        carol = _local_user(live_provider, "Start-passw0rd-1", must_change=True)
        username, name, current, good = (
            carol["username"],
            carol["name"],
            "Start-passw0rd-1",
            "Better-passw0rd-2",
        )

    _start_demo_sign_in(page, live_provider)
    _submit_login(page, username, current)
    _expect_change_page(page, live_provider, username)
    with page.expect_response(lambda r: r.request.method == "POST" and "/password/change" in r.url) as info:
        _change_password(page, current, weak)
    assert info.value.status == 400

    error = page.locator("#form-error")
    expect(error).to_be_visible()
    text = error.inner_text().strip()
    assert text.startswith(REFUSED_PREFIX), text
    reason = text[len(REFUSED_PREFIX) :].strip()
    if live_provider.kind == "local":
        # the default profile lists every rule broken, in plain words
        assert reason.startswith("The password must be at least 12 characters long."), reason
        assert "one of the most common passwords" in reason, reason
    else:
        # plain words for a person, not LDAP diagnostics
        assert len(reason.split()) >= 4, reason
        assert "complex" in reason, reason
        for jargon in ("0000052D", "LDAP", "constraintViolation", "unwillingToPerform", "WERR_", "DSID"):
            assert jargon.lower() not in reason.lower(), reason
    _expect_change_page(page, live_provider, username)  # still there, name kept

    # a good password on the same page finishes the sign-in
    _change_password(page, current, good)
    _expect_demo_signed_in(page, live_provider, name)


def test_login_page_headers_cookies_and_screenshot(
    live_provider: LiveProvider, page: Page, tmp_path: Path
) -> None:
    console_errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    response = page.goto(f"{live_provider.issuer}/login")
    assert response is not None
    assert response.status == 200
    headers = response.all_headers()
    csp = headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "unsafe-inline" not in directives.get("script-src", "")
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "no-store" in headers["cache-control"]
    set_cookie = headers.get("set-cookie", "")
    assert "iam_flow=" in set_cookie
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie

    shot = tmp_path / "login.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000
    print(f"login page screenshot: {shot}")

    # the stylesheet loaded under the CSP, and nothing on the page broke the CSP
    color = page.locator("button[type=submit]").evaluate("e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(31, 95, 191)"
    failed = [f for f in failed if not f.endswith("/favicon.ico")]  # the browser's own guess
    assert not failed, failed
    csp_errors = [m for m in console_errors if "Content Security Policy" in m or "Refused" in m]
    assert not csp_errors, csp_errors

    _submit_login(page, "bob", DEMO_PASSWORD)
    expect(page).to_have_url(f"{live_provider.issuer}/account")
    cookies = {c["name"]: c for c in page.context.cookies()}
    for name in ("iam_flow", "iam_session"):
        assert cookies[name]["httpOnly"] is True, name
        assert cookies[name]["sameSite"] == "Lax", name
        assert cookies[name]["path"] == "/", name

    # frame-ancestors 'none' is enforced: another page cannot frame the login page (Chromium
    # replaces the refused frame with its error page)
    framer = page.context.new_page()
    framer.set_content(f'<iframe name="victim" src="{live_provider.issuer}/login"></iframe>')
    victim = framer.frame(name="victim")
    assert victim is not None
    assert victim.url.startswith("chrome-error://"), victim.url
    framer.close()


@pytest.mark.parametrize("live_provider", [pytest.param("ad", marks=pytest.mark.samba)], indirect=True)
def test_admin_reset_forces_change_at_first_sign_in_in_ad(
    live_provider: LiveProvider, page: Page, request: pytest.FixtureRequest
) -> None:
    """PABIANICE §22 / issue "Password rules…": `iam user reset-password` shows a temporary
    password once; at first use the person must choose their own, then the sign-in finishes."""
    user = _ad_user(request, must_change=False)
    reset = live_provider.cli_json("user", "reset-password", user.username, "--reason", "ticket HD-4711")
    temporary = reset["temporary_password"]
    assert reset["must_change"] is True and reset["username"] == user.username

    _start_demo_sign_in(page, live_provider)
    _submit_login(page, user.username, AD_PASSWORD)  # the old password is gone
    expect(page.get_by_text(GENERIC_LOGIN_ERROR)).to_be_visible()
    _submit_login(page, user.username, temporary)
    _expect_change_page(page, live_provider, user.username)
    expect(page.get_by_text("You must choose a new password before you continue.")).to_be_visible()
    _change_password(page, temporary, AD_NEW_PASSWORD)

    claims = _expect_demo_signed_in(page, live_provider, "Đorđe Novak")
    assert claims["sub"] == user.id
    ad = samba_fixture(request, "ad_directory")
    assert ad.authenticate(user.username, AD_NEW_PASSWORD).id == user.id
    events = live_provider.cli_json("audit", "list", "--event", "password.reset")
    mine = [e for e in events if e["subject"] == user.id]
    assert mine and mine[0]["details"]["reason"] == "ticket HD-4711"
    assert mine[0]["actor"].startswith("cli:") and temporary not in json.dumps(events)
