"""The joiner / mover / leaver engine: applies stored HR events to the directory and the
identities, in effective-time order per person, exactly once.

Directory writes happen in the worker's job (``provisioning.apply``); each is idempotent (an
account is found again by its employee number, a membership added twice is harmless), so a retry
after an outage converges and nothing is applied twice. A failure is recorded on the event;
after ``provisioning.max_attempts`` the event is dead (the dead-letter list).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.errors import IamError
from iam.jobs import RetryLater
from provisioning.models import EventKind, EventStatus, HrEvent, HrPerson, PersonStatus
from provisioning.service.engine import joiner, leaver, memberships, mover
from provisioning.service.engine.common import ACTOR, Ctx, Permanent, Waiting, base_ou, log, superseded
from provisioning.service.engine.joiner import start
from provisioning.service.engine.leaver import purge
from provisioning.service.engine.mover import remove_due_groups
from provisioning.service.schemas import EventIn

if TYPE_CHECKING:
    from iam.services import Services

__all__ = [
    "Permanent",
    "Waiting",
    "apply_due",
    "apply_event",
    "base_ou",
    "purge",
    "remove_due_groups",
    "start",
]


def _next_due(session: Session, employee_number: str) -> str | None:
    stmt = (
        select(HrEvent.id)
        .where(
            HrEvent.employee_number == employee_number,
            HrEvent.status == EventStatus.PENDING,
            HrEvent.effective_at <= clock.now(),
        )
        .order_by(HrEvent.effective_at, HrEvent.accepted_at, HrEvent.id)
        .limit(1)
    )
    return session.scalar(stmt)


def apply_due(services: Services, employee_number: str, *, batch_groups: bool = False) -> int:
    """Apply every due event of one person, oldest effective time first. Raises RetryLater when
    one must be retried (the later ones wait behind it, so the order holds).

    ``batch_groups`` (the worker): a new account's memberships are queued and written per group
    together with other joiners' (``memberships``); otherwise they are written at once. Either
    way a person's queued memberships are written before their next event."""
    done = 0
    for _ in range(1000):
        with services.reader() as reader:
            event_id = _next_due(reader, employee_number)
        if event_id is None:
            return done
        try:
            memberships.settle_person(services, employee_number)
            apply_event(services, event_id, batch_groups=batch_groups)
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


def _decide(event: HrEvent, person: HrPerson | None) -> tuple[str, str]:
    """(action, reason): joiner, rehire, mover, leaver or superseded; Waiting when not yet."""
    kind = EventKind(event.kind)
    missing = "There is no HR record for this employee number yet."
    if kind is EventKind.LEAVER:
        if person is None:
            raise Waiting(missing)
        if person.status == PersonStatus.LEFT and not event.result.get("intent_at"):
            return "superseded", "The person has already left."
        return "leaver", ""
    if kind in (EventKind.JOINER, EventKind.REHIRE):
        if person is None:
            if kind is EventKind.REHIRE:
                raise Waiting(missing)
            return "joiner", ""
        if person.status == PersonStatus.LEFT:
            return "rehire", ""
        return "superseded", "The person already has an active account."
    if person is None:
        raise Waiting(missing)
    if person.status == PersonStatus.LEFT:
        return "superseded", "The person has left; a mover does not apply."
    if person.last_effective_at and event.effective_at < person.last_effective_at:
        return "superseded", "A later change of this person was already applied."
    return "mover", ""


def apply_event(services: Services, event_id: str, *, batch_groups: bool = False) -> None:
    """Directory first (no write lock held), then one transaction that records it."""
    facts: Any = None
    with services.reader() as reader:
        event = reader.get(HrEvent, event_id)
        if event is None or event.status != EventStatus.PENDING:
            return
        data = EventIn.model_validate(event.payload)
        person = reader.get(HrPerson, event.employee_number)
        action, why = _decide(event, person)
        if action == "joiner":
            facts = joiner.directory_step(services, reader, data, None, batch_groups=batch_groups)
        elif action == "rehire":
            facts = joiner.directory_step(services, reader, data, person, batch_groups=batch_groups)
        elif action == "mover":
            assert person is not None
            facts = mover.directory_step(services, reader, data, person)
    with services.transaction() as session:
        # the row lock (PostgreSQL) makes a second worker wait, then see the event applied
        event = session.get(HrEvent, event_id, with_for_update=True)
        if event is None or event.status != EventStatus.PENDING:
            return
        person = session.get(HrPerson, event.employee_number)
        ctx = Ctx(services, session, event, data)
        if action == "superseded":
            superseded(ctx, why)
        elif action == "joiner":
            if person is not None:  # another delivery of this joiner won the race
                superseded(ctx, "The person already has an account.")
            else:
                joiner.record_joiner(ctx, facts)
        elif action == "rehire":
            assert person is not None
            joiner.record_rehire(ctx, person, facts)
        elif action == "mover":
            assert person is not None
            mover.record_mover(ctx, person, facts)
        elif action == "leaver":
            assert person is not None
            leaver.intent(ctx, person)
    if action == "leaver":
        leaver.finish(services, event_id)
