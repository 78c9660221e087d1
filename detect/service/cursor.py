"""Cursors on the audit log: each consumer (detection, statistics) reads sealed events in
chain order after its own position.

Why the sealed ``seq`` and not the row id: ids are handed out when a row is inserted, so a
transaction that commits late can leave a lower id behind a reader that already went past it;
``seq`` is given by the sealer (one at a time, under the head's row lock) to committed rows
only, so nothing is ever skipped. The sealer runs every second: an event is read within about
two seconds of its commit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from detect.models import Cursor
from iam import clock
from iam.db import insert_if_absent
from iam.models.audit import AuditEvent

COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.event,
    AuditEvent.outcome,
    AuditEvent.actor,
    AuditEvent.subject,
    AuditEvent.client_id,
    AuditEvent.ip,
    AuditEvent.details,
)


def lock(session: Session, name: str) -> int:
    """The position of cursor ``name``, its row locked until the transaction ends (one consumer
    at a time across every node and worker)."""
    insert_if_absent(session, Cursor, {"name": name, "position": 0, "updated_at": clock.now()})
    row = session.execute(
        update(Cursor).where(Cursor.name == name).values(position=Cursor.position).returning(Cursor.position)
    ).one()
    return int(row[0])


def move(session: Session, name: str, position: int, *, source: str | None = None) -> None:
    values: dict[str, object] = {"position": position, "updated_at": clock.now()}
    if source is not None:
        values["source"] = source
    session.execute(update(Cursor).where(Cursor.name == name).values(**values))


def position(session: Session, name: str) -> int:
    return int(session.scalar(select(Cursor.position).where(Cursor.name == name)) or 0)


def events_after(session: Session, seq: int, limit: int) -> Sequence[Any]:
    """Up to ``limit`` sealed events after ``seq``, in chain order."""
    return session.execute(
        select(*COLUMNS).where(AuditEvent.seq > seq).order_by(AuditEvent.seq).limit(limit)
    ).all()
