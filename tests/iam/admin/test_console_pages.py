"""The pages that joined the console (issue 14/15/22 integration), through the test client: each
role opens what its row of the README's table says, the auditor reads and changes nothing, the
console's navigation lists them; the conformance page shows, downloads and records reports."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in

pytestmark = pytest.mark.parametrize("services", ["sqlite"], indirect=True)

OFFICER_PAGES = [
    "/audit/report",
    "/audit/review",
    "/security/alerts",
    "/security/directory-changes",
    "/policy/acceptances",
    "/admin/conformance/",
]
STATISTICS = ["/security/statistics", "/security/statistics.csv"]
HR_PAGES = ["/hr/events", "/hr/dead", "/hr/reconcile", "/hr/register"]


def _client(app: Flask, services: Services, *roles: Role) -> Any:
    c = app.test_client()
    sign_in(c, services, person(services, *roles))
    return c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m
    return m.group(1)


@pytest.mark.parametrize(
    ("role", "opens", "refused"),
    [
        (Role.SECURITY_OFFICER, OFFICER_PAGES + STATISTICS, HR_PAGES),
        (Role.AUDITOR, OFFICER_PAGES + STATISTICS + HR_PAGES, []),
        (Role.IT_ADMIN, STATISTICS, OFFICER_PAGES + HR_PAGES),
        (Role.HR_OPERATOR, HR_PAGES, OFFICER_PAGES + STATISTICS),
        (Role.HELPDESK, [], OFFICER_PAGES + STATISTICS + HR_PAGES),
    ],
)
def test_each_role_opens_its_pages(
    app: Flask, services: Services, role: Role, opens: list[str], refused: list[str]
) -> None:
    client = _client(app, services, role)
    for url in opens:
        status = client.get(url).status_code
        assert status in (200, 503), (role, url, status)  # 503: reconciliation without a directory
    for url in refused:
        assert client.get(url).status_code == 403, (role, url)


def test_console_navigation_lists_the_pages_and_the_header_does_not(app: Flask, services: Services) -> None:
    html = _client(app, services, Role.AUDITOR).get("/admin/").get_data(as_text=True)
    for endpoint in (
        "audit_report-report",
        "audit_report-review_latest",
        "detect-alerts",
        "detect-directory_changes",
        "detect-statistics",
        "provisioning-event_log",
        "provisioning-register",
        "sso-acceptances",
        "conformance_admin-page",
    ):
        assert f'id="admin-{endpoint}"' in html, endpoint
    header = html.split('id="admin-nav"')[0]
    for old in (
        "nav-detect-alerts",
        "nav-audit_report-report",
        "nav-provisioning-event_log",
        "nav-sso-acceptances",
    ):
        assert old not in header


def test_the_auditor_builds_an_audit_report_but_never_signs_the_review_off(
    app: Flask, services: Services
) -> None:
    client = _client(app, services, Role.AUDITOR)
    token = _csrf(client.get("/audit/report").get_data(as_text=True))
    made = client.post(
        "/audit/report", data={"csrf_token": token, "start": "2026-01-01", "end": "2026-01-31", "fmt": "csv"}
    )
    assert made.status_code == 200 and made.mimetype == "text/csv"
    signed = client.post("/audit/review/2026-01", data={"csrf_token": token, "comment": "no"})
    assert signed.status_code == 403
    alert = client.post("/security/alerts/1", data={"csrf_token": token, "to": "closed", "comment": "x"})
    assert alert.status_code == 403


def test_conformance_page_shows_downloads_and_records(app: Flask, services: Services) -> None:
    officer = person(services, Role.SECURITY_OFFICER)
    client = app.test_client()
    sign_in(client, services, officer)
    form = client.get("/admin/conformance/")
    assert form.status_code == 200 and 'id="conformance-form"' in form.get_data(as_text=True)
    assert 'id="conformance-report"' not in form.get_data(as_text=True)  # nothing built yet

    page = client.get("/admin/conformance/?rulebook=cacak&period=2026-Q3")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="conformance-report"' in html
    assert "2026-Q3" in html and 'id="conformance-pdf"' in html

    pdf = client.get("/admin/conformance/report.pdf?rulebook=cacak&period=2026-Q3")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert "attachment" in pdf.headers["Content-Disposition"]
    data = client.get("/admin/conformance/report.json?rulebook=cacak&period=2026-Q3")
    report = json.loads(data.data)
    assert report["rulebook"]["id"] == "cacak" and report["period"]["label"] == "2026-Q3"

    with services.reader() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event == "conformance.report")).all()
    assert sorted(r.details["format"] for r in rows) == ["html", "json", "pdf"]
    assert {r.actor for r in rows} == {officer.id}
    assert {r.details["sha256"] for r in rows} == {report["sha256"]}


def test_conformance_page_refuses_bad_input_and_builds_nothing(app: Flask, services: Services) -> None:
    client = _client(app, services, Role.AUDITOR)
    bad = client.get("/admin/conformance/?rulebook=cacak&period=last+summer")
    assert bad.status_code == 400 and 'id="form-error"' in bad.get_data(as_text=True)
    assert client.get("/admin/conformance/?rulebook=..%2Fetc").status_code == 400
    assert client.get("/admin/conformance/report.pdf?rulebook=cacak&period=2026-13-99").status_code == 400
    with services.reader() as s:
        assert s.scalars(select(AuditEvent).where(AuditEvent.event == "conformance.report")).first() is None
    assert _client(app, services, Role.HELPDESK).get("/admin/conformance/").status_code == 403
