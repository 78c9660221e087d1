"""The HR operators' pages in Chromium: event log with status, dead-letter list with replay
(CSRF-protected form), reconciliation report, register; refused to non-operators."""

from __future__ import annotations

import datetime as dt
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
PASSWORD = "Operat0r-Passw0rd!"


def _dead_joiner(provider: LiveProvider) -> tuple[str, str]:
    """A joiner that kept failing (as if the directory had been down for hours)."""
    from provisioning.models import HrEvent
    from provisioning.service.schemas import parse_event

    emp = unique("p")
    event = parse_event(
        {
            "idempotency_key": unique("k-"),
            "kind": "joiner",
            "person": {
                "employee_number": emp,
                "given_name": "Dara",
                "family_name": "Đokić",
                "department": "Finance",
                "title": "Clerk",
                "engagement": "staff",
                "start_date": clock.now().date().isoformat(),
                "personal_data": "limited",
            },
        }
    )
    with provider.services().transaction() as session:
        row = HrEvent(
            idempotency_key=event.idempotency_key,
            kind="joiner",
            employee_number=emp,
            source="api",
            actor="client:test",
            payload=event.canonical(),
            payload_hash=event.digest(),
            status="dead",
            attempts=8,
            error="The directory is unreachable.",
            effective_at=clock.now() - dt.timedelta(hours=3),
            accepted_at=clock.now() - dt.timedelta(hours=3),
            result={},
            replays=0,
        )
        session.add(row)
        session.flush()
        return row.id, emp


def test_operator_replays_a_dead_letter(live_provider: LiveProvider, page: Page) -> None:
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    operator = _local_user(live_provider, PASSWORD)
    directory = live_provider.services().directory
    if directory.get_group("iam-hr-operators") is None:
        directory.create_group("iam-hr-operators")
    directory.add_member("iam-hr-operators", operator["id"])
    event_id, emp = _dead_joiner(live_provider)

    page.goto(f"{live_provider.issuer}/hr/events")
    expect(page).to_have_url(re.compile(r".*/login"))
    _submit_login(page, operator["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/hr/events?status=dead")
    row = page.locator("tr", has_text=emp)
    expect(row.locator("td.status")).to_have_text("dead")
    expect(row).to_contain_text("The directory is unreachable.")

    page.goto(f"{live_provider.issuer}/hr/dead")
    page.locator("tr", has_text=emp).get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_have_text("The event was put back in the queue.")

    # the worker applies it: the log shows it applied, with its latency
    for _ in range(40):
        page.goto(f"{live_provider.issuer}/hr/events/{event_id}")
        if page.locator("dd.status").inner_text() == "applied":
            break
        page.wait_for_timeout(250)
    expect(page.locator("dd.status")).to_have_text("applied")
    expect(page.locator('#event-result dd[data-key="username"]')).to_have_text("dara.dokic")

    page.goto(f"{live_provider.issuer}/hr/reconcile")
    expect(page.get_by_role("heading", name="Reconciliation: directory against HR")).to_be_visible()
    page.goto(f"{live_provider.issuer}/hr/register")
    expect(page.locator("table.register")).to_contain_text("Dara Đokić")


def test_operator_discards_a_dead_letter_with_a_reason(live_provider: LiveProvider, page: Page) -> None:
    """Issue 10 item 16: a dead event that can never apply is discarded from the page, with a
    reason; it leaves the list, shows as discarded in the log, and the reason is audited."""
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    from sqlalchemy import select

    from iam.models.audit import AuditEvent

    operator = _local_user(live_provider, PASSWORD)
    directory = live_provider.services().directory
    if directory.get_group("iam-hr-operators") is None:
        directory.create_group("iam-hr-operators")
    directory.add_member("iam-hr-operators", operator["id"])
    event_id, emp = _dead_joiner(live_provider)

    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, operator["username"], PASSWORD)
    page.goto(f"{live_provider.issuer}/hr/dead")
    row = page.locator("tr", has_text=emp)
    # the browser will not submit without a reason (the field is required)
    row.get_by_role("button", name="Discard").click()
    expect(page).to_have_url(re.compile(r".*/hr/dead$"))
    expect(page.locator("tr", has_text=emp)).to_have_count(1)
    row.get_by_label("Reason for discarding").fill("Sent twice by the HR system; the person exists as p-1.")
    row.get_by_role("button", name="Discard").click()
    expect(page.get_by_role("status")).to_have_text("The event was discarded; it will not be applied.")
    expect(page.locator("tr", has_text=emp)).to_have_count(0)

    page.goto(f"{live_provider.issuer}/hr/events?status=discarded")
    expect(page.locator("tr", has_text=emp).locator("td.status")).to_have_text("discarded")
    with live_provider.services().transaction() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "hr.event.discarded").order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None and event.actor == operator["id"]
        assert event.details["event"] == event_id
        assert event.details["reason"] == "Sent twice by the HR system; the person exists as p-1."


def test_non_operator_is_refused(live_provider: LiveProvider, page: Page) -> None:
    if live_provider.kind != "local":
        pytest.skip("the built-in directory is enough for the pages")
    other = _local_user(live_provider, PASSWORD)
    page.goto(f"{live_provider.issuer}/login")
    _submit_login(page, other["username"], PASSWORD)
    response = page.goto(f"{live_provider.issuer}/hr/dead")
    assert response is not None and response.status == 403
    # a replay without the form's CSRF token is refused before anything else
    status = page.evaluate(
        "async (u) => (await fetch(u, {method: 'POST'})).status", f"{live_provider.issuer}/hr/events/x/replay"
    )
    assert status in (400, 403)
