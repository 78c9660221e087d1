"""Leavers (R-JML-5): one transaction of intent ends every session and token of every account of
the person at once; then every account is disabled in the directory and every group membership
removed (recorded); the time from acceptance to "disabled and sessions ended" is kept on the
event. After the retention period the directory account is deleted; the username stays
reserved forever."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from iam import audit, clock, jobs
from iam.directory.errors import NoSuchEntry
from iam.identities import disable_identity, upsert_identity
from iam.models.identity import Identity
from provisioning.models import EventStatus, GroupRemoval, HrEvent, HrPerson, PersonStatus
from provisioning.service import delivery, grants
from provisioning.service.engine.common import ACTOR, Ctx, applied, remove_member, reserve
from provisioning.service.schemas import EventIn

if TYPE_CHECKING:
    from iam.services import Services


def _accounts(ctx: Ctx, person: HrPerson) -> list[str]:
    subs = [s for s in [person.sub, *(person.linked_accounts or [])] if s]
    fmt = ctx.services.settings.pim.admin_account_format  # the one naming rule (R-PIM-2)
    if person.username:
        admin = ctx.directory.find_user(username=fmt.format(username=person.username))
        if admin is not None and admin.id not in subs:
            subs.append(admin.id)
    return subs


def intent(ctx: Ctx, person: HrPerson) -> None:
    """The person has left: every account disabled here, every SSO session and refresh token
    ended (sso reacts to ``identity_disabled``, queues back-channel logouts, and PIM ends
    elevations) — in this one transaction."""
    ev = ctx.event
    if ev.result.get("intent_at"):
        return
    subs = _accounts(ctx, person)
    for sub in subs:
        if ctx.session.get(Identity, sub) is None:
            user = ctx.directory.get_user(sub)
            if user is None:
                continue
            upsert_identity(ctx.session, user, kind=ctx.directory.kind)
            ctx.session.flush()
        disable_identity(ctx.session, sub=sub, actor=ACTOR, reason="leaver", write_directory=False)
    if ctx.data.person.end_date:
        person.end_date = ctx.data.person.end_date
    person.status = PersonStatus.LEFT
    delivery.withdraw(ctx.session, person.employee_number, reason="leaver")
    person.ended_at = ev.effective_at
    grants.end(
        ctx.session, person.employee_number, on=grants.local_date(ev.effective_at, ctx.settings.timezone)
    )
    person.last_effective_at = ev.effective_at
    days = ctx.settings.retention_days
    person.purge_at = clock.now() + dt.timedelta(days=days) if days else None
    if person.purge_at:
        jobs.enqueue(
            ctx.session,
            "provisioning.purge",
            {"employee_number": person.employee_number},
            run_at=person.purge_at,
            dedup_key=f"hr-purge:{person.employee_number}:{ev.id}",
        )
    ev.result = {**ev.result, "intent_at": clock.now().isoformat(), "accounts": subs}


def finish(services: Services, event_id: str) -> None:
    """Disable every account in the directory and remove every group membership (recorded)."""
    with services.reader() as reader:
        ev = reader.get(HrEvent, event_id)
        if ev is None or ev.status != EventStatus.PENDING:
            return
        accounts = ev.result.get("accounts", [])
        subs = [str(s) for s in accounts] if isinstance(accounts, list) else []
    directory = services.directory
    ignore = {g.casefold() for g in services.settings.provisioning.reconcile_ignore_groups}
    for sub in subs:
        try:
            directory.disable(sub)
        except NoSuchEntry:
            continue
    disabled_at = clock.now()
    removed: list[dict[str, str]] = []
    for sub in subs:
        try:
            groups = directory.user_groups(sub, nested=False)
        except NoSuchEntry:
            continue
        for group in groups:
            if group.casefold() not in ignore:
                remove_member(directory, group, sub)
                removed.append({"sub": sub, "group": group})
    with services.transaction() as session:
        ev = session.get(HrEvent, event_id, with_for_update=True)
        if ev is None or ev.status != EventStatus.PENDING:
            return
        person = session.get(HrPerson, ev.employee_number)
        assert person is not None
        ctx = Ctx(services, session, ev, EventIn.model_validate(ev.payload))
        for item in removed:
            session.add(
                GroupRemoval(
                    employee_number=person.employee_number,
                    sub=item["sub"],
                    group=item["group"],
                    reason="leaver",
                    event_id=ev.id,
                    due_at=disabled_at,
                    removed_at=disabled_at,
                )
            )
        if person.username:
            reserve(session, person.username, person.employee_number)
        session.execute(  # pending grace-period removals are moot: everything went above
            update(GroupRemoval)
            .where(
                GroupRemoval.employee_number == person.employee_number,
                GroupRemoval.removed_at.is_(None),
                GroupRemoval.cancelled_at.is_(None),
            )
            .values(cancelled_at=clock.now())
        )
        details: dict[str, Any] = {
            "event": ev.id,
            "employee_number": person.employee_number,
            "username": person.username,
            "accounts": subs,
            "groups_removed": removed,
            "purge_at": person.purge_at.isoformat() if person.purge_at else None,
        }
        applied(ctx, {**details, "disabled_at": disabled_at.isoformat()}, at=disabled_at)
        details["latency_ms"] = ev.latency_ms
        audit.record(
            session,
            "hr.leaver",
            severity=audit.Severity.SIGNIFICANT,
            actor=ACTOR,
            subject=person.sub,
            details=details,
        )


def purge(services: Services, employee_number: str) -> bool:
    """After the retention period: delete the directory account and keep of the HR record only
    what the register needs; the username stays reserved."""
    with services.reader() as reader:
        person = reader.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.LEFT or not person.purge_at:
            return False
        if person.purge_at > clock.now():
            return False
        subs = [s for s in [person.sub, *(person.linked_accounts or [])] if s]
    for sub in subs:
        try:
            services.directory.delete_user(sub)
        except NoSuchEntry:
            pass
    with services.transaction() as session:
        person = session.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.LEFT:
            return False
        person.birth_date = person.email = person.manager_email = None
        person.purge_at = None
        audit.record(
            session,
            "hr.purged",
            severity=audit.Severity.SIGNIFICANT,
            actor=ACTOR,
            subject=person.sub,
            details={"employee_number": employee_number, "username": person.username},
        )
        return True
