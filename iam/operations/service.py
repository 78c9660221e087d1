"""What the console's Operations pages show and do, without Flask: the job queue (pending,
failed, dead; retry, discard with a reason), the effective settings with every secret masked,
and the health of each dependency (database, directory, mail relay, workers).

Functions take a :class:`~sqlalchemy.orm.Session`, flush but never commit, and write their own
audit rows with the administrator as actor."""

from __future__ import annotations

import ast
import datetime as dt
import functools
import inspect
import smtplib
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.models.jobs import Job, JobStatus, WorkerHeartbeat

if TYPE_CHECKING:
    from iam.config import Settings
    from iam.services import Services

MASK = "••••••"
"""What the settings page shows instead of a secret's value."""

_SECRET_WORDS = ("password", "secret", "token", "key", "credential", "private")
_NOT_SECRET = {"key_rotation_grace", "api_resource", "cookie_name", "token_endpoint_auth_method"}

# -- jobs ----------------------------------------------------------------------------------------
JOB_VIEWS = ("pending", "failed", "dead", "running", "discarded")
"""The job lists of the console: ``failed`` = waiting for a retry after at least one error."""


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    status: str
    attempts: int
    max_attempts: int
    run_at: dt.datetime
    created_at: dt.datetime
    last_error: str | None
    finished_at: dt.datetime | None


def job_counts(session: Session) -> dict[str, int]:
    """How many jobs are in each of :data:`JOB_VIEWS`."""
    counts = dict.fromkeys(JOB_VIEWS, 0)
    for status, failed, n in session.execute(
        select(Job.status, Job.last_error.is_not(None), func.count()).group_by(
            Job.status, Job.last_error.is_not(None)
        )
    ):
        if status == JobStatus.PENDING and failed:
            counts["failed"] += n
        elif status in counts:
            counts[status] += n
    return counts


def list_jobs(session: Session, view: str, *, limit: int = 200) -> list[JobRow]:
    """The jobs of one list (newest first, at most ``limit``)."""
    if view not in JOB_VIEWS:
        raise ValidationFailed(f"Unknown job list {view!r}.")
    stmt = select(Job)
    if view == "failed":
        stmt = stmt.where(Job.status == JobStatus.PENDING, Job.last_error.is_not(None))
    elif view == "pending":
        stmt = stmt.where(Job.status == JobStatus.PENDING, Job.last_error.is_(None))
    else:
        stmt = stmt.where(Job.status == view)
    stmt = stmt.order_by(Job.created_at.desc(), Job.id).limit(limit)
    return [
        JobRow(
            id=j.id,
            kind=j.kind,
            status=j.status,
            attempts=j.attempts,
            max_attempts=j.max_attempts,
            run_at=j.run_at,
            created_at=j.created_at,
            last_error=j.last_error,
            finished_at=j.finished_at,
        )
        for j in session.scalars(stmt)
    ]


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ValidationFailed("Give a reason (it is kept in the audit log).")
    return reason[:500]


def retry_job(session: Session, job_id: str, *, actor: str, reason: str, ip: str | None = None) -> Job:
    """Run a dead or failed job again now, with a fresh count of attempts."""
    why = _reason(reason)
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("There is no such job.")
    if job.status not in (JobStatus.DEAD, JobStatus.PENDING):
        raise Conflict("Only a dead or waiting job can be retried.")
    before = job.status
    job.status = JobStatus.PENDING
    job.attempts = 0
    job.run_at = clock.now()
    job.finished_at = None
    job.locked_by = None
    job.locked_until = None
    session.flush()
    audit.record(
        session,
        "job.retried",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=ip,
        details={"job": job.id, "kind": job.kind, "was": before, "reason": why},
    )
    return job


def discard_job(session: Session, job_id: str, *, actor: str, reason: str, ip: str | None = None) -> Job:
    """Give up on a dead or waiting job for good: it stays listed as ``discarded``, with why."""
    why = _reason(reason)
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("There is no such job.")
    if job.status not in (JobStatus.DEAD, JobStatus.PENDING):
        raise Conflict("Only a dead or waiting job can be discarded; a running job finishes first.")
    before = job.status
    job.status = JobStatus.DISCARDED
    job.finished_at = clock.now()
    job.locked_by = None
    job.locked_until = None
    session.flush()
    audit.record(
        session,
        "job.discarded",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=ip,
        details={
            "job": job.id,
            "kind": job.kind,
            "was": before,
            "attempts": job.attempts,
            "reason": why,
        },
    )
    return job


