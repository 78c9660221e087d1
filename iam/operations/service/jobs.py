"""The job queue as the console shows it: lists (waiting, failed, dead, running, discarded),
retry and discard with a reason (audited with the administrator as actor)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.models.jobs import Job, JobStatus

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
