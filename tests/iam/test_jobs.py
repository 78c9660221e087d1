"""Durable jobs: transactional enqueue, retries with backoff, dead jobs, leases, concurrent
workers, restarts — on SQLite and PostgreSQL. The clock is moved, never slept on."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.models.audit import AuditEvent
from iam.models.jobs import Job, JobStatus
from iam.services import Services

HandlerFn = Callable[[Services, Session, dict[str, Any]], None]


@pytest.fixture
def kind() -> Iterator[str]:
    """A job kind no other test uses; its handler is unregistered afterwards."""
    name = f"test.job.{secrets.token_hex(4)}"
    yield name
    jobs._handlers.pop(name, None)


def register(kind: str, fn: HandlerFn) -> None:
    jobs.handler(kind)(fn)


def enqueue(services: Services, kind: str, payload: dict[str, Any] | None = None, **kw: Any) -> str:
    with services.transaction() as s:
        job = jobs.enqueue(s, kind, payload, **kw)
        assert job is not None
        return job.id


def get(services: Services, job_id: str) -> Job:
    with services.transaction() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def count_jobs(services: Services, kind: str) -> int:
    with services.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Job).where(Job.kind == kind)) or 0)


def audit_events(services: Services, event: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event)))


# -- enqueue ----------------------------------------------------------------------------------
def test_enqueue_in_rolled_back_transaction_leaves_no_job(services: Services, kind: str) -> None:
    """A job exists exactly when the change that needs it committed."""
    queued: list[Job | None] = []

    def change_that_fails() -> None:
        with services.transaction() as s:
            queued.append(jobs.enqueue(s, kind, {"user_id": "u1"}))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()
    assert queued and queued[0] is not None
    assert count_jobs(services, kind) == 0


def test_enqueue_commits_a_pending_job(services: Services, kind: str) -> None:
    t0 = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    clock.freeze(t0)
    job = get(services, enqueue(services, kind, {"user_id": "u1"}))
    assert (job.kind, job.status, job.attempts, job.payload) == (
        kind,
        JobStatus.PENDING,
        0,
        {"user_id": "u1"},
    )
    assert job.run_at == t0
    assert job.locked_by is None and job.finished_at is None


def test_dedup_key_makes_a_second_enqueue_a_no_op(services: Services, kind: str) -> None:
    first = enqueue(services, kind, {"n": 1}, dedup_key=f"{kind}:x")
    with services.transaction() as s:
        assert jobs.enqueue(s, kind, {"n": 2}, dedup_key=f"{kind}:x") is None
    assert count_jobs(services, kind) == 1
    assert get(services, first).payload == {"n": 1}


def test_dedup_in_one_transaction_keeps_the_rest_of_it(services: Services, kind: str) -> None:
    """The refused duplicate rolls back only its savepoint: the transaction's other work stays."""
    with services.transaction() as s:
        assert jobs.enqueue(s, kind, {"n": 1}, dedup_key=f"{kind}:y") is not None
        assert jobs.enqueue(s, kind, {"n": 2}, dedup_key=f"{kind}:y") is None
        assert jobs.enqueue(s, kind, {"n": 3}) is not None
        audit.record(s, "test.alongside")
    with services.transaction() as s:
        payloads = sorted(p["n"] for p in s.scalars(select(Job.payload).where(Job.kind == kind)))
    assert payloads == [1, 3]
    assert len(audit_events(services, "test.alongside")) == 1


