"""Several workers on one database (issue 17): each periodic task runs once per interval across
all of them, a slow run is never started twice, and a long job keeps its lease while its worker
lives (heartbeat) but is taken over within the lease once the worker is gone."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from iam import clock, jobs
from iam.models.jobs import Job, JobStatus, PeriodicRun
from iam.services import Services
from tests.conftest import make_settings


@pytest.fixture
def workers(services: Services, tmp_path: Path) -> Iterator[list[Services]]:
    """Three worker processes' services on one database."""
    url = services.engine.url.render_as_string(hide_password=False)
    others = [Services(make_settings(tmp_path / str(i), url)) for i in range(2)]
    yield [services, *others]
    for o in others:
        o.dispose()


@pytest.fixture
def task_name() -> Iterator[str]:
    import secrets

    name = f"test.periodic.{secrets.token_hex(4)}"
    yield name
    jobs._periodic.pop(name, None)


def test_periodic_task_runs_once_per_interval_across_workers(workers: list[Services], task_name: str) -> None:
    """Three workers tick at the same moments (in parallel threads) for ten intervals: the task
    ran exactly ten times, never twice in one interval."""
    runs: list[dt.datetime] = []
    lock = threading.Lock()

    def task(svc: Services) -> None:
        with lock:
            runs.append(clock.now())

    jobs.periodic(task_name, 60)(task)
    clock.freeze()
    start = clock.now()
    ws = [jobs.Worker(s) for s in workers]
    errors: list[BaseException] = []
    try:
        for _step in range(20):  # every 30 s for 10 minutes: due every other step
            barrier = threading.Barrier(len(ws))

            def tick(w: jobs.Worker, barrier: threading.Barrier = barrier) -> None:
                try:
                    barrier.wait()
                    w.tick()
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=tick, args=(w,)) for w in ws]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            clock.advance(dt.timedelta(seconds=30))
        assert [(r - start).total_seconds() for r in runs] == [60.0 * i for i in range(10)]
        with workers[0].transaction() as s:
            row = s.get(PeriodicRun, task_name)
            assert row is not None and row.runs == 10 and row.running_by is None
    finally:
        clock.reset()


def test_slow_periodic_run_is_not_started_twice(workers: list[Services], task_name: str) -> None:
    """A run that outlasts its interval keeps the task (its lease, renewed by the heartbeat):
    another worker whose tick comes when the task is due again does not start a second run."""
    entered, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow(svc: Services) -> None:
        runs.append("run")
        entered.set()
        assert release.wait(30)

    jobs.periodic(task_name, 1)(slow)
    clock.freeze()
    try:
        first = threading.Thread(target=jobs.Worker(workers[0]).tick)
        first.start()
        assert entered.wait(30)
        clock.advance(dt.timedelta(seconds=5))  # due again, but the first run still holds it
        assert jobs.run_periodic(workers[1], jobs._periodic[task_name], me="w2")[0] is False
        release.set()
        first.join()
        assert runs == ["run"]
        assert jobs.run_periodic(workers[1], jobs._periodic[task_name], me="w2")[0] is True
        assert runs == ["run", "run"]
    finally:
        release.set()
        clock.reset()


def test_long_job_keeps_its_lease_while_its_worker_lives(services: Services) -> None:
    """The heartbeat renews the lease of a running job: when the original lease has long run
    out, another worker still does not take the job (it would run twice)."""
    import secrets

    kind = f"test.long.{secrets.token_hex(4)}"
    services.settings.cluster.heartbeat = 0.05
    lease = services.settings.worker.lease
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def long_job(svc: Services, session: object, payload: dict[str, object]) -> None:
        ran.append("ran")
        started.set()
        assert release.wait(30)

    jobs.handler(kind)(long_job)
    clock.freeze()
    try:
        with services.transaction() as s:
            job = jobs.enqueue(s, kind)
            assert job is not None
            job_id = job.id
        runner = threading.Thread(target=jobs.run_due, args=(services,))
        runner.start()
        assert started.wait(30)
        clock.advance(dt.timedelta(seconds=lease * 3))  # far past the lease it was claimed with

        def renewed() -> bool:
            with services.transaction() as s:
                row = s.get(Job, job_id)
                return row is not None and row.locked_until is not None and row.locked_until > clock.now()

        for _ in range(600):  # the heartbeat thread renews it (no clock involved in waiting)
            if renewed():
                break
            threading.Event().wait(0.05)
        assert renewed()
        with services.transaction() as s:
            assert jobs.claim(s, me="other-worker", limit=10, lease=lease) == []
        release.set()
        runner.join()
        assert ran == ["ran"]
        with services.transaction() as s:
            assert s.scalars(select(Job.status).where(Job.id == job_id)).one() == JobStatus.DONE
    finally:
        release.set()
        services.settings.cluster.heartbeat = 5.0
        jobs._handlers.pop(kind, None)
        clock.reset()


def test_worker_logs_a_database_outage_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A worker whose database is gone (a failover in progress) logs one error for the outage,
    not a traceback per poll (the drill saw one every 0.2 s)."""
    import logging

    settings = make_settings(
        tmp_path,
        "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1",
        worker={"poll_interval": 0.01},
    )
    svc = Services(settings)
    worker = jobs.Worker(svc)
    ticks = 0
    real_tick = worker.tick

    def counted() -> int:
        nonlocal ticks
        ticks += 1
        if ticks >= 20:
            worker.stop_event.set()
        return real_tick()

    worker.tick = counted  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.INFO, logger="iam.jobs"):
            worker.run()
    finally:
        svc.dispose()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert ticks == 20
    assert [r.getMessage() for r in errors] == ["worker: database unavailable (OperationalError); retrying"]
