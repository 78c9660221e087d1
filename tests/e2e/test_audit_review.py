"""The monthly audit review and the audit report in Chromium: a security officer signs in,
reads last month's significant and critical events by their readable names, signs the month off
with findings (the form as the browser submits it, CSRF included), and downloads the PDF
report; someone who is not an officer is refused."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pytest

from iam import audit, clock
from tests.e2e.conftest import CI, LiveProvider, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

from tests.e2e.test_browser import _local_user, _submit_login

pytestmark = pytest.mark.e2e
PASSWORD = "Aud1tor-Passw0rd!"


def test_officer_reads_and_signs_off_last_month(live_provider: LiveProvider, page: Page) -> None:
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    officer, clerk = _local_user(live_provider, PASSWORD), _local_user(live_provider, PASSWORD)
    directory = live_provider.services().directory
    if directory.get_group("iam-security-officers") is None:
        directory.create_group("iam-security-officers")
    directory.add_member("iam-security-officers", officer["id"])
    first = dt.datetime.now(dt.UTC).replace(day=1, hour=12)
    last_month = first - dt.timedelta(days=3)
    month = last_month.astimezone(zoneinfo.ZoneInfo("UTC")).strftime("%Y-%m")
    intruder = unique("mallory")
    clock.freeze(last_month)
    try:
        with live_provider.services().transaction() as s:
            audit.record(
                s, "pim.break_glass", severity=audit.Severity.CRITICAL, actor=intruder, subject="adm-x"
            )
            audit.record(s, "login.succeeded", actor=intruder)  # normal: not in the review
    finally:
        clock.reset()

    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, clerk["username"], PASSWORD)
    assert page.goto(f"{live_provider.issuer}/audit/review/{month}").status == 403  # type: ignore[union-attr]
    page.context.clear_cookies()

    page.goto(f"{live_provider.issuer}/audit/review")
    expect(page).to_have_url(re.compile(r".*/login"))
    _submit_login(page, officer["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/audit/review")
    expect(page.get_by_role("heading", name=f"Monthly audit review {month}")).to_be_visible()
    row = page.locator("#review-events tr", has_text=intruder)
    expect(row).to_contain_text("Emergency (break-glass) access used")
    expect(row).to_contain_text("critical")
    expect(page.locator("#review-events")).not_to_contain_text("Sign-in succeeded")
    page.get_by_label("Findings and actions (optional)").fill(f"{intruder}: break-glass checked, ticket 42")
    page.get_by_role("button", name=re.compile("sign off")).click()
    expect(page.get_by_role("status")).to_contain_text(f"The review of {month} is signed off.")
    expect(page.locator("#review-status")).to_contain_text(f"Signed off by {officer['username']}")
    expect(page.get_by_role("button", name=re.compile("sign off"))).to_have_count(0)

    page.get_by_role("link", name="Produce a printable report").click()
    page.get_by_label("From (date)").fill(last_month.strftime("%Y-%m-01"))
    page.get_by_label("To (date, included)").fill(last_month.strftime("%Y-%m-%d"))
    page.get_by_label("Person (account)").fill(intruder)
    with page.expect_download() as info:
        page.get_by_role("button", name="Produce the report").click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as fh:
        assert fh.read(5) == b"%PDF-"

    with live_provider.services().transaction() as s:
        signed = [e for e in audit.iter_events(s, sealed=False) if e.event == "audit.review_signed"]
        signed += [e for e in audit.iter_events(s) if e.event == "audit.review_signed"]
    assert any(e.actor == officer["username"] and e.details["month"] == month for e in signed)
