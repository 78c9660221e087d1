"""Durable jobs: work that must happen later, or must be retried, lives in the ``jobs`` table.

``enqueue`` writes in the caller's transaction, so a job exists exactly when the change that
needs it committed. ``iam worker`` claims due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite serialises writers), runs each in its own transaction, and retries failures with
exponential backoff until ``max_attempts``, after which the job is ``dead`` — visible and
re-playable with ``iam jobs retry``. A worker claims one job at a time, just before running it:
a crashed worker strands only the job it was running, whose lease runs out before another
worker takes it over; the rest of the queue goes on at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from iam import clock
from iam.db import is_postgres
from iam.models.jobs import Job, JobStatus

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.jobs")

Handler = Callable[["Services", Session, dict[str, Any]], None]


@dataclass(frozen=True)
class Periodic:
    name: str
    interval: float | Callable[[Any], float]
    """Seconds, or a function of the settings that returns them."""
    func: Callable[[Services], None]

    def every(self, settings: Any) -> float:
        return self.interval(settings) if callable(self.interval) else self.interval


_handlers: dict[str, Handler] = {}
_periodic: dict[str, Periodic] = {}


class RetryLater(Exception):  # noqa: N818 — reads as an instruction
    """Raise from a handler to be retried with backoff without logging a traceback."""


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind``."""

    def deco(fn: Handler) -> Handler:
        _handlers[kind] = fn
        return fn

    return deco


def periodic(
    name: str, interval: float | Callable[[Any], float]
) -> Callable[[Callable[[Services], None]], Any]:
    """Register a function the worker runs every ``interval`` seconds."""

    def deco(fn: Callable[[Services], None]) -> Callable[[Services], None]:
        _periodic[name] = Periodic(name, interval, fn)
        return fn

    return deco


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: dt.datetime | None = None,
    dedup_key: str | None = None,
    max_attempts: int | None = None,
) -> Job | None:
    """Add a job in the current transaction. With ``dedup_key``, a second enqueue is a no-op."""
    job = Job(
        kind=kind,
        payload=payload or {},
        run_at=run_at or clock.now(),
        dedup_key=dedup_key,
        status=JobStatus.PENDING,
        attempts=0,
    )
    if max_attempts is not None:
        job.max_attempts = max_attempts
    if dedup_key is None:
        session.add(job)
        session.flush()
        return job
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        return None
    return job


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim(session: Session, *, me: str, limit: int, lease: int) -> list[Job]:
    """Reserve up to ``limit`` due jobs for ``me`` (caller commits)."""
    now = clock.now()
    due = or_(
        (Job.status == JobStatus.PENDING) & (Job.run_at <= now),
        (Job.status == JobStatus.RUNNING) & (Job.locked_until < now),
    )
    stmt = select(Job).where(due).order_by(Job.run_at).limit(limit)
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list(session.scalars(stmt))
    for job in jobs:
        job.status = JobStatus.RUNNING
        job.locked_by = me
        job.locked_until = now + dt.timedelta(seconds=lease)
        job.attempts += 1
    session.flush()
    return jobs


def backoff(attempts: int, base: float) -> dt.timedelta:
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 3600))


def run_due(services: Services, *, limit: int = 20) -> int:
    """Claim and run up to ``limit`` due jobs, one at a time; return how many were run.

    Each job is claimed just before it runs, never in a batch: a worker that dies holds at most
    the one job it was running (until its lease ends), and every other due job stays free for
    the surviving workers at once."""
    me = worker_id()
    lease = services.settings.worker.lease
    ran = 0
    while ran < limit:
        with services.transaction() as session:
            claimed = [(j.id, j.kind, dict(j.payload)) for j in claim(session, me=me, limit=1, lease=lease)]
        if not claimed:
            break
        job_id, kind, payload = claimed[0]
        _run_one(services, job_id, kind, payload, me)
        ran += 1
    return ran


def _missing_handler(services: Services, session: Session, payload: dict[str, Any]) -> None:
    raise LookupError("no handler registered for this job kind")


def _run_one(services: Services, job_id: str, kind: str, payload: dict[str, Any], me: str) -> None:
    fn = _handlers.get(kind)
    error: str | None = None
    try:
        if fn is None:
            fn = _missing_handler
        with services.transaction() as session:
            fn(services, session, payload)
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.locked_by == me)
                .values(
                    status=JobStatus.DONE,
                    finished_at=clock.now(),
                    locked_until=None,
                    last_error=None,
                )
            )
        return
    except RetryLater as exc:
        error = str(exc) or "retry requested"
        log.info("job %s (%s) will be retried: %s", job_id, kind, error)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.exception("job %s (%s) failed", job_id, kind)
    with services.transaction() as session:
        job = session.get(Job, job_id)
        if job is None or job.locked_by != me:
            return
        job.last_error = error
        job.locked_until = None
        if job.attempts >= job.max_attempts:
            job.status = JobStatus.DEAD
            job.finished_at = clock.now()
            from iam import audit

            audit.record(
                session,
                "job.dead",
                severity=audit.Severity.SIGNIFICANT,
                outcome="failure",
                details={"job": job_id, "kind": kind, "attempts": job.attempts},
            )
        else:
            job.status = JobStatus.PENDING
            job.run_at = clock.now() + backoff(job.attempts, services.settings.worker.backoff_base)


def retry_dead(session: Session, job_id: str | None = None) -> int:
    """Put dead jobs (all, or one) back in the queue."""
    stmt = update(Job).where(Job.status == JobStatus.DEAD)
    if job_id:
        stmt = stmt.where(Job.id == job_id)
    result = session.execute(
        stmt.values(
            status=JobStatus.PENDING,
            attempts=0,
            run_at=clock.now(),
            finished_at=None,
            last_error=None,
            locked_by=None,
            locked_until=None,
        )
    )
    return int(getattr(result, "rowcount", 0))


class Worker:
    """Runs due jobs and periodic tasks until stopped."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.stop_event = threading.Event()
        self._last_run: dict[str, float] = {}
        self._last_beat = 0.0
        self._ran_since_beat = 0
        self.name = worker_id()

    def _heartbeat(self, now: float) -> None:
        """Tell the console this worker is alive (``worker_heartbeats``); never stops the loop."""
        from iam.operations.service import beat

        try:
            with self.services.transaction() as session:
                beat(session, self.name, ran=self._ran_since_beat)
            self._last_beat = now
            self._ran_since_beat = 0
        except Exception:
            log.warning("worker heartbeat could not be written; retrying", exc_info=True)

    def tick(self) -> int:
        ran = run_due(self.services)
        now = clock.now().timestamp()
        self._ran_since_beat += ran
        if now - self._last_beat >= self.services.settings.operations.worker_heartbeat_interval:
            self._heartbeat(now)
        for task in list(_periodic.values()):
            if now - self._last_run.get(task.name, 0.0) >= task.every(self.services.settings):
                self._last_run[task.name] = now
                try:
                    task.func(self.services)
                except Exception:
                    log.exception("periodic task %s failed", task.name)
        return ran

    def run(self) -> None:
        log.info("worker %s started", worker_id())
        while not self.stop_event.is_set():
            try:
                ran = self.tick()
            except Exception:
                log.exception("worker tick failed; retrying")
                ran = 0
            if not ran:
                self.stop_event.wait(self.services.settings.worker.poll_interval)
        try:
            from iam.operations.service import forget_worker

            with self.services.transaction() as session:
                forget_worker(session, self.name)
        except Exception:
            log.warning("worker heartbeat row could not be removed", exc_info=True)
        log.info("worker %s stopped", worker_id())
