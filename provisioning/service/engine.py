"""The joiner / mover / leaver engine: applies stored HR events to the directory and the
identities, in effective-time order per person, exactly once.

Directory writes happen inside the worker's job (``provisioning.apply``); each is idempotent
(an account is found again by its employee number, a membership added twice is harmless), so a
retry after an outage converges and nothing is applied twice. A failure is recorded on the
event; after ``provisioning.max_attempts`` the event is dead (the dead-letter list).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.directory.base import Directory, DirectoryUser, NewUser
from iam.directory.errors import DirectoryError, EntryExists, NoSuchEntry
from iam.errors import IamError
from iam.identities import disable_identity, upsert_identity
from iam.jobs import RetryLater
from iam.models.identity import Identity
from provisioning.models import (
    EventKind,
    EventStatus,
    GroupRemoval,
    HrEvent,
    HrPerson,
    PersonStatus,
    ReservedUsername,
    ReviewItem,
)
from provisioning.service import delivery
from provisioning.service.policies import birthright, naming
from provisioning.service.schemas import EventIn, PersonIn, local_midnight

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("provisioning")
ACTOR = "hr"


class Permanent(IamError):
    """The event can never be applied as it is (no free username …): dead at once."""


class Waiting(IamError):
    """The event cannot be applied yet (a mover before its joiner): retried with backoff."""


@dataclass
class Ctx:
    services: Services
    session: Session
    event: HrEvent
    data: EventIn

    @property
    def directory(self) -> Directory:
        return self.services.directory

    @property
    def settings(self) -> Any:
        return self.services.settings.provisioning


# -- driving ---------------------------------------------------------------------------------
def _next_due(session: Session, employee_number: str) -> HrEvent | None:
    stmt = (
        select(HrEvent)
        .where(
            HrEvent.employee_number == employee_number,
            HrEvent.status == EventStatus.PENDING,
            HrEvent.effective_at <= clock.now(),
        )
        .order_by(HrEvent.effective_at, HrEvent.accepted_at, HrEvent.id)
        .limit(1)
    )
    return session.scalar(stmt)


def apply_due(services: Services, employee_number: str) -> int:
    """Apply every due event of one person, oldest effective time first. Raises RetryLater when
    one must be retried (the later ones wait behind it, so the order holds)."""
    done = 0
    for _ in range(1000):
        with services.transaction() as session:
            event = _next_due(session, employee_number)
            if event is None:
                return done
            event_id = event.id
        try:
            apply_event(services, event_id)
        except Exception as exc:  # noqa: BLE001 — every failure is recorded on the event
            _failed(services, event_id, exc)
        done += 1
    return done


def _failed(services: Services, event_id: str, exc: Exception) -> None:
    if isinstance(exc, IamError | RetryLater):
        message = str(exc)
    else:
        log.error("HR event %s failed", event_id, exc_info=exc)
        message = f"{type(exc).__name__}: {exc}"
    message = message[:2000] or type(exc).__name__
    limit = services.settings.provisioning.max_attempts
    with services.transaction() as session:
        row = session.get(HrEvent, event_id)
        if row is None:
            return
        row.attempts += 1
        row.error = message
        if isinstance(exc, Permanent) or row.attempts >= limit:
            row.status = EventStatus.DEAD
            audit.record(
                session,
                "hr.event.dead",
                severity=audit.Severity.SIGNIFICANT,
                outcome="failure",
                actor=ACTOR,
                details={"event": row.id, "kind": row.kind, "attempts": row.attempts, "error": message},
            )
            return
    raise RetryLater(message)


def apply_event(services: Services, event_id: str) -> None:
    with services.transaction() as session:
        event = session.get(HrEvent, event_id)
        if event is None or event.status != EventStatus.PENDING:
            return
        data = EventIn.model_validate(event.payload)
        ctx = Ctx(services, session, event, data)
        person = session.get(HrPerson, event.employee_number)
        kind = EventKind(event.kind)
        if kind is EventKind.LEAVER:
            if person is None:
                raise Waiting("There is no HR record for this employee number yet.")
            if person.status == PersonStatus.LEFT and not event.result.get("intent_at"):
                return _superseded(ctx, "The person has already left.")
            leaver_intent(ctx, person)
    if kind is EventKind.LEAVER:
        return leaver_finish(services, event_id)
    with services.transaction() as session:
        event = session.get(HrEvent, event_id)
        assert event is not None
        ctx = Ctx(services, session, event, EventIn.model_validate(event.payload))
        person = session.get(HrPerson, event.employee_number)
        if kind is EventKind.JOINER or kind is EventKind.REHIRE:
            if person is None:
                if kind is EventKind.REHIRE:
                    raise Waiting("There is no HR record for this employee number yet.")
                joiner(ctx)
            elif person.status == PersonStatus.LEFT:
                rehire(ctx, person)
            else:
                _superseded(ctx, "The person already has an active account.")
        elif kind is EventKind.MOVER:
            if person is None:
                raise Waiting("There is no HR record for this employee number yet.")
            if person.status == PersonStatus.LEFT:
                _superseded(ctx, "The person has left; a mover does not apply.")
            elif person.last_effective_at and event.effective_at < person.last_effective_at:
                _superseded(ctx, "A later change of this person was already applied.")
            else:
                mover(ctx, person)


def _superseded(ctx: Ctx, why: str) -> None:
    ctx.event.status = EventStatus.SUPERSEDED
    ctx.event.applied_at = clock.now()
    ctx.event.error = None
    ctx.event.result = {**ctx.event.result, "superseded": why}
    audit.record(
        ctx.session,
        "hr.event.superseded",
        actor=ACTOR,
        details={"event": ctx.event.id, "kind": ctx.event.kind, "reason": why},
    )


def _applied(ctx: Ctx, result: dict[str, Any], *, at: dt.datetime | None = None) -> None:
    at = at or clock.now()
    ev = ctx.event
    ev.status = EventStatus.APPLIED
    ev.applied_at = at
    ev.error = None
    ev.latency_ms = round((at - ev.accepted_at).total_seconds() * 1000, 1)
    ev.result = {**ev.result, **result}


# -- helpers ---------------------------------------------------------------------------------
def start_of(day: dt.date, ctx: Ctx) -> dt.datetime:
    return local_midnight(day, ctx.settings.timezone)


def base_ou(services: Services) -> str:
    p = services.settings.provisioning
    return p.base_ou or services.settings.directory.users_ou


def choose_username(
    session: Session,
    directory: Directory,
    rule_candidates: list[str],
    employee_number: str,
    *,
    taken: set[str] | None = None,
) -> str:
    """The first candidate not reserved for another person and free in the directory."""
    for candidate in rule_candidates:
        key = candidate.casefold()
        if taken is not None and key in taken:
            continue
        held = session.get(ReservedUsername, key)
        if held is not None:
            if held.employee_number == employee_number:
                return candidate
            continue
        if directory.find_user(username=candidate) is not None:
            continue
        return candidate
    raise Permanent("No free username: every name the naming rule allows is taken or reserved.")


def reserve(session: Session, username: str, employee_number: str) -> None:
    if session.get(ReservedUsername, username.casefold()) is None:
        session.add(ReservedUsername(username=username.casefold(), employee_number=employee_number))
        session.flush()


def ensure_group(ctx: Ctx, name: str) -> None:
    if ctx.directory.get_group(name) is None:
        try:
            ctx.directory.create_group(name)
        except EntryExists:
            return
        audit.record(ctx.session, "directory.group_created", actor=ACTOR, details={"group": name})


def _fields(person: HrPerson, p: PersonIn) -> None:
    for name, value in p.model_dump(exclude_unset=True, exclude={"employee_number"}).items():
        if value is not None:
            setattr(person, name, value.value if hasattr(value, "value") else value)


def _schedule_end(ctx: Ctx, person: HrPerson) -> None:
    """A known end date becomes a leaver at the end of that day (contractors, fixed terms)."""
    if person.end_date is None:
        return
    from provisioning.service.events import accept

    day = person.end_date + dt.timedelta(days=1)
    event = EventIn.model_validate(
        {
            "idempotency_key": f"end-date:{person.employee_number}:{person.end_date.isoformat()}",
            "kind": "leaver",
            "effective_at": day.isoformat(),
            "person": {"employee_number": person.employee_number, "end_date": person.end_date},
        }
    )
    accept(ctx.session, event, source="end-date", actor=ACTOR, settings=ctx.settings)


def _set_password(ctx: Ctx, person: HrPerson, user: DirectoryUser) -> dict[str, Any]:
    from iam.passwords import service as passwords

    profile = ctx.services.password_profile
    temporary = passwords.generate_temporary_password(profile)
    ctx.directory.set_password(user.id, temporary, must_change=True)
    passwords.record_password_set(
        ctx.session, user.id, temporary, by_admin=True, actor=ACTOR, profile=profile
    )
    return delivery.prepare(ctx.session, ctx.services, person, temporary)


def _add_groups(ctx: Ctx, sub: str, groups: list[str]) -> None:
    for group in groups:
        ensure_group(ctx, group)
        ctx.directory.add_member(group, sub)


def _identity(ctx: Ctx, person: HrPerson, user: DirectoryUser, *, enabled: bool) -> Identity:
    row = upsert_identity(ctx.session, user, kind=ctx.directory.kind)
    row.disabled = not enabled
    row.birth_date = person.birth_date
    return row


# -- joiner ----------------------------------------------------------------------------------
def joiner(ctx: Ctx) -> None:
    p = ctx.data.person
    person = HrPerson(employee_number=p.employee_number, status=PersonStatus.PENDING_START)
    _fields(person, p)
    person.linked_accounts, person.groups = [], []
    ctx.session.add(person)
    ctx.session.flush()
    directory = ctx.directory
    user = directory.find_user(employee_number=p.employee_number)  # a retry finds its own account
    ou = birthright(ctx.services).ou_for(person.department, base_ou(ctx.services))
    if user is None:
        candidates = naming(ctx.services).candidates(
            given=person.given_name, family=person.family_name, employee_number=person.employee_number
        )
        username = choose_username(ctx.session, directory, candidates, person.employee_number)
        user = directory.create_user(
            NewUser(
                username=username,
                given_name=person.given_name,
                family_name=person.family_name,
                display_name=f"{person.given_name} {person.family_name}",
                email=person.email,
                employee_number=person.employee_number,
                ou=ou or None,
                enabled=False,
            )
        )
    reserve(ctx.session, user.username, person.employee_number)
    person.username, person.sub = user.username, user.id
    delivered = _set_password(ctx, person, user)
    groups = birthright(ctx.services).groups_for(
        department=person.department, title=person.title, kind=person.engagement
    )
    _add_groups(ctx, user.id, groups)
    person.groups = groups
    started = _start_if_due(ctx, person, user)
    person.last_effective_at = ctx.event.effective_at
    _schedule_end(ctx, person)
    audit.record(
        ctx.session,
        "hr.joiner",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=user.id,
        details={
            "event": ctx.event.id,
            "employee_number": person.employee_number,
            "username": user.username,
            "groups": groups,
            "ou": ou,
            "enabled": started,
        },
    )
    _applied(
        ctx,
        {
            "username": user.username,
            "sub": user.id,
            "dn": user.dn,
            "groups": groups,
            "enabled": started,
            "start_at": start_of(person.start_date, ctx).isoformat(),
            **delivered,
        },
    )


def _start_if_due(ctx: Ctx, person: HrPerson, user: DirectoryUser) -> bool:
    """Enable now if the start date has come; otherwise a job enables it then."""
    start = start_of(person.start_date, ctx)
    if start <= clock.now():
        ctx.directory.enable(user.id)
        fresh = ctx.directory.get_user(user.id) or user
        _identity(ctx, person, fresh, enabled=True)
        person.status = PersonStatus.ACTIVE
        person.granted_at = person.granted_at or clock.now()
        return True
    ctx.directory.disable(user.id)
    _identity(ctx, person, user, enabled=False)
    person.status = PersonStatus.PENDING_START
    jobs.enqueue(
        ctx.session,
        "provisioning.start",
        {"employee_number": person.employee_number},
        run_at=start,
        dedup_key=f"hr-start:{person.employee_number}:{start.isoformat()}:{ctx.event.id}",
    )
    return False


def start(services: Services, employee_number: str) -> bool:
    """The start date has come: enable the account (job ``provisioning.start``)."""
    with services.transaction() as session:
        person = session.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.PENDING_START or person.sub is None:
            return False
        if local_midnight(person.start_date, services.settings.provisioning.timezone) > clock.now():
            return False
        directory = services.directory
        directory.enable(person.sub)
        user = directory.get_user(person.sub)
        if user is None:
            raise Waiting("The account is missing in the directory.")
        row = upsert_identity(session, user, kind=directory.kind)
        row.birth_date = person.birth_date
        person.status = PersonStatus.ACTIVE
        person.granted_at = clock.now()
        audit.record(
            session,
            "hr.started",
            severity=audit.Severity.SIGNIFICANT,
            actor=ACTOR,
            subject=person.sub,
            details={"employee_number": employee_number, "username": person.username},
        )
        return True


# -- mover -----------------------------------------------------------------------------------
def mover(ctx: Ctx, person: HrPerson) -> None:
    _fields(person, ctx.data.person)
    if person.sub is None:
        raise Waiting("The person has no account yet.")
    old = list(person.groups or [])
    new = birthright(ctx.services).groups_for(
        department=person.department, title=person.title, kind=person.engagement
    )
    added = [g for g in new if g not in old]
    removed = [g for g in old if g not in new]
    _add_groups(ctx, person.sub, added)
    # a move back within the grace period keeps the access
    for pending in ctx.session.scalars(
        select(GroupRemoval).where(
            GroupRemoval.employee_number == person.employee_number,
            GroupRemoval.removed_at.is_(None),
            GroupRemoval.cancelled_at.is_(None),
        )
    ):
        if pending.group in new:
            pending.cancelled_at = clock.now()
    grace = ctx.settings.mover_grace_period
    due = clock.now() + dt.timedelta(seconds=grace)
    for group in removed:
        row = GroupRemoval(
            employee_number=person.employee_number,
            sub=person.sub,
            group=group,
            reason="mover",
            event_id=ctx.event.id,
            due_at=due,
        )
        ctx.session.add(row)
        if grace == 0:
            _remove(ctx.directory, group, person.sub)
            row.removed_at = clock.now()
    if removed and grace:
        jobs.enqueue(
            ctx.session,
            "provisioning.remove_groups",
            {"employee_number": person.employee_number},
            run_at=due,
            dedup_key=f"hr-remove:{ctx.event.id}",
        )
    ignore = {g.casefold() for g in ctx.settings.reconcile_ignore_groups}
    held = ctx.directory.user_groups(person.sub, nested=False)
    open_items = {
        r.group
        for r in ctx.session.scalars(
            select(ReviewItem).where(
                ReviewItem.employee_number == person.employee_number, ReviewItem.decided_at.is_(None)
            )
        )
    }
    review = [g for g in held if g not in new and g not in removed and g.casefold() not in ignore]
    for group in review:
        if group not in open_items:
            ctx.session.add(
                ReviewItem(
                    employee_number=person.employee_number, sub=person.sub, group=group, event_id=ctx.event.id
                )
            )
    person.groups = new
    person.last_effective_at = ctx.event.effective_at
    if "end_date" in ctx.data.person.model_fields_set:
        _schedule_end(ctx, person)
    details = {
        "event": ctx.event.id,
        "employee_number": person.employee_number,
        "department": person.department,
        "title": person.title,
        "added": added,
        "removed": removed,
        "removal_due_at": due.isoformat(),
        "for_review": review,
    }
    audit.record(
        ctx.session,
        "hr.mover",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=person.sub,
        details=details,
    )
    _applied(ctx, details)


def _remove(directory: Directory, group: str, sub: str) -> None:
    try:
        directory.remove_member(group, sub)
    except NoSuchEntry:
        log.info("group %s or user %s no longer exists; nothing to remove", group, sub)


def remove_due_groups(services: Services, employee_number: str) -> int:
    """After the grace period: remove what the old post gave (job ``provisioning.remove_groups``)."""
    with services.transaction() as session:
        rows = list(
            session.scalars(
                select(GroupRemoval).where(
                    GroupRemoval.employee_number == employee_number,
                    GroupRemoval.removed_at.is_(None),
                    GroupRemoval.cancelled_at.is_(None),
                    GroupRemoval.due_at <= clock.now(),
                )
            )
        )
        for row in rows:
            _remove(services.directory, row.group, row.sub)
            row.removed_at = clock.now()
            audit.record(
                session,
                "hr.access_removed",
                severity=audit.Severity.SIGNIFICANT,
                actor=ACTOR,
                subject=row.sub,
                details={"group": row.group, "reason": row.reason, "event": row.event_id},
            )
        return len(rows)


# -- leaver ----------------------------------------------------------------------------------
def _accounts(ctx: Ctx, person: HrPerson) -> list[str]:
    subs = [s for s in [person.sub, *(person.linked_accounts or [])] if s]
    fmt = ctx.settings.admin_account_format
    if fmt and person.username:
        admin = ctx.directory.find_user(username=fmt.format(username=person.username))
        if admin is not None and admin.id not in subs:
            subs.append(admin.id)
    return subs


def leaver_intent(ctx: Ctx, person: HrPerson) -> None:
    """One transaction of intent: the person has left, every account is disabled here and every
    SSO session and refresh token ends (sso reacts to ``identity_disabled``; back-channel
    logouts are queued); the directory follows in :func:`leaver_finish`."""
    ev = ctx.event
    if ev.result.get("intent_at"):
        return
    subs = _accounts(ctx, person)
    for sub in subs:
        row = ctx.session.get(Identity, sub)
        if row is None:
            user = ctx.directory.get_user(sub)
            if user is None:
                continue
            row = upsert_identity(ctx.session, user, kind=ctx.directory.kind)
            ctx.session.flush()
        disable_identity(ctx.session, sub=sub, actor=ACTOR, reason="leaver", write_directory=False)
    if ctx.data.person.end_date:
        person.end_date = ctx.data.person.end_date
    person.status = PersonStatus.LEFT
    person.ended_at = ev.effective_at
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


def leaver_finish(services: Services, event_id: str) -> None:
    """Disable every account in the directory and remove every group membership (recorded)."""
    with services.transaction() as session:
        ev = session.get(HrEvent, event_id)
        if ev is None or ev.status != EventStatus.PENDING:
            return
        person = session.get(HrPerson, ev.employee_number)
        assert person is not None
        ctx = Ctx(services, session, ev, EventIn.model_validate(ev.payload))
        accounts = ev.result.get("accounts", [])
        subs = [str(s) for s in accounts] if isinstance(accounts, list) else []
        directory = services.directory
        for sub in subs:
            try:
                directory.disable(sub)
            except NoSuchEntry:
                continue
        disabled_at = clock.now()
        removed: list[dict[str, str]] = []
        ignore = {g.casefold() for g in services.settings.provisioning.reconcile_ignore_groups}
        for sub in subs:
            try:
                groups = directory.user_groups(sub, nested=False)
            except NoSuchEntry:
                continue
            for group in groups:
                if group.casefold() in ignore:
                    continue
                _remove(directory, group, sub)
                session.add(
                    GroupRemoval(
                        employee_number=person.employee_number,
                        sub=sub,
                        group=group,
                        reason="leaver",
                        event_id=ev.id,
                        due_at=disabled_at,
                        removed_at=clock.now(),
                    )
                )
                removed.append({"sub": sub, "group": group})
        if person.username:
            reserve(session, person.username, person.employee_number)
        session.execute(  # pending grace-period removals are moot: everything went above
            update(GroupRemoval)
            .where(GroupRemoval.employee_number == person.employee_number, GroupRemoval.removed_at.is_(None))
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
        _applied(ctx, {**details, "disabled_at": disabled_at.isoformat()}, at=disabled_at)
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
    with services.transaction() as session:
        person = session.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.LEFT or not person.purge_at:
            return False
        if person.purge_at > clock.now():
            return False
        for sub in [s for s in [person.sub, *(person.linked_accounts or [])] if s]:
            try:
                services.directory.delete_user(sub)
            except NoSuchEntry:
                pass
        person.birth_date = None
        person.email = None
        person.manager_email = None
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


# -- rehire ----------------------------------------------------------------------------------
def rehire(ctx: Ctx, person: HrPerson) -> None:
    previous = [
        {"group": r.group, "reason": r.reason, "removed_at": r.removed_at.isoformat()}
        for r in ctx.session.scalars(
            select(GroupRemoval).where(
                GroupRemoval.employee_number == person.employee_number, GroupRemoval.removed_at.is_not(None)
            )
        )
        if r.removed_at
    ]
    _fields(person, ctx.data.person)
    if "end_date" not in ctx.data.person.model_fields_set:
        person.end_date = None
    directory = ctx.directory
    user = directory.get_user(person.sub) if person.sub else None
    if user is None:  # purged after retention: a new account under the same, reserved, name
        assert person.username is not None
        user = directory.create_user(
            NewUser(
                username=person.username,
                given_name=person.given_name,
                family_name=person.family_name,
                display_name=f"{person.given_name} {person.family_name}",
                email=person.email,
                employee_number=person.employee_number,
                ou=birthright(ctx.services).ou_for(person.department, base_ou(ctx.services)) or None,
                enabled=False,
            )
        )
        person.sub = user.id
    delivered = _set_password(ctx, person, user)
    groups = birthright(ctx.services).groups_for(
        department=person.department, title=person.title, kind=person.engagement
    )
    _add_groups(ctx, user.id, groups)
    person.groups = groups
    person.ended_at = None
    person.purge_at = None
    person.granted_at = None
    started = _start_if_due(ctx, person, user)
    person.last_effective_at = ctx.event.effective_at
    _schedule_end(ctx, person)
    details = {
        "event": ctx.event.id,
        "employee_number": person.employee_number,
        "username": person.username,
        "groups": groups,
        "enabled": started,
        "previous_removals": previous,
    }
    audit.record(
        ctx.session,
        "hr.rehire",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=user.id,
        details=details,
    )
    _applied(ctx, {**details, **delivered})


__all__ = ["DirectoryError", "Permanent", "Waiting", "apply_due", "apply_event"]
