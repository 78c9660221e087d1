"""Accepting HR events: stored durably before they are acknowledged, recognised when delivered
twice, queued for their effective time; the dead-letter list and its replay."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.i18n import N_
from provisioning.models import EventKind, EventStatus, HrEvent
from provisioning.service.schemas import EventIn

if TYPE_CHECKING:
    from iam.config import ProvisioningSettings

APPLY_JOB = "provisioning.apply"


@dataclass(frozen=True)
class Accepted:
    event: HrEvent
    duplicate: bool


def _job(session: Session, event: HrEvent, settings: ProvisioningSettings) -> None:
    jobs.enqueue(
        session,
        APPLY_JOB,
        {"employee_number": event.employee_number, "event": event.id},
        run_at=max(event.effective_at, clock.now()),
        dedup_key=f"hr-event:{event.id}:{event.replays}",
        max_attempts=settings.max_attempts + 4,
        # a leaver's access ends first, even behind a batch of thousands of joiners
        priority=jobs.URGENT if event.kind == EventKind.LEAVER else jobs.NORMAL,
    )


def accept(
    session: Session,
    event: EventIn,
    *,
    source: str,
    actor: str,
    settings: ProvisioningSettings,
    ip: str | None = None,
) -> Accepted:
    """Store the event (and the job that applies it) in the caller's transaction.

    The same idempotency key with the same content is the same event (``duplicate``); with other
    content it is refused with :class:`Conflict` and nothing is stored.
    """
    digest = event.digest()
    existing = session.scalar(select(HrEvent).where(HrEvent.idempotency_key == event.idempotency_key))
    if existing is not None:
        return _same(existing, digest)
    row = HrEvent(
        idempotency_key=event.idempotency_key,
        kind=event.kind.value,
        employee_number=event.person.employee_number,
        source=source,
        actor=actor,
        payload=event.canonical(),
        payload_hash=digest,
        status=EventStatus.PENDING,
        attempts=0,
        effective_at=event.effective(settings.timezone, joiner_lead_days=settings.joiner_lead_days),
        accepted_at=clock.now(),
        result={},
        replays=0,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same key delivered concurrently
        existing = session.scalar(select(HrEvent).where(HrEvent.idempotency_key == event.idempotency_key))
        if existing is None:
            raise
        return _same(existing, digest)
    _job(session, row, settings)
    audit.record(
        session,
        "hr.event.accepted",
        actor=actor,
        ip=ip,
        details={
            "event": row.id,
            "kind": row.kind,
            "employee_number": row.employee_number,
            "source": source,
            "effective_at": row.effective_at.isoformat(),
        },
    )
    return Accepted(row, duplicate=False)


def _same(existing: HrEvent, digest: str) -> Accepted:
    if existing.payload_hash != digest:
        raise Conflict(N_("This idempotency key was already used for a different event."))
    return Accepted(existing, duplicate=True)


def get_event(session: Session, event_id: str) -> HrEvent:
    row = session.get(HrEvent, event_id)
    if row is None:
        raise NotFound(N_("There is no such HR event."))
    return row


def list_events(
    session: Session,
    *,
    status: str | None = None,
    employee_number: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[HrEvent]:
    stmt = select(HrEvent)
    if status:
        stmt = stmt.where(HrEvent.status == status)
    if employee_number:
        stmt = stmt.where(HrEvent.employee_number == employee_number)
    stmt = stmt.order_by(HrEvent.accepted_at.desc(), HrEvent.id).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(HrEvent.status, func.count()).group_by(HrEvent.status))
    return {str(s): int(n) for s, n in rows}


def replay(session: Session, event_id: str, *, actor: str, settings: ProvisioningSettings) -> HrEvent:
    """Put a dead event back in the queue (operator action, audited)."""
    row = get_event(session, event_id)
    if row.status != EventStatus.DEAD:
        raise Conflict(N_("Only events on the dead-letter list can be replayed."))
    row.status = EventStatus.PENDING
    row.attempts = 0
    row.replays += 1
    _job(session, row, settings)
    audit.record(
        session,
        "hr.event.replayed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        details={"event": row.id, "kind": row.kind, "employee_number": row.employee_number},
    )
    return row


REASON_MAX = 1000


def discard(session: Session, event_id: str, *, actor: str, reason: str) -> HrEvent:
    """Take a dead event that can never apply off the dead-letter list (operator action, with a
    reason, audited). It stays in the event log as ``discarded``; nothing is applied."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationFailed(N_("Give the reason for discarding the event."))
    if len(reason) > REASON_MAX:
        raise ValidationFailed(
            N_("The reason is longer than %(REASON_MAX)s characters."), REASON_MAX=REASON_MAX
        )
    row = get_event(session, event_id)
    if row.status != EventStatus.DEAD:
        raise Conflict(N_("Only events on the dead-letter list can be discarded."))
    row.status = EventStatus.DISCARDED
    row.applied_at = None
    row.result = {
        **row.result,
        "discarded": {"reason": reason, "by": actor, "at": clock.now().isoformat()},
    }
    audit.record(
        session,
        "hr.event.discarded",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        details={
            "event": row.id,
            "kind": row.kind,
            "employee_number": row.employee_number,
            "reason": reason,
            "error": row.error,
        },
    )
    return row


def event_as_dict(row: HrEvent) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "kind": row.kind,
        "employee_number": row.employee_number,
        "source": row.source,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "effective_at": iso(row.effective_at),
        "accepted_at": iso(row.accepted_at),
        "applied_at": iso(row.applied_at),
        "latency_ms": row.latency_ms,
        "result": row.result,
    }
