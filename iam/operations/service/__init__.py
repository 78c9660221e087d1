"""What the console's Operations pages show and do, without Flask, in four rooms: ``jobs``
(lists, retry, discard with a reason), ``workers`` (heartbeats), ``settings_view`` (the settings
in effect, secrets masked) and ``health`` (each dependency). Functions take a Session, flush
but never commit, and write their own audit rows with the administrator as actor."""

from iam.operations.service.health import Check, health
from iam.operations.service.jobs import JOB_VIEWS, JobRow, discard_job, job_counts, list_jobs, retry_job
from iam.operations.service.settings_view import MASK, SettingRow, effective_settings, field_docs, mask_url
from iam.operations.service.workers import HEARTBEAT_KEEP, WorkerRow, beat, forget_worker, workers

__all__ = [
    "HEARTBEAT_KEEP",
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