# -- running ----------------------------------------------------------------------------------
def test_run_due_runs_the_handler_once_and_marks_done(services: Services, kind: str) -> None:
    calls: list[dict[str, Any]] = []

    def handle(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        calls.append(payload)
        audit.record(session, "test.handled", details={"n": payload["n"]})

    register(kind, handle)
    job_id = enqueue(services, kind, {"n": 7})
    assert jobs.run_due(services) == 1
    assert calls == [{"n": 7}]
    job = get(services, job_id)
    assert job.status == JobStatus.DONE
    assert job.attempts == 1
    assert job.finished_at is not None and job.locked_until is None and job.last_error is None
    # the handler's own writes commit together with the job's completion
    assert [e.details for e in audit_events(services, "test.handled")] == [{"n": 7}]
    assert jobs.run_due(services) == 0
    assert calls == [{"n": 7}]


def test_job_scheduled_later_waits_for_its_time(services: Services, kind: str) -> None:
    ran: list[int] = []
    register(kind, lambda svc, s, p: ran.append(1))
    clock.freeze()
    enqueue(services, kind, run_at=clock.now() + dt.timedelta(minutes=10))
    assert jobs.run_due(services) == 0
    clock.advance(dt.timedelta(minutes=9, seconds=59))
    assert jobs.run_due(services) == 0
    clock.advance(dt.timedelta(seconds=1))
    assert jobs.run_due(services) == 1
    assert ran == [1]


def test_urgent_jobs_run_before_older_ones_and_a_retry_keeps_its_priority(
    services: Services, kind: str
) -> None:
    """A leaver's job (URGENT) does not wait behind thousands of older joiner jobs; among equals
    the oldest runs first; a retried urgent job is still urgent when its time comes."""
    ran: list[str] = []
    attempts: dict[str, int] = {}

    def handle(svc: Services, s: Session, p: dict[str, Any]) -> None:
        attempts[p["name"]] = attempts.get(p["name"], 0) + 1
        if p["name"] == "leaver" and attempts["leaver"] == 1:
            raise jobs.RetryLater("the DC said timeLimitExceeded")
        ran.append(p["name"])

    register(kind, handle)
    clock.freeze()
    for i in range(5):
        enqueue(services, kind, {"name": f"joiner-{i}"}, run_at=clock.now() - dt.timedelta(minutes=10 - i))
    enqueue(services, kind, {"name": "leaver"}, priority=jobs.URGENT)
    enqueue(
        services, kind, {"name": "report"}, priority=jobs.BULK, run_at=clock.now() - dt.timedelta(hours=1)
    )
    assert jobs.run_due(services, limit=1) == 1  # the leaver ran first (and asked to be retried)
    assert attempts == {"leaver": 1} and ran == []
    assert jobs.run_due(services, limit=2) == 2
    assert ran == ["joiner-0", "joiner-1"]
    clock.advance(dt.timedelta(minutes=5))  # the leaver's retry time has come
    assert jobs.run_due(services, limit=1) == 1
    assert ran == ["joiner-0", "joiner-1", "leaver"]
    jobs.run_due(services, limit=20)
    assert ran[3:] == ["joiner-2", "joiner-3", "joiner-4", "report"]


def test_backoff_doubles_and_is_capped() -> None:
    assert jobs.backoff(1, 5.0) == dt.timedelta(seconds=5)
    assert jobs.backoff(2, 5.0) == dt.timedelta(seconds=10)
    assert jobs.backoff(3, 5.0) == dt.timedelta(seconds=20)
    assert jobs.backoff(30, 5.0) == dt.timedelta(hours=1)


def test_failing_handler_backs_off_then_dies_with_an_audit_event(services: Services, kind: str) -> None:
    """A failing job is retried after base, 2×base, … and is ``dead`` after max_attempts, which
    writes a significant ``job.dead`` audit event; the handler's partial writes roll back."""
    base = dt.timedelta(seconds=services.settings.worker.backoff_base)
    attempts: list[int] = []

    def fail(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        attempts.append(1)
        audit.record(session, "test.partial")
        raise ValueError("directory said no")

    register(kind, fail)
    clock.freeze()
    job_id = enqueue(services, kind, max_attempts=4)

    assert jobs.run_due(services) == 1
    job = get(services, job_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert job.last_error == "ValueError: directory said no"
    assert job.locked_until is None

    for attempt, delay in ((2, base), (3, 2 * base), (4, 4 * base)):
        assert get(services, job_id).run_at == clock.now() + delay
        clock.advance(delay - dt.timedelta(milliseconds=1))
        assert jobs.run_due(services) == 0
        clock.advance(dt.timedelta(milliseconds=1))
        assert jobs.run_due(services) == 1
        assert get(services, job_id).attempts == attempt

    job = get(services, job_id)
    assert job.status == JobStatus.DEAD
    assert job.finished_at == clock.now()

    clock.advance(dt.timedelta(days=1))
    assert jobs.run_due(services) == 0
    assert len(attempts) == 4
    assert audit_events(services, "test.partial") == []
    [dead] = audit_events(services, "job.dead")
    assert (dead.severity, dead.outcome) == ("significant", "failure")
    assert dead.details == {"job": job_id, "kind": kind, "attempts": 4}
    with services.transaction() as s:
        assert audit.verify(s).ok


def test_a_batch_job_that_dies_in_settle_writes_the_same_audit_event(services: Services, kind: str) -> None:
    """Jobs served many at once (``claim_more`` … ``settle``): the last failed attempt makes the
    job dead and writes ``job.dead`` in the same transaction, as :func:`jobs.run_due` does."""
    job_id = enqueue(services, kind, {"n": 1}, max_attempts=1)
    with services.transaction() as s:
        claimed, _busy = jobs.claim_more(s, kind, me="batch-worker", limit=10, lease=60)
    assert [jid for jid, _ in claimed] == [job_id]
    with services.transaction() as s:
        jobs.settle(s, [job_id], me="batch-worker", error="directory said no", backoff_base=1.0)
    job = get(services, job_id)
    assert (job.status, job.last_error) == (JobStatus.DEAD, "directory said no")
    [dead] = audit_events(services, "job.dead")
    assert (dead.severity, dead.outcome) == ("significant", "failure")
    assert dead.details == {"job": job_id, "kind": kind, "attempts": 1}

    # a failure that still has attempts left is no death
    other = enqueue(services, kind, {"n": 2}, max_attempts=3)
    with services.transaction() as s:
        jobs.claim_more(s, kind, me="batch-worker", limit=10, lease=60)
        jobs.settle(s, [other], me="batch-worker", error="busy", backoff_base=1.0)
    assert get(services, other).status == JobStatus.PENDING
    assert len(audit_events(services, "job.dead")) == 1


def test_retry_later_keeps_the_job_pending(
    services: Services, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RetryLater: retried with backoff, no traceback logged; the next success completes it."""
    outcomes = iter([jobs.RetryLater("directory unreachable"), None])

    def flaky(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        exc = next(outcomes)
        if exc is not None:
            raise exc

    register(kind, flaky)
    clock.freeze()
    job_id = enqueue(services, kind)
    with caplog.at_level(logging.INFO, logger="iam.jobs"):
        assert jobs.run_due(services) == 1
    job = get(services, job_id)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.PENDING,
        1,
        "directory unreachable",
    )
    assert job.run_at > clock.now()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert audit_events(services, "job.dead") == []
    clock.advance(dt.timedelta(hours=1))
    assert jobs.run_due(services) == 1
    assert get(services, job_id).status == JobStatus.DONE


def test_job_without_handler_is_kept_for_retry(services: Services, kind: str) -> None:
    job_id = enqueue(services, kind)
    assert jobs.run_due(services) == 1
    job = get(services, job_id)
    assert job.status == JobStatus.PENDING
    assert "no handler" in (job.last_error or "")


def test_retry_dead_requeues(services: Services, kind: str) -> None:
    """``iam jobs retry``: dead jobs (all or one) go back to pending with a fresh attempt count."""
    healthy = threading.Event()

    def handle(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        if not healthy.is_set():
            raise ConnectionError("down")

    register(kind, handle)
    a = enqueue(services, kind, {"n": 1}, max_attempts=1)
    b = enqueue(services, kind, {"n": 2}, max_attempts=1)
    assert jobs.run_due(services) == 2
    assert {get(services, a).status, get(services, b).status} == {JobStatus.DEAD}

    healthy.set()
    with services.transaction() as s:
        assert jobs.retry_dead(s, a) == 1
    job = get(services, a)
    assert (job.status, job.attempts, job.finished_at) == (JobStatus.PENDING, 0, None)
    assert get(services, b).status == JobStatus.DEAD
    assert jobs.run_due(services) == 1
    assert get(services, a).status == JobStatus.DONE

    with services.transaction() as s:
        assert jobs.retry_dead(s) == 1
    assert jobs.run_due(services) == 1
    assert get(services, b).status == JobStatus.DONE
    with services.transaction() as s:
        assert jobs.retry_dead(s) == 0


# -- leases, concurrency, restarts ------------------------------------------------------------
def test_expired_lease_lets_another_worker_take_over(services: Services, kind: str) -> None:
    """A worker that claimed a job and crashed holds it only until its lease runs out."""
    ran: list[str] = []
    register(kind, lambda svc, s, p: ran.append("ran"))
    lease = services.settings.worker.lease
    clock.freeze()
    job_id = enqueue(services, kind)
    with services.transaction() as s:
        claimed = jobs.claim(s, me="crashed-worker", limit=10, lease=lease)
        assert [j.id for j in claimed] == [job_id]
    assert get(services, job_id).locked_by == "crashed-worker"

    assert jobs.run_due(services) == 0
    clock.advance(dt.timedelta(seconds=lease - 1))
    assert jobs.run_due(services) == 0
    clock.advance(dt.timedelta(seconds=2))
    assert jobs.run_due(services) == 1
    job = get(services, job_id)
    assert job.status == JobStatus.DONE
    assert job.locked_by == jobs.worker_id()
    assert job.attempts == 2
    assert ran == ["ran"]


class WorkerCrashed(BaseException):
    """The worker process dies inside a handler (not an error a handler could catch)."""


def test_crashed_worker_strands_only_the_job_it_was_running(services: Services, kind: str) -> None:
    """Issue 17 (drills): a worker killed mid-batch must not hold the jobs it has not started;
    a surviving worker runs them at once (seconds, not the lease)."""
    ran: list[tuple[str, int]] = []

    def handle(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        if payload["n"] == 0:
            raise WorkerCrashed  # worker A dies while running the first job
        ran.append(("B", int(payload["n"])))

    register(kind, handle)
    clock.freeze()
    with services.transaction() as s:
        for n in range(6):
            jobs.enqueue(s, kind, {"n": n}, run_at=clock.now() + dt.timedelta(microseconds=n))
    clock.advance(dt.timedelta(seconds=1))
    crashed: list[BaseException] = []
    worker_a: list[str] = []

    def run_a() -> None:  # worker A: its own thread, so its own worker id
        worker_a.append(jobs.worker_id())
        try:
            jobs.run_due(services)
        except WorkerCrashed as exc:
            crashed.append(exc)

    thread = threading.Thread(target=run_a)
    thread.start()
    thread.join(timeout=30)
    assert len(crashed) == 1

    clock.advance(dt.timedelta(seconds=2))  # seconds, far below the lease
    assert jobs.run_due(services) == 5  # worker B
    assert sorted(n for _, n in ran) == [1, 2, 3, 4, 5]
    with services.transaction() as s:
        rows = {int(j.payload["n"]): j for j in s.scalars(select(Job).where(Job.kind == kind))}
        assert rows[0].status == JobStatus.RUNNING and rows[0].locked_by == worker_a[0]
        assert {rows[n].status for n in range(1, 6)} == {JobStatus.DONE}

    # the job worker A was running comes back when its lease ends
    clock.advance(dt.timedelta(seconds=services.settings.worker.lease))
    register(kind, lambda svc, s, p: ran.append(("B", int(p["n"]))))
    assert jobs.run_due(services) == 1
    assert get(services, rows[0].id).status == JobStatus.DONE


@pytest.mark.parametrize("services", ["postgres"], indirect=True)
def test_concurrent_claimers_skip_locked_rows(services: Services, kind: str) -> None:
    """PostgreSQL: while one claimer holds rows, another claims only the others, without waiting
    (FOR UPDATE SKIP LOCKED)."""
    ids = {enqueue(services, kind, {"n": n}) for n in range(6)}
    first, second = services.sessions(), services.sessions()
    try:
        a = {j.id for j in jobs.claim(first, me="w1", limit=3, lease=300)}
        second.execute(text("SET LOCAL lock_timeout = '3s'"))  # fail, don't hang, if it blocks
        b = {j.id for j in jobs.claim(second, me="w2", limit=6, lease=300)}
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert len(a) == 3
    assert a.isdisjoint(b)
    assert a | b == ids
    with services.transaction() as s:
        owners = {i: o for i, o in s.execute(select(Job.id, Job.locked_by).where(Job.kind == kind))}
    assert {owners[i] for i in a} == {"w1"} and {owners[i] for i in b} == {"w2"}


def test_concurrent_workers_run_every_job_exactly_once(services: Services, kind: str) -> None:
    """Several workers (threads, own sessions) draining one queue never run a job twice."""
    lock = threading.Lock()
    seen: list[int] = []

    def handle(svc: Services, session: Session, payload: dict[str, Any]) -> None:
        with lock:
            seen.append(int(payload["n"]))

    register(kind, handle)
    with services.transaction() as s:
        for n in range(24):
            jobs.enqueue(s, kind, {"n": n})
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            while jobs.run_due(services, limit=2):
                pass
        except BaseException as exc:  # noqa: BLE001 — reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(seen) == list(range(24))
    with services.transaction() as s:
        statuses = set(s.scalars(select(Job.status).where(Job.kind == kind)))
    assert statuses == {JobStatus.DONE}


def test_jobs_survive_a_restart(services: Services, kind: str) -> None:
    """Queued work is in the database: a new process on the same database runs it."""
    ran: list[dict[str, Any]] = []
    register(kind, lambda svc, s, p: ran.append(p))
    job_id = enqueue(services, kind, {"user_id": "u-9"})
    restarted = Services(services.settings)
    try:
        assert jobs.run_due(restarted) == 1
    finally:
        restarted.dispose()
    assert ran == [{"user_id": "u-9"}]
    assert get(services, job_id).status == JobStatus.DONE


def test_worker_tick_runs_jobs_and_periodic_tasks(sqlite_services: Services, kind: str) -> None:
    """The worker runs due jobs and each periodic task once per interval; a failing periodic
    task does not stop the tick."""
    services = sqlite_services
    ran: list[str] = []
    register(kind, lambda svc, s, p: ran.append("job"))
    name, broken = f"{kind}.periodic", f"{kind}.broken"

    def boom(svc: Services) -> None:
        raise RuntimeError("periodic failure")

    jobs.periodic(broken, 60)(boom)
    jobs.periodic(name, 60)(lambda svc: ran.append("periodic"))
    try:
        clock.freeze()
        enqueue(services, kind)
        worker = jobs.Worker(services)
        assert worker.tick() == 1
        assert worker.tick() == 0
        assert ran == ["job", "periodic"]
        clock.advance(dt.timedelta(seconds=59))
        worker.tick()
        assert ran == ["job", "periodic"]
        clock.advance(dt.timedelta(seconds=1))
        worker.tick()
        assert ran == ["job", "periodic", "periodic"]
    finally:
        jobs._periodic.pop(name, None)
        jobs._periodic.pop(broken, None)
