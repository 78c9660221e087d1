"""Access requests in Chromium: a clerk signs in, asks for "Payments: read" from the portal (the
form checks separation of duties before sending), the manager signs in, finds the request in
"Waiting for me" and grants it with a comment; the worker puts the clerk in the group and the
clerk's "My requests" shows it granted with its decision number. The forms are submitted as
the browser submits them (CSRF token, select, textarea)."""

from __future__ import annotations

import re

import pytest

from iam import clock
from tests.e2e.conftest import CI, LiveProvider, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

from tests.e2e.test_browser import _local_user, _submit_login

pytestmark = pytest.mark.e2e
PASSWORD = "Requ3ster-Passw0rd!"
GROUP = "Payments Read"  # the demo catalogue's payments-read (policies/requestable.toml)


def test_person_requests_from_portal_manager_approves_from_inbox(
    live_provider: LiveProvider, page: Page
) -> None:
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    from tests.provisioning.helpers import add_staff

    manager, clerk = (_local_user(live_provider, PASSWORD) for _ in range(2))
    directory = live_provider.services().directory
    if directory.get_group(GROUP) is None:
        directory.create_group(GROUP)
    boss, emp = unique("e"), unique("e")
    with live_provider.services().transaction() as s:
        add_staff(
            s,
            [(boss, manager["username"], manager["id"], None), (emp, clerk["username"], clerk["id"], boss)],
            given_name="Carol",
            family_name="Ćirić",
            department="Finance",
        )

    # the clerk asks from the portal; the check shows no conflict before sending
    page.goto(f"{live_provider.issuer}/requests/new")
    expect(page).to_have_url(re.compile(r".*/login"))
    _submit_login(page, clerk["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/requests/")
    page.get_by_role("link", name="Ask for a right").click()
    page.get_by_label("Right", exact=True).select_option("payments-read")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#no-conflicts")).to_be_visible()
    page.get_by_label("Scope (what exactly is needed)").fill("Treasury reports")
    page.get_by_label("Justification").fill("Month-end reconciliation")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_role("status")).to_contain_text(f"It now waits for {manager['username']}")
    request_url = page.url
    page.context.clear_cookies()

    # the manager finds it in "Waiting for me" and grants it
    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, manager["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/requests/inbox")
    page.locator("#inbox").get_by_role("link", name=re.compile(clerk["username"])).click()
    expect(page).to_have_url(request_url)
    page.get_by_label("Grant", exact=True).check()
    page.get_by_label("Comment (required)").fill("Needed for the closing")
    page.get_by_role("button", name="Record").click()
    expect(page.get_by_role("status")).to_contain_text("Decision recorded")
    expect(page.locator("#inbox")).to_contain_text("Nothing waits for you.")
    for _ in range(40):
        if GROUP in directory.user_groups(clerk["id"]):
            break
        page.wait_for_timeout(250)
    assert GROUP in directory.user_groups(clerk["id"])
    page.context.clear_cookies()

    # the clerk sees it granted, with the decision number
    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, clerk["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/requests/")
    expect(page.locator("table.items").first).to_contain_text("granted")
    expect(page.locator("table.items").first).to_contain_text(f"AR/{clock.now().year}/")
