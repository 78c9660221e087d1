"""The Operations pages through the test client: the IT administrator retries and discards
jobs with a reason; the auditor sees them and cannot change anything; no secret on the
settings page; health lists every dependency."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from iam import jobs
from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.models.jobs import Job, JobStatus
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def _dead_job(services: Services) -> str:
    with services.transaction() as s:
        job = jobs.enqueue(s, "test.dead", {"x": 1})
        assert job is not None
        job.status, job.attempts, job.last_error = JobStatus.DEAD, 12, "LDAPError: busy"
        return job.id


def test_it_admin_retries_and_discards_with_a_reason(client: Any, services: Services) -> None:
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    one, two = _dead_job(services), _dead_job(services)
    page = client.get("/admin/operations/jobs?view=dead")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "LDAPError: busy" in html and f"job-{one}" in html
    token = _csrf(html)
    # no reason: nothing changes
    resp = client.post(
        f"/admin/operations/jobs/{one}/retry?view=dead", data={"csrf_token": token, "reason": ""}
    )
    assert resp.status_code == 302
    with services.transaction() as s:
        assert s.get(Job, one).status == JobStatus.DEAD
    resp = client.post(
        f"/admin/operations/jobs/{one}/retry?view=dead", data={"csrf_token": token, "reason": "AD is back"}
    )
    assert resp.status_code == 302
    resp = client.post(
        f"/admin/operations/jobs/{two}/discard?view=dead",
        data={"csrf_token": token, "reason": "user removed by hand"},
    )
    with services.transaction() as s:
        assert s.get(Job, one).status == JobStatus.PENDING
        assert s.get(Job, two).status == JobStatus.DISCARDED
        events = {e.event: e for e in s.scalars(select(AuditEvent).where(AuditEvent.event.like("job.%")))}
    assert events["job.retried"].actor == admin.id and events["job.retried"].details["reason"] == "AD is back"
    assert events["job.discarded"].details["reason"] == "user removed by hand"


def test_without_csrf_nothing_changes(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.IT_ADMIN))
    one = _dead_job(services)
    resp = client.post(f"/admin/operations/jobs/{one}/discard", data={"reason": "no token"})
    assert resp.status_code == 400
    with services.transaction() as s:
        assert s.get(Job, one).status == JobStatus.DEAD


def test_auditor_sees_but_cannot_change(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.AUDITOR))
    one = _dead_job(services)
    for path in (
        "/admin/operations/jobs?view=dead",
        "/admin/operations/health",
        "/admin/operations/settings",
    ):
        assert client.get(path).status_code == 200, path
    html = client.get("/admin/operations/jobs?view=dead").get_data(as_text=True)
    resp = client.post(
        f"/admin/operations/jobs/{one}/discard", data={"csrf_token": _csrf(html), "reason": "auditor tries"}
    )
    assert resp.status_code == 403
    with services.transaction() as s:
        assert s.get(Job, one).status == JobStatus.DEAD


def test_help_desk_is_refused(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.HELPDESK))
    assert client.get("/admin/operations/jobs").status_code == 403


def test_settings_page_shows_no_secret(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.IT_ADMIN))
    html = client.get("/admin/operations/settings").get_data(as_text=True)
    settings = services.settings
    for secret in (settings.secret_key.get_secret_value(), settings.encryption_key.get_secret_value()):
        assert secret and secret not in html
    assert "worker_alive_seconds" in html


def test_health_lists_each_dependency(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.IT_ADMIN))
    html = client.get("/admin/operations/health").get_data(as_text=True)
    for name in ("database", "directory", "mail", "workers"):
        assert f'id="health-{name}"' in html
