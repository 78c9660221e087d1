"""The console's Operations service: job lists, retry and discard with a reason, worker
heartbeats, the effective settings with every secret masked, dependency health — on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from iam import clock, jobs
from iam.errors import Conflict, ValidationFailed
from iam.models.audit import AuditEvent
from iam.models.jobs import Job, JobStatus, WorkerHeartbeat
from iam.operations import service as ops
from iam.services import Services
from tests.conftest import make_settings


def _job(services: Services, kind: str, **values: object) -> str:
    with services.transaction() as s:
        job = jobs.enqueue(s, kind, {"n": 1})
        assert job is not None
        for key, value in values.items():
            setattr(job, key, value)
        return job.id


def _events(services: Services, name: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_job_lists_split_pending_failed_dead(services: Services) -> None:
    waiting = _job(services, "t.waiting")
    failed = _job(services, "t.failed", attempts=2, last_error="LDAPError: busy")
    dead = _job(services, "t.dead", status=JobStatus.DEAD, attempts=12, last_error="boom")
    with services.transaction() as s:
        assert [j.id for j in ops.list_jobs(s, "pending")] == [waiting]
        assert [j.id for j in ops.list_jobs(s, "failed")] == [failed]
        rows = ops.list_jobs(s, "dead")
        assert [(j.id, j.attempts, j.last_error) for j in rows] == [(dead, 12, "boom")]
        counts = ops.job_counts(s)
        assert counts["pending"] == 1 and counts["failed"] == 1 and counts["dead"] == 1
        with pytest.raises(ValidationFailed):
            ops.list_jobs(s, "everything")


def test_retry_needs_a_reason_and_is_audited(services: Services) -> None:
    dead = _job(services, "t.dead", status=JobStatus.DEAD, attempts=12, last_error="boom")
    with pytest.raises(ValidationFailed), services.transaction() as s:
        ops.retry_job(s, dead, actor="sub-admin", reason=" ")
    with services.transaction() as s:
        assert s.get(Job, dead).status == JobStatus.DEAD  # nothing changed
        ops.retry_job(s, dead, actor="sub-admin", reason="directory back")
    with services.transaction() as s:
        job = s.get(Job, dead)
        assert job.status == JobStatus.PENDING and job.attempts == 0
    [ev] = _events(services, "job.retried")
    assert ev.actor == "sub-admin" and ev.details["reason"] == "directory back"
    assert ev.details["was"] == "dead"


def test_discard_keeps_the_job_listed_with_the_reason(services: Services) -> None:
    dead = _job(services, "t.dead", status=JobStatus.DEAD, attempts=12, last_error="boom")
    with services.transaction() as s:
        ops.discard_job(s, dead, actor="sub-admin", reason="account deleted by hand in AD")
    with services.transaction() as s:
        assert [j.id for j in ops.list_jobs(s, "discarded")] == [dead]
        assert ops.list_jobs(s, "dead") == []
        with pytest.raises(Conflict):
            ops.discard_job(s, dead, actor="sub-admin", reason="again")
    [ev] = _events(services, "job.discarded")
    assert ev.details["reason"] == "account deleted by hand in AD" and ev.details["attempts"] == 12
    # a discarded job is never claimed again
    clock.advance(dt.timedelta(days=1))
    with services.transaction() as s:
        assert jobs.claim(s, me="w", limit=10, lease=60) == []


def test_a_running_job_cannot_be_discarded(services: Services) -> None:
    running = _job(services, "t.running", status=JobStatus.RUNNING, locked_by="w")
    with pytest.raises(Conflict), services.transaction() as s:
        ops.discard_job(s, running, actor="sub-admin", reason="stuck?")


def test_worker_heartbeats_tell_alive_from_gone(services: Services) -> None:
    worker = jobs.Worker(services)
    worker.tick()
    with services.transaction() as s:
        [row] = ops.workers(s, 60)
        assert row.alive and row.worker == worker.name
    clock.advance(dt.timedelta(seconds=120))
    with services.transaction() as s:
        [row] = ops.workers(s, 60)
        assert not row.alive
    checks = {c.name: c for c in ops.health(services)}
    assert checks["workers"].ok is False
    worker.tick()  # beats again: interval passed
    checks = {c.name: c for c in ops.health(services)}
    assert checks["workers"].ok is True and checks["database"].ok is True
    assert checks["mail"].ok is None  # not configured


def test_mail_relay_health_asks_the_relay(tmp_path, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    host, port = smtp_sink.server_address[:2]
    svc = Services(
        make_settings(tmp_path, "sqlite:///" + str(tmp_path / "x.db"), mail={"host": host, "port": port})
    )
    try:
        mail = {c.name: c for c in ops.health(svc)}["mail"]
        assert mail.ok is True, mail.detail
    finally:
        svc.dispose()
    closed = Services(
        make_settings(tmp_path, "sqlite:///" + str(tmp_path / "y.db"), mail={"host": "127.0.0.1", "port": 1})
    )
    try:
        assert {c.name: c for c in ops.health(closed)}["mail"].ok is False
    finally:
        closed.dispose()


def test_effective_settings_mask_every_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        tmp_path,
        "postgresql+psycopg://iam:db-pass-123@db.example:5432/iam",
        mail={"host": "smtp.example", "password": "mail-pass-456"},
        directory={"bind_password": "bind-pass-789"},
    )
    rows = ops.effective_settings(settings)
    flat = "\n".join(f"{r.section}.{r.key}={r.value}" for r in rows)
    for secret in ("db-pass-123", "mail-pass-456", "bind-pass-789", "test-secret-key-", "Ck1hYmNk"):
        assert secret not in flat, secret
    by_key = {(r.section, r.key): r for r in rows}
    assert by_key[("database", "url")].value == f"postgresql+psycopg://iam:{ops.MASK}@db.example:5432/iam"
    assert by_key[("database", "url")].secret
    assert by_key[("mail", "password")].value == ops.MASK
    assert by_key[("(top level)", "secret_key")].secret
    assert by_key[("mail", "host")].value == "smtp.example" and not by_key[("mail", "host")].secret
    # the field docstrings are the explanations
    assert "heartbeats" in by_key[("operations", "worker_heartbeat_interval")].doc


def test_cli_discards_with_a_reason(services: Services) -> None:
    from click.testing import CliRunner

    from iam.cli import cli
    from iam.clitools import Ctx

    dead = _job(services, "t.dead", status=JobStatus.DEAD, attempts=12, last_error="boom")
    runner = CliRunner()
    obj_env = Ctx()
    obj_env._settings, obj_env._services = services.settings, services
    result = runner.invoke(cli, ["jobs", "discard", dead, "--json"], obj=obj_env)
    assert result.exit_code != 0  # --reason is required
    result = runner.invoke(cli, ["jobs", "discard", dead, "--reason", "by hand", "--json"], obj=obj_env)
    assert result.exit_code == 0, result.output
    with services.transaction() as s:
        assert s.get(Job, dead).status == JobStatus.DISCARDED
    assert _events(services, "job.discarded")[0].details["reason"] == "by hand"


def test_heartbeats_of_long_gone_workers_are_deleted(services: Services) -> None:
    with services.transaction() as s:
        ops.beat(s, "crashed:1:1")
    clock.advance(ops.HEARTBEAT_KEEP + dt.timedelta(minutes=1))
    with services.transaction() as s:
        ops.beat(s, "alive:2:2")
    with services.transaction() as s:
        assert [w.worker for w in ops.workers(s, 60)] == ["alive:2:2"]
        assert s.get(WorkerHeartbeat, "crashed:1:1") is None
