"""Worker heartbeats: each ``iam worker`` touches its row while it runs; the console shows
which workers are alive."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from iam import clock
from iam.models.jobs import WorkerHeartbeat

HEARTBEAT_KEEP = dt.timedelta(days=7)
"""Rows of workers not seen for this long (crashed, never stopped cleanly) are deleted."""


def beat(session: Session, worker: str, *, ran: int = 0) -> None:
    """Record that ``worker`` is alive (called by the worker loop every few seconds)."""
    now = clock.now()
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < now - HEARTBEAT_KEEP))
    row = session.get(WorkerHeartbeat, worker)
    if row is None:
        session.add(WorkerHeartbeat(worker=worker, started_at=now, seen_at=now, jobs_run=ran))
    else:
        row.seen_at = now
        row.jobs_run += ran
    session.flush()


def forget_worker(session: Session, worker: str) -> None:
    """A worker that stops cleanly removes its row."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker == worker))


@dataclass(frozen=True)
class WorkerRow:
    worker: str
    started_at: dt.datetime
    seen_at: dt.datetime
    jobs_run: int
    alive: bool


def workers(session: Session, alive_seconds: int) -> list[WorkerRow]:
    """Every worker seen in the last day; ``alive`` when seen within ``alive_seconds``."""
    now = clock.now()
    rows = session.scalars(
        select(WorkerHeartbeat)
        .where(WorkerHeartbeat.seen_at >= now - dt.timedelta(days=1))
        .order_by(WorkerHeartbeat.seen_at.desc())
    )
    return [
        WorkerRow(
            worker=r.worker,
            started_at=r.started_at,
            seen_at=r.seen_at,
            jobs_run=r.jobs_run,
            alive=r.seen_at >= now - dt.timedelta(seconds=alive_seconds),
        )
        for r in rows
    ]
