"""The durable job table: work that must happen later or be retried survives restarts."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Index, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"  # gave up after max attempts; visible, re-playable
    DISCARDED = "discarded"  # an administrator gave up on it, with a reason (audited)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "status", "run_at"),
        Index("ix_jobs_due_priority", "status", "priority", "run_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    run_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    priority: Mapped[int] = mapped_column(SmallInteger, default=100, server_default="100")
    """Due jobs run lowest first, then oldest first (``iam.jobs.URGENT``, ``NORMAL``, ``BULK``)."""
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=12)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str | None] = mapped_column(String(256), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    finished_at: Mapped[dt.datetime | None]


class WorkerHeartbeat(Base):
    """One row per running ``iam worker`` thread, touched while it runs: the console shows which
    workers are alive (seen within ``operations.worker_alive_seconds``)."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    """``host:pid:thread`` of the worker."""
    started_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    seen_at: Mapped[dt.datetime] = mapped_column(default=clock.now, index=True)
    jobs_run: Mapped[int] = mapped_column(default=0)


class PeriodicRun(Base):
    """One row per periodic task: when it is next due across all workers, and who runs it now.

    A worker runs a task only after moving ``due_at`` forward in one conditional UPDATE, so
    each interval's run happens on exactly one worker (PostgreSQL and SQLite alike)."""

    __tablename__ = "periodic_runs"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    due_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    running_by: Mapped[str | None] = mapped_column(String(128))
    running_until: Mapped[dt.datetime | None]
    """Lease of the run in progress (renewed by the running worker's heartbeat)."""
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    runs: Mapped[int] = mapped_column(default=0)


class NodeProbe(Base):
    """``/readyz`` writes here: proof that the database takes writes (not only ``SELECT 1``)."""

    __tablename__ = "node_probes"

    node: Mapped[str] = mapped_column(String(128), primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
