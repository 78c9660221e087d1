"""The console's PIM administration pages: a security officer (from the console's role, not
the pim settings) edits database roles with each validation message next to its field, sees
file roles read-only, adds and removes eligibility (groups must exist), registers and rotates
shared accounts; every change carries a reason in the audit log; the auditor is refused."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from pim.models import Eligibility, RoleOverride, SharedAccount
from tests.iam.admin.helpers import person, sign_in
from tests.pim.conftest import Env


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m
    return m.group(1)


ROLE = {
    "title": "Web admins",
    "groups": "Ops Admins",
    "max_minutes": "60",
    "default_minutes": "30",
    "approval": "y",
    "approvers": "boss",
    "approvals_required": "1",
    "justification_required": "y",
    "ticket_pattern": "^[A-Z]+-[0-9]+$",
    "min_level": "mfa",
    "enabled": "y",
}


def test_role_editor_shows_errors_in_place_and_saves(client: Any, pim: Env) -> None:
    officer = person(pim.services, Role.SECURITY_OFFICER)
    sign_in(client, pim.services, officer)
    page = client.get("/admin/pim/roles")
    assert page.status_code == 200 and "ops" in page.get_data(as_text=True)
    token = _csrf(client.get("/admin/pim/roles/new").get_data(as_text=True))
    bad = {
        **ROLE,
        "name": "web",
        "default_minutes": "90",
        "groups": "",
        "max_minutes": "sixty",
        "reason": "new app",
    }
    resp = client.post("/admin/pim/roles/new", data={**bad, "csrf_token": token})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="groups-error"' in html and 'id="max_minutes-error"' in html
    assert 'aria-invalid="true"' in html
    resp = client.post(
        "/admin/pim/roles/new",
        data={**ROLE, "name": "web", "default_minutes": "90", "reason": "x", "csrf_token": token},
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "default_minutes is larger than max_minutes" in html
    assert 'id="reason-error"' in html
    with pim.tx() as s:
        assert s.get(RoleOverride, "web") is None  # nothing stored
    resp = client.post(
        "/admin/pim/roles/new", data={**ROLE, "name": "web", "reason": "new web farm", "csrf_token": token}
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)[:3000]
    with pim.tx() as s:
        row = s.get(RoleOverride, "web")
        assert (
            row is not None
            and row.definition["groups"] == ["Ops Admins"]
            and row.definition["max_minutes"] == 60
        )
        [ev] = s.scalars(select(AuditEvent).where(AuditEvent.event == "pim.role_saved")).all()
        assert ev.actor == officer.id and ev.details["reason"] == "new web farm"


def test_file_roles_are_read_only_until_overridden(client: Any, pim: Env) -> None:
    sign_in(client, pim.services, person(pim.services, Role.SECURITY_OFFICER))
    html = client.get("/admin/pim/roles/ops").get_data(as_text=True)
    assert 'id="role-readonly"' in html and 'id="role-save"' not in html and "readonly" in html
    html = client.get("/admin/pim/roles/ops?override=1").get_data(as_text=True)
    assert 'id="role-save"' in html


def test_eligibility_add_checks_groups_and_remove(client: Any, pim: Env) -> None:
    officer = person(pim.services, Role.SECURITY_OFFICER)
    sign_in(client, pim.services, officer)
    token = _csrf(client.get("/admin/pim/eligibility").get_data(as_text=True))
    resp = client.post(
        "/admin/pim/eligibility",
        data={"csrf_token": token, "role": "ops", "username": "nobody-x", "reason": "on call"},
    )
    assert resp.status_code == 422 and 'id="username-error"' in resp.get_data(as_text=True)
    # a role naming a group the directory lacks is refused, as `iam pim eligible add` refuses it
    client.post(
        "/admin/pim/roles/new",
        data={**ROLE, "name": "ghost", "groups": "No Such Group", "reason": "test", "csrf_token": token},
    )
    resp = client.post(
        "/admin/pim/eligibility",
        data={"csrf_token": token, "role": "ghost", "username": "alice", "reason": "on call"},
    )
    assert resp.status_code == 422 and "No Such Group" in resp.get_data(as_text=True)
    resp = client.post(
        "/admin/pim/eligibility",
        data={"csrf_token": token, "role": "ops", "username": "alice", "reason": "on call"},
    )
    assert resp.status_code == 302
    with pim.tx() as s:
        row = s.scalar(select(Eligibility).where(Eligibility.role == "ops", Eligibility.username == "alice"))
        assert row is not None
        row_id = row.id
    resp = client.post(
        f"/admin/pim/eligibility/{row_id}/remove", data={"csrf_token": token, "reason": "left team"}
    )
    assert resp.status_code == 302
    with pim.tx() as s:
        assert s.get(Eligibility, row_id) is None
        reasons = {
            e.event: e.details.get("reason")
            for e in s.scalars(select(AuditEvent).where(AuditEvent.actor == officer.id))
        }
    assert reasons["pim.eligibility_added"] == "on call" and reasons["pim.eligibility_removed"] == "left team"


def test_shared_accounts_register_and_rotate(client: Any, pim: Env) -> None:
    sign_in(client, pim.services, person(pim.services, Role.SECURITY_OFFICER))
    token = _csrf(client.get("/admin/pim/shared").get_data(as_text=True))
    resp = client.post("/admin/pim/shared", data={"csrf_token": token, "username": "eve", "reason": "vendor"})
    assert resp.status_code == 422 and 'id="roles-error"' in resp.get_data(as_text=True)
    resp = client.post(
        "/admin/pim/shared",
        data={"csrf_token": token, "username": "eve", "roles": ["ops"], "reason": "vendor"},
    )
    assert resp.status_code == 302
    pim.run_jobs()
    with pim.tx() as s:
        assert s.get(SharedAccount, "eve").rotated_at is not None
    resp = client.post("/admin/pim/shared/eve/rotate", data={"csrf_token": token, "reason": "suspicion"})
    assert resp.status_code == 302
    with pim.tx() as s:
        assert s.scalars(select(Job).where(Job.kind == "pim.shared.rotate", Job.status == "pending")).first()
        [ev] = s.scalars(select(AuditEvent).where(AuditEvent.event == "pim.shared_rotation_requested")).all()
        assert ev.details["reason"] == "suspicion"


def test_auditor_and_it_admin_cannot_change_pim(client: Any, pim: Env) -> None:
    sign_in(client, pim.services, person(pim.services, Role.AUDITOR))
    html = client.get("/admin/pim/roles/new").get_data(as_text=True)
    assert client.get("/admin/pim/eligibility").status_code == 200
    resp = client.post(
        "/admin/pim/roles/new", data={**ROLE, "name": "aud", "reason": "try", "csrf_token": _csrf(html)}
    )
    assert resp.status_code == 403
    with pim.tx() as s:
        assert s.get(RoleOverride, "aud") is None
