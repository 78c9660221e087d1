"""Durable jobs: work that must happen later, or must be retried, lives in the ``jobs`` table.

``enqueue`` writes in the caller's transaction, so a job exists exactly when the change that
needs it committed. ``iam worker`` claims due jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
SQLite serialises writers), runs each in its own transaction, and retries failures with
exponential backoff until ``max_attempts``, after which the job is ``dead`` — visible and
re-playable with ``iam jobs retry``. A worker claims one job at a time, just before running it:
a crashed worker strands only the job it was running, whose lease (``worker.lease``) runs out
before another worker takes it over; the rest of the queue goes on at once. While a job runs,
a heartbeat thread renews its lease every ``cluster.heartbeat`` seconds, so a long job is
never taken over while its worker lives.

Periodic tasks run once per interval across all workers: each has a row in
``periodic_runs`` whose ``due_at`` a worker moves forward in one conditional UPDATE before
running the task — the one UPDATE that matches wins, on PostgreSQL and SQLite alike — and
whose ``running_until`` lease (renewed by the same heartbeat) keeps a slow run from being
started twice.
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
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from iam import clock, events
from iam.db import insert_if_absent, is_postgres
from iam.models.jobs import Job, JobStatus, PeriodicRun

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


#: Priorities: due jobs run lowest first, then oldest first. A leaver's removal of access must
#: not wait behind a batch of thousands of joiners (issue 18).
URGENT = 10
NORMAL = 100
BULK = 200


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: dt.datetime | None = None,
    dedup_key: str | None = None,
    max_attempts: int | None = None,
    priority: int = NORMAL,
) -> Job | None:
    """Add a job in the current transaction. With ``dedup_key``, a second enqueue is a no-op."""
    job = Job(
        kind=kind,
        payload=payload or {},
        run_at=run_at or clock.now(),
        dedup_key=dedup_key,
        status=JobStatus.PENDING,
        attempts=0,
        priority=priority,
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
    return _reserve(session, due, me=me, limit=limit, lease=lease, now=now)


def _reserve(session: Session, where: Any, *, me: str, limit: int, lease: int, now: dt.datetime) -> list[Job]:
    """The jobs matching ``where``, most urgent then oldest first, leased to ``me`` (rows
    another transaction holds are skipped on PostgreSQL)."""
    stmt = select(Job).where(where).order_by(Job.priority, Job.run_at).limit(limit)
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


def claim_more(
    session: Session,
    kind: str,
    *,
    me: str,
    limit: int,
    lease: int,
    dedup_prefix: str | None = None,
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """For a handler that serves many jobs of one ``kind`` at once (one directory write for
    many people): reserve up to ``limit`` more due jobs of that kind for ``me`` (caller commits),
    optionally only those whose dedup key starts with ``dedup_prefix`` (then also those
    waiting for their retry time). Returns their
    ``(id, payload)`` and whether a matching job is running elsewhere under a live lease.
    Settle every one with :func:`settle`."""
    now = clock.now()
    match = Job.kind == kind
    if dedup_prefix is not None:
        match = match & Job.dedup_key.startswith(dedup_prefix, autoescape=True)
    # one person's jobs (``dedup_prefix``) are taken even before their retry time: a later
    # event of that person waits for them
    pending = Job.status == JobStatus.PENDING
    if dedup_prefix is None:
        pending = pending & (Job.run_at <= now)
    due = pending | (Job.status == JobStatus.RUNNING) & (Job.locked_until < now)
    rows = _reserve(session, match & due, me=me, limit=limit, lease=lease, now=now)
    busy = False
    if dedup_prefix is not None:
        busy = (
            session.scalar(
                select(Job.id)
                .where(
                    match,
                    Job.status == JobStatus.RUNNING,
                    Job.locked_until >= now,
                    Job.locked_by != me,
                )
                .limit(1)
            )
            is not None
        )
    return [(j.id, dict(j.payload)) for j in rows], busy


def settle(session: Session, job_ids: list[str], *, me: str, error: str | None, backoff_base: float) -> None:
    """Finish jobs reserved with :func:`claim_more`: done, or (``error``) back in the queue with
    backoff — dead after their ``max_attempts``, as :func:`run_due` does with its own."""
    now = clock.now()
    for job in session.scalars(select(Job).where(Job.id.in_(job_ids), Job.locked_by == me)):
        job.locked_until = None
        if error is None:
            job.status = JobStatus.DONE
            job.finished_at = now
            job.last_error = None
        elif job.attempts >= job.max_attempts:
            job.status = JobStatus.DEAD
            job.finished_at = now
            job.last_error = error[:2000]
            events.job_dead.send(job.id, session=session, kind=job.kind, attempts=job.attempts)
        else:
            job.status = JobStatus.PENDING
            job.last_error = error[:2000]
            job.run_at = now + backoff(job.attempts, backoff_base)


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
        with Heartbeat(services, _renew_job(job_id, me)):
            _run_one(services, job_id, kind, payload, me)
        ran += 1
    return ran


class Heartbeat:
    """While the block runs, call ``renew(session, until)`` every ``cluster.heartbeat`` seconds
    in its own transaction (a thread), extending a lease to now + ``worker.lease``."""

    def __init__(self, services: Services, renew: Callable[[Session, dt.datetime], None]) -> None:
        self.services = services
        self.renew = renew
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        every = self.services.settings.cluster.heartbeat
        lease = self.services.settings.worker.lease
        while not self._stop.wait(every):
            try:
                with self.services.transaction() as session:
                    self.renew(session, clock.now() + dt.timedelta(seconds=lease))
            except Exception as exc:  # the next beat tries again; the lease is the bound
                log.warning("lease heartbeat failed: %s", type(exc).__name__)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="iam-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _renew_job(job_id: str, me: str) -> Callable[[Session, dt.datetime], None]:
    def renew(session: Session, until: dt.datetime) -> None:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.locked_by == me, Job.status == JobStatus.RUNNING)
            .values(locked_until=until)
        )

    return renew


def _renew_periodic(name: str, me: str) -> Callable[[Session, dt.datetime], None]:
    def renew(session: Session, until: dt.datetime) -> None:
        session.execute(
            update(PeriodicRun)
            .where(PeriodicRun.name == name, PeriodicRun.running_by == me)
            .values(running_until=until)
        )

    return renew


def claim_periodic(
    session: Session, name: str, *, every: float, me: str, lease: int
) -> tuple[bool, dt.datetime]:
    """Take this interval's run of the periodic task ``name`` (caller commits).

    Returns ``(won, next_check)``: ``won`` is true for exactly one caller per interval across
    all workers (the next run is then due ``every`` seconds after this one started);
    ``next_check`` is when the task can next be due (its ``due_at``, or the end of the lease
    of a run still in progress)."""
    now = clock.now()
    for _ in range(2):
        result = session.execute(
            update(PeriodicRun)
            .where(
                PeriodicRun.name == name,
                PeriodicRun.due_at <= now,
                or_(PeriodicRun.running_until.is_(None), PeriodicRun.running_until < now),
            )
            .values(
                due_at=now + dt.timedelta(seconds=every),
                running_by=me,
                running_until=now + dt.timedelta(seconds=lease),
                started_at=now,
                runs=PeriodicRun.runs + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0)) == 1:
            return True, now + dt.timedelta(seconds=every)
        row = session.execute(
            select(PeriodicRun.due_at, PeriodicRun.running_until).where(PeriodicRun.name == name)
        ).first()
        if row is not None:
            return False, max(row.due_at, row.running_until or row.due_at)
        insert_if_absent(session, PeriodicRun, {"name": name, "due_at": now, "runs": 0})
    return False, now


def finish_periodic(session: Session, name: str, *, me: str) -> None:
    session.execute(
        update(PeriodicRun)
        .where(PeriodicRun.name == name, PeriodicRun.running_by == me)
        .values(running_by=None, running_until=None, finished_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def run_periodic(services: Services, task: Periodic, *, me: str | None = None) -> tuple[bool, dt.datetime]:
    """Run ``task`` if this interval's run is still free. Returns whether this worker ran it
    and when the task can next be due."""
    me = me or worker_id()
    with services.transaction() as session:
        won, next_check = claim_periodic(
            session,
            task.name,
            every=task.every(services.settings),
            me=me,
            lease=services.settings.worker.lease,
        )
    if not won:
        return False, next_check
    try:
        with Heartbeat(services, _renew_periodic(task.name, me)):
            task.func(services)
    except Exception:
        log.exception("periodic task %s failed", task.name)
    finally:
        with services.transaction() as session:
            finish_periodic(session, task.name, me=me)
    return True, next_check


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
            events.job_dead.send(job_id, session=session, kind=kind, attempts=job.attempts)
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
        self._next_check: dict[str, dt.datetime] = {}
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
        now = clock.now()
        self._ran_since_beat += ran
        if now.timestamp() - self._last_beat >= self.services.settings.operations.worker_heartbeat_interval:
            self._heartbeat(now.timestamp())
        for task in list(_periodic.values()):
            # ask the database only when the task can be due (another worker's run moves that)
            due = self._next_check.get(task.name)
            if due is not None and now < due:
                continue
            try:
                _, self._next_check[task.name] = run_periodic(self.services, task)
            except DBAPIError:
                raise  # the database is gone: run() logs it once per outage
            except Exception:
                log.exception("periodic task %s could not be claimed", task.name)
        return ran

    def run(self) -> None:
        from iam import cluster

        cluster.listen(self.services)
        log.info("worker %s started", worker_id())
        failing_since: float | None = None
        while not self.stop_event.is_set():
            try:
                ran = self.tick()
                if failing_since is not None:
                    log.info("worker recovered after %.1f s", clock.now().timestamp() - failing_since)
                    failing_since = None
            except DBAPIError as exc:
                # a database outage (or failover): one line when it begins, one when it ends
                if failing_since is None:
                    failing_since = clock.now().timestamp()
                    log.exception("worker: database unavailable (%s); retrying", type(exc.orig).__name__)
                ran = 0
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
