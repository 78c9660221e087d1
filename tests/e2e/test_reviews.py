"""Access reviews in Chromium: a security officer starts a campaign from the dashboard; the
manager signs in through SSO, filters, selects and revokes in bulk with a comment (the form as
the browser submits it); the dashboard shows progress; the officer closes the campaign, the
worker removes the membership, and the PDF report downloads."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import CI, LiveProvider, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

from tests.e2e.test_browser import _local_user, _submit_login

pytestmark = pytest.mark.e2e
PASSWORD = "Rev1ewer-Passw0rd!"


def test_manager_decides_in_bulk_and_officer_closes(live_provider: LiveProvider, page: Page) -> None:
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    from tests.provisioning.helpers import add_staff

    officer, deputy, manager, clerk = (_local_user(live_provider, PASSWORD) for _ in range(4))
    directory = live_provider.services().directory
    for group in ("iam-security-officers", app := unique("rv-app"), share := unique("rv-share")):
        if directory.get_group(group) is None:
            directory.create_group(group)
    directory.add_member("iam-security-officers", officer["id"])
    directory.add_member("iam-security-officers", deputy["id"])  # reviews the officer's own access
    directory.add_member(app, clerk["id"])
    directory.add_member(share, clerk["id"])
    boss, emp = unique("e"), unique("e")
    with live_provider.services().transaction() as s:
        add_staff(
            s,
            [(boss, manager["username"], manager["id"], None), (emp, clerk["username"], clerk["id"], boss)],
            given_name="Carol",
            family_name="Ćirić",
            department="Finance",
        )

    # the officer starts the annual campaign from the dashboard
    page.goto(f"{live_provider.issuer}/reviews/campaigns")
    expect(page).to_have_url(re.compile(r".*/login"))
    _submit_login(page, officer["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/reviews/campaigns")
    page.get_by_label("Start a campaign").select_option("annual")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("status")).to_contain_text("Campaign started")
    campaign_url = page.url
    page.context.clear_cookies()

    # the manager signs in and revokes both of the clerk's memberships in one go
    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, manager["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/reviews/?person={clerk['username']}")
    expect(page.get_by_role("heading", name=re.compile(clerk["username"]))).to_be_visible()
    page.get_by_label(f"Select {app} of {clerk['username']}").check()
    page.get_by_label(f"Select {share} of {clerk['username']}").check()
    page.get_by_label("Decision", exact=True).select_option("revoke")
    page.get_by_label("Comment").fill("Moved to another team")
    page.get_by_role("button", name="Save decision").click()
    expect(page.get_by_role("status")).to_have_text("2 items: revoke.")
    page.get_by_label("also decided").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.items")).to_contain_text("Moved to another team")
    page.context.clear_cookies()

    # the officer sees the progress, closes, downloads the report
    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, officer["username"], PASSWORD)
    page.goto(campaign_url)
    row = page.locator("tr", has_text=manager["username"])
    expect(row).to_contain_text("2")
    page.get_by_role("button", name="Close now").click()
    expect(page.get_by_role("status")).to_contain_text("Closed")
    with page.expect_download() as download:
        page.get_by_role("link", name="Report (PDF)").click()
    assert download.value.suggested_filename.endswith(".pdf")
    for _ in range(40):
        if not {app, share} & set(directory.user_groups(clerk["id"])):
            break  # two removals, each a job of its own: wait for both
        page.wait_for_timeout(250)
    assert app not in directory.user_groups(clerk["id"]) and share not in directory.user_groups(clerk["id"])
    page.goto(f"{live_provider.issuer}/reviews/people/{clerk['username']}")
    expect(page.locator("table.items")).to_contain_text("done")
