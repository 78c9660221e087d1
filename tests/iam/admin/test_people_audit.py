"""People and audit pages through the test client (the browser tests drive them on AD too)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from sqlalchemy import select

from iam import audit, lockout
from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in
from tests.sso.helpers import PASSWORD, login


def _token(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token in page"
    return m.group(1)


def _events(services: Services, name: str) -> list[AuditEvent]:
    with services.reader() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))


def test_search_by_name_number_and_mail(client: Any, services: Services) -> None:
    desk = person(services, Role.HELPDESK)
    target = person(services, username="mmarkovic", given_name="Milica", family_name="Marković")
    services.directory  # noqa: B018
    sign_in(client, services, desk)
    for q in ("Marković", "mmark", "mmarkovic@example", "ilic"):
        page = client.get("/admin/people", query_string={"q": q}).get_data(as_text=True)
        assert f"/admin/people/{target.id}" in page, q
    page = client.get("/admin/people", query_string={"q": "x"}).get_data(as_text=True)
    assert "Type 2 to 128 characters" in page


def test_unlock_needs_a_reason_and_is_audited(client: Any, services: Services) -> None:
    desk = person(services, Role.HELPDESK)
    target = person(services)
    with services.transaction() as s:
        for _ in range(services.settings.lockout.threshold):
            lockout.record_failure(
                s,
                services.settings.lockout,
                account=lockout.Account(target.username, target.id),
                ip=None,
                user_agent=None,
            )
    sign_in(client, services, desk)
    page = client.get(f"/admin/people/{target.id}").get_data(as_text=True)
    assert "sign-in paused here" in page
    token = _token(page)
    resp = client.post(f"/admin/people/{target.id}/unlock", data={"csrf_token": token, "reason": ""})
    assert resp.status_code == 303 and not _events(services, "user.unlocked")  # nothing without a reason
    resp = client.post(f"/admin/people/{target.id}/unlock", data={"csrf_token": token, "reason": "ticket 42"})
    assert resp.status_code == 303
    (ev,) = _events(services, "user.unlocked")
    assert ev.actor == desk.id and ev.subject == target.id and ev.details["reason"] == "ticket 42"
    assert ev.details["provider_was_locked"] is True
    with services.reader() as s:
        assert not lockout.state(s, account=lockout.Account(target.username, target.id), ip=None).locked


def test_reset_password_ordinary_only(client: Any, services: Services) -> None:
    desk = person(services, Role.HELPDESK)
    ordinary = person(services)
    admin = person(services)
    services.directory.create_group("Domain Admins")
    services.directory.add_member("Domain Admins", admin.id)
    sign_in(client, services, desk)
    page = client.get(f"/admin/people/{admin.id}").get_data(as_text=True)
    assert "its password changes only through" in page and f"/admin/people/{admin.id}/password" not in page
    token = _token(client.get(f"/admin/people/{ordinary.id}").get_data(as_text=True))
    # a hand-made POST for the privileged account: refused, recorded, nothing changed
    resp = client.post(
        f"/admin/people/{admin.id}/password", data={"csrf_token": token, "reason": "forgot it"}
    )
    assert resp.status_code == 303
    assert _events(services, "password.reset_refused")[0].severity == audit.Severity.CRITICAL
    assert login(client.application.test_client(), admin.username, PASSWORD).status_code in (302, 303)
    resp = client.post(
        f"/admin/people/{ordinary.id}/password", data={"csrf_token": token, "reason": "forgot it"}
    )
    assert resp.status_code == 200
    temporary = re.search(r'id="temporary-password">([^<]+)<', resp.get_data(as_text=True))
    assert temporary and 'id="must-change"' in resp.get_data(as_text=True)
    assert services.directory.get_user(ordinary.id).must_change_password  # type: ignore[union-attr]
    (ev,) = _events(services, "admin.password_reset")
    assert ev.actor == desk.id and ev.details["reason"] == "forgot it"
    assert temporary.group(1) not in str(ev.details)


def test_audit_search_by_person_name_and_keyset_pages(client: Any, services: Services) -> None:
    officer = person(services, Role.SECURITY_OFFICER)
    victim = person(services, username="jjovanovic", given_name="Jovana", family_name="Jovanović")
    other = client.application.test_client()
    sign_in(other, services, victim, level="password")  # the provider now knows the identity
    login(other, victim.username, "wrong-password")
    with services.transaction() as s:
        for i in range(130):
            audit.record(s, "test.filler", actor="system", details={"i": i})
    sign_in(client, services, officer)
    page = client.get("/admin/audit", query_string={"person": "Jovanović", "event": "login.failed"})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "login.failed" in body and "Jovana Jovanović (jjovanovic)" in body
    seen: list[str] = []
    href: str | None = "/admin/audit?event=test.filler"
    while href:
        body = client.get(href).get_data(as_text=True)
        seen += re.findall(r"i: (\d+)", body)
        m = re.search(r'<a href="([^"]+)" id="older"', body)
        href = m.group(1).replace("&amp;", "&") if m else None
    assert sorted(map(int, seen)) == list(range(130)) and len(seen) == 130
    resp = client.get("/admin/audit.csv", query_string={"event": "test.filler"})
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0][0] == "id" and len(rows) == 131
    assert _events(services, "audit.exported")[0].actor == officer.id


def test_verify_now_records_the_status(client: Any, services: Services) -> None:
    from iam import jobs

    officer = person(services, Role.SECURITY_OFFICER)
    sign_in(client, services, officer)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "not been verified yet" in page
    client.post("/admin/audit/verify", data={"csrf_token": _token(page)})
    with services.transaction() as s:
        audit.seal(s)
    jobs.run_due(services)
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "verified intact" in page


def test_sessions_and_second_factor_from_the_person_page(client: Any, services: Services) -> None:
    """The sso panel: end a session (reason, audited); a help desk may reset an ordinary
    person's second factor but not a security officer's; a security officer may."""
    from sso.mfa import service as mfa

    desk = person(services, Role.HELPDESK)
    target = person(services)
    other = client.application.test_client()
    sign_in(other, services, target, level="password")
    with services.transaction() as s:
        view = mfa.start_enrollment(
            s, services.settings.mfa, services.cipher, sub=target.id, account_name="t", issuer_label="t"
        )
        import pyotp

        mfa.confirm_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=target.id,
            credential_id=view.credential_id,
            code=pyotp.TOTP(view.secret).now(),
        )
    sign_in(client, services, desk)
    page = client.get(f"/admin/people/{target.id}").get_data(as_text=True)
    assert "End this session" in page and "Reset second factor" in page
    token = _token(page)
    sid = re.search(r'action="/admin/sso/sessions/([^/"]+)/end"', page)
    assert sid
    resp = client.post(
        f"/admin/sso/sessions/{sid.group(1)}/end", data={"csrf_token": token, "reason": "lost laptop"}
    )
    assert resp.status_code == 303
    assert other.get("/account").status_code in (302, 303)  # signed out
    (ev,) = _events(services, "admin.session_ended")
    assert ev.actor == desk.id and ev.details["reason"] == "lost laptop"
    resp = client.post(
        f"/admin/sso/people/{target.id}/mfa/reset", data={"csrf_token": token, "reason": "new phone"}
    )
    assert resp.status_code == 303
    with services.reader() as s:
        assert not mfa.has_totp(s, target.id)

    officer = person(services)
    services_settings = services.settings.pim.security_officers
    services.settings.pim.security_officers = [officer.username]  # a PIM security officer: privileged
    try:
        resp = client.post(
            f"/admin/sso/people/{officer.id}/mfa/reset", data={"csrf_token": token, "reason": "new phone"}
        )
        assert resp.status_code == 303
        refused = _events(services, "mfa.reset_refused")
        assert refused and refused[0].severity == "critical" and refused[0].actor == desk.id
    finally:
        services.settings.pim.security_officers = services_settings
