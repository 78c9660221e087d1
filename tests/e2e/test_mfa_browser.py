"""Second factors in a real browser (Debian's Chromium through Playwright): enrollment with
the QR code page and the recovery codes shown once, then sign-in with a code and with a
recovery code (single use), the devices page and removal after re-entering the password.

The provider runs on real time: the enrollment is confirmed with the code of the previous time
step (inside the ±1 window), so the current step's code is fresh for the next sign-in and no
test sleeps.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import CI, LiveProvider, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e

PASSWORD = "Corr3ct-Horse-Battery-9"


def _local_user(provider: LiveProvider) -> dict[str, Any]:
    username = unique("mira")
    args = ["user", "add", username, "--given-name", "Mira", "--family-name", "Marković"]
    args += ["--email", f"{username}@example.test", "--group", "staff"]
    created: dict[str, Any] = provider.cli_json(*args, stdin=PASSWORD + "\n")
    created["username"] = username
    return created


def _demo_sign_in(page: Page, provider: LiveProvider, username: str) -> None:
    page.goto(f"{provider.issuer}/demo/")
    page.locator("#demo-login").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(provider.issuer)}/login"))
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _claims(page: Page, provider: LiveProvider) -> dict[str, Any]:
    import json

    expect(page).to_have_url(f"{provider.issuer}/demo/")
    expect(page.locator("#signed-in")).to_have_text("Signed in as Mira Marković")
    claims: dict[str, Any] = json.loads(page.locator("#claims").inner_text())
    return claims


def _sign_out(page: Page, provider: LiveProvider) -> None:
    if page.url != f"{provider.issuer}/demo/":
        page.goto(f"{provider.issuer}/demo/")
    page.get_by_role("link", name="Sign out").click()
    expect(page).to_have_url(f"{provider.issuer}/demo/")
    assert not [c for c in page.context.cookies() if c["name"] == "iam_session"]


def test_enroll_then_sign_in_with_code_and_with_recovery_code(
    live_provider: LiveProvider, page: Page, browser: Any
) -> None:
    p = live_provider
    user = _local_user(p)
    _demo_sign_in(page, p, user["username"])
    assert _claims(page, p)["amr"] == ["pwd"]

    # my security devices → set up an authenticator app (password again first)
    page.goto(f"{p.issuer}/account")
    page.get_by_role("link", name="My security devices").click()
    expect(page.locator("#no-devices")).to_be_visible()
    page.locator("#enroll").click()
    expect(page.get_by_role("heading", name="Confirm your password")).to_be_visible()
    page.get_by_label("Your password", exact=True).fill("not-my-password")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#form-error")).to_have_text("Wrong password.")
    page.get_by_label("Your password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    expect(page.locator("#qr svg")).to_be_visible()  # rendered by the provider, no external image
    secret = page.locator("#secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code", exact=True).fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#form-error")).to_contain_text("not valid")
    assert page.locator("#secret").inner_text().strip() == secret  # the same enrollment
    page.get_by_label("Code", exact=True).fill(totp.at(time.time() - 30))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
    assert len(codes) == 10 and all(re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", c) for c in codes)
    expect(page.locator("#level-unchanged")).to_contain_text("stays at its sign-in level (password)")
    page.locator("#continue").click()
    expect(page.locator("#devices tr[data-kind=totp]")).to_contain_text("10 recovery codes left")
    # R-MFA-4: enrolling proved the app, not the person: this session is still password-only
    expect(page.locator("body")).to_contain_text("This session's sign-in level: password (pwd)")
    assert not any(c in page.content() for c in codes)  # shown once, never again
    _sign_out(page, p)

    # sign in again: password, then the code from the app
    _demo_sign_in(page, p, user["username"])
    expect(page).to_have_url(f"{p.issuer}/mfa/code")
    page.get_by_label("Code", exact=True).fill(totp.now())
    page.get_by_role("button", name="Verify").click()
    claims = _claims(page, p)
    assert (claims["acr"], claims["amr"]) == ("mfa", ["pwd", "otp", "mfa"])
    _sign_out(page, p)

    # lost phone: a recovery code, once
    _demo_sign_in(page, p, user["username"])
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Code", exact=True).fill(codes[0].lower())
    page.get_by_role("button", name="Verify").click()
    assert _claims(page, p)["acr"] == "mfa"
    _sign_out(page, p)
    other = browser.new_context(locale="en-GB")
    try:
        second = other.new_page()
        _demo_sign_in(second, p, user["username"])
        second.goto(f"{p.issuer}/mfa/recovery")
        second.get_by_label("Code", exact=True).fill(codes[0])
        second.get_by_role("button", name="Verify").click()
        expect(second.locator("#form-error")).to_contain_text("not valid")
        expect(second).to_have_url(f"{p.issuer}/mfa/recovery")
    finally:
        other.close()

    # remove the app from "my security devices": the password is asked for
    _demo_sign_in(page, p, user["username"])
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Code", exact=True).fill(codes[1])
    page.get_by_role("button", name="Verify").click()
    _claims(page, p)
    page.goto(f"{p.issuer}/mfa/devices")
    row = page.locator("#devices tr[data-kind=totp]")
    expect(row).to_contain_text("8 recovery codes left")
    row.get_by_label("Password to confirm").fill(PASSWORD)
    row.get_by_role("button", name="Remove").click()
    expect(page.locator(".notice")).to_contain_text("was removed")
    expect(page.locator("#no-devices")).to_be_visible()
