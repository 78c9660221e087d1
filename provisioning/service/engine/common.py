"""Shared pieces of the engine: the context of one event, errors, small helpers.

Each change runs in two steps: the directory first (reading our tables through a read-only
session), then one database transaction that records what was done. No database write lock is
held while the directory works: on SQLite the built-in directory writes to the same file, and
an AD round-trip must not stall every other writer.
"""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import audit, clock
from iam.directory.base import Directory
from iam.directory.errors import EntryExists, NoSuchEntry
from iam.errors import IamError
from iam.i18n import N_
from provisioning.models import EventStatus, HrEvent, HrPerson, ReservedUsername
from provisioning.service.schemas import EventIn, PersonIn, local_midnight

if TYPE_CHECKING:
    from iam.config import ProvisioningSettings
    from iam.services import Services

log = logging.getLogger("provisioning")
ACTOR = "hr"


class Permanent(IamError):
    """The event can never be applied as it is (no free username …): dead at once."""


class Waiting(IamError):
    """The event cannot be applied yet (a mover before its joiner): retried with backoff."""


@dataclass
class Ctx:
    """One event being recorded: ``session`` is the write transaction."""

    services: Services
    session: Session
    event: HrEvent
    data: EventIn

    @property
    def directory(self) -> Directory:
        return self.services.directory

    @property
    def settings(self) -> ProvisioningSettings:
        return self.services.settings.provisioning


def superseded(ctx: Ctx, why: str) -> None:
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


def applied(ctx: Ctx, result: dict[str, Any], *, at: dt.datetime | None = None) -> None:
    at = at or clock.now()
    ev = ctx.event
    ev.status = EventStatus.APPLIED
    ev.applied_at = at
    ev.error = None
    ev.latency_ms = round((at - ev.accepted_at).total_seconds() * 1000, 1)
    ev.result = {**ev.result, **result}


def start_of(day: dt.date, settings: ProvisioningSettings) -> dt.datetime:
    return local_midnight(day, settings.timezone)


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
    raise Permanent(N_("No free username: every name the naming rule allows is taken or reserved."))


def reserve(session: Session, username: str, employee_number: str) -> None:
    held = session.get(ReservedUsername, username.casefold())
    if held is None:
        session.add(ReservedUsername(username=username.casefold(), employee_number=employee_number))
        session.flush()
    elif held.employee_number != employee_number:
        raise Permanent(N_("The username %(username)s is reserved for another person."), username=username)


#: Birthright groups seen to exist, per directory object: name → when last seen. Every joiner
#: needs the same few groups; asking the directory for each of them per person was a round trip
#: per group and joiner. A group deleted meanwhile is noticed by the membership write itself.
_KNOWN_GROUPS: weakref.WeakKeyDictionary[Directory, dict[str, dt.datetime]] = weakref.WeakKeyDictionary()
_KNOWN_FOR = dt.timedelta(minutes=5)


def ensure_group(directory: Directory, name: str) -> bool:
    """Create the group if it is missing; True when it was created."""
    try:
        known = _KNOWN_GROUPS.setdefault(directory, {})
    except TypeError:  # a directory object without weak references: no memory
        known = {}
    key, now = name.casefold(), clock.now()
    seen = known.get(key)
    if seen is not None and now - seen < _KNOWN_FOR:
        return False
    if directory.get_group(name) is not None:
        known[key] = now
        return False
    try:
        directory.create_group(name)
    except EntryExists:
        return False
    known[key] = now
    return True


def forget_groups(directory: Directory) -> None:
    """Forget which groups were seen to exist in ``directory`` (one was deleted meanwhile)."""
    try:
        _KNOWN_GROUPS.pop(directory, None)
    except TypeError:  # pragma: no cover - no weak references: nothing remembered
        pass


def remove_member(directory: Directory, group: str, sub: str) -> None:
    try:
        directory.remove_member(group, sub)
    except NoSuchEntry:
        log.info("group %s or user %s no longer exists; nothing to remove", group, sub)


def set_fields(person: HrPerson, p: PersonIn) -> None:
    for name, value in p.model_dump(exclude_unset=True, exclude={"employee_number"}).items():
        if value is not None:
            setattr(person, name, value.value if hasattr(value, "value") else value)


def position(person: HrPerson | None, p: PersonIn) -> dict[str, Any]:
    """The person as this event leaves them (event fields over the stored record)."""
    out: dict[str, Any] = {}
    for name in PersonIn.model_fields:
        value = getattr(p, name)
        if value is None and person is not None:
            value = getattr(person, name, None)
        out[name] = value.value if hasattr(value, "value") else value
    return out


def schedule_end(ctx: Ctx, person: HrPerson) -> None:
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


def groups_created(ctx: Ctx, names: list[str]) -> None:
    for name in names:
        audit.record(ctx.session, "directory.group_created", actor=ACTOR, details={"group": name})
