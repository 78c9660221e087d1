"""The demo as `make run` seeds it (``iam demo``), in real Chromium against the live provider,
without changing a setting (issue 10 item 18): admin requests the shipped role
``server-operators`` at /pim/, bob approves it in his inbox, the worker activates it on
adm-admin; hana, the demo HR operator, reads the HR event log with the demo's events."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import CI, DEMO_PASSWORD, LiveProvider

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e


def _sign_in(page: Page, provider: LiveProvider, username: str) -> None:
    page.goto(f"{provider.issuer}/login")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/login$"))


def test_demo_pim_request_and_approval_in_the_browser(
    live_provider: LiveProvider, browser: Any, page: Page
) -> None:
    provider = live_provider
    if provider.kind != "local":
        pytest.skip("the demo runs on the built-in directory")
    _sign_in(page, provider, "admin")
    page.goto(f"{provider.issuer}/pim/")
    page.locator("#request-server-operators").click()
    page.get_by_label("Justification (required)").fill("Patch the file servers tonight")
    page.get_by_label("Password again", exact=False).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Send request").click()
    pending = page.locator("#pending tbody tr")
    expect(pending).to_have_count(1)
    rid = pending.get_attribute("data-request")
    assert rid

    bob_ctx = browser.new_context(locale="en-GB")
    bob = bob_ctx.new_page()
    try:
        _sign_in(bob, provider, "bob")
        bob.goto(f"{provider.issuer}/pim/approvals")
        row = bob.locator(f'#inbox tr[data-request="{rid}"]')
        expect(row).to_contain_text("admin")
        # deciding needs the role's level (R-MFA-4): in dev mode the password again stands in
        row.get_by_label("Password again", exact=False).fill(DEMO_PASSWORD)
        row.get_by_role("button", name="Approve").click()
        expect(bob.locator(f'#inbox tr[data-request="{rid}"]')).to_have_count(0)
    finally:
        bob_ctx.close()

    active = page.locator(f'#active tr[data-request="{rid}"]')
    for _ in range(40):
        page.goto(f"{provider.issuer}/pim/")
        if active.count() and active.locator(".state").inner_text() == "active":
            break
        page.wait_for_timeout(250)
    expect(active.locator(".state")).to_have_text("active")
    expect(active).to_contain_text("adm-admin")
    provider.cli("pim", "revoke", rid, "--reason", "demo test done")


def test_demo_hr_operator_sees_the_demo_events(live_provider: LiveProvider, page: Page) -> None:
    provider = live_provider
    if provider.kind != "local":
        pytest.skip("the demo runs on the built-in directory")
    _sign_in(page, provider, "hana")
    page.goto(f"{provider.issuer}/hr/events")
    for employee in ("D1001", "D1002"):
        expect(page.locator("tr", has_text=employee).first).to_be_visible()