# -- worker heartbeats ---------------------------------------------------------------------------
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


# -- effective settings --------------------------------------------------------------------------
@dataclass(frozen=True)
class SettingRow:
    section: str
    key: str
    value: str
    secret: bool
    doc: str


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """A URL with any password replaced by the mask (``postgresql://iam:••••••@db/iam``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _shown(name: str, value: Any) -> tuple[str, bool]:
    if isinstance(value, SecretStr):
        return (MASK if value.get_secret_value() else ""), True
    if _looks_secret(name):
        return (MASK if value not in (None, "", [], {}) else ""), True
    if isinstance(value, str) and "://" in value:
        masked = mask_url(value)
        return masked, masked != value
    if isinstance(value, BaseModel):
        return ", ".join(f"{k}={_shown(k, v)[0]}" for k, v in value), False
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(str(k), v)[0]}" for k, v in value.items()), False
    if isinstance(value, list | tuple):
        return ", ".join(_shown(name, v)[0] for v in value), False
    if value is None:
        return "", False
    return str(value), False


def _walk(model: BaseModel, section: str) -> Iterator[SettingRow]:
    docs = field_docs(type(model))
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _walk(value, f"{section}.{name}" if section else name)
            continue
        shown, secret = _shown(name, value)
        yield SettingRow(
            section=section or "(top level)",
            key=name,
            value=shown,
            secret=secret,
            doc=(info.description or docs.get(name, "")).strip(),
        )


def effective_settings(settings: Settings) -> list[SettingRow]:
    """Every setting in effect, by section, each secret masked (a ``SecretStr``, a name that
    says password/secret/key/token, a password inside a URL)."""
    return list(_walk(settings, ""))


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of a settings class (and its bases)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins",) or klass.__module__.startswith("pydantic"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, following in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                out[stmt.target.id] = " ".join(following.value.value.split())
    return out


# -- health --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    """True healthy, False failing, None not configured."""
    detail: str
    millis: int


def _timed(fn: Any) -> tuple[bool | None, str, int]:
    t0 = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception as exc:  # noqa: BLE001 — a failing check is a result, not an error
        ok, detail = False, type(exc).__name__
    return ok, detail, int((time.perf_counter() - t0) * 1000)


def _database(services: Services) -> tuple[bool | None, str]:
    with services.reader() as session:
        session.execute(text("SELECT 1"))
        pending = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.PENDING))
    return True, f"reachable; {pending} job(s) waiting"


def _directory(services: Services) -> tuple[bool | None, str]:
    services.directory.ping()
    return True, f"reachable ({services.settings.directory.kind})"


def _mail(services: Services) -> tuple[bool | None, str]:
    m = services.settings.mail
    if not m.host:
        return None, "not configured (mail.host is empty)"
    timeout = services.settings.operations.health_timeout
    with smtplib.SMTP(m.host, m.port, timeout=timeout) as smtp:
        code, _ = smtp.noop()
    return code == 250, f"{m.host}:{m.port} answered {code}"


def _workers(services: Services) -> tuple[bool | None, str]:
    alive_seconds = services.settings.operations.worker_alive_seconds
    with services.reader() as session:
        rows = workers(session, alive_seconds)
    alive = [w for w in rows if w.alive]
    if not alive:
        return False, f"no worker seen in the last {alive_seconds} s"
    return True, f"{len(alive)} alive"


def health(services: Services) -> list[Check]:
    """Check each dependency now (each with its own short timeout); never raises."""
    checks = {
        "database": _database,
        "directory": _directory,
        "mail": _mail,
        "workers": _workers,
    }
    out = []
    for name, fn in checks.items():
        ok, detail, millis = _timed(lambda fn=fn: fn(services))
        out.append(Check(name=name, ok=ok, detail=detail, millis=millis))
    return out


__all__ = [
    "JOB_VIEWS",
    "MASK",
    "Check",
    "JobRow",
    "SettingRow",
    "WorkerRow",
    "beat",
    "discard_job",
    "effective_settings",
    "field_docs",
    "forget_worker",
    "health",
    "job_counts",
    "list_jobs",
    "mask_url",
    "retry_job",
    "workers",
]
