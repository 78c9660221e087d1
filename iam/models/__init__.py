"""The core's tables. Feature packages define theirs in their own ``models.py``."""

from iam.db import Base
from iam.models.audit import AuditEvent, AuditHead
from iam.models.audit_ops import AuditArchive, AuditReview, SiemCursor
from iam.models.backup import BackupRecord
from iam.models.directory import DirectoryWrite
from iam.models.identity import Identity, LocalGroup, LocalGroupMember, LocalUser
from iam.models.jobs import Job, JobStatus, WorkerHeartbeat
from iam.models.lockout import LockoutCounter
from iam.models.passwords import PasswordHistory, PasswordReminder

__all__ = [
    "AuditArchive",
    "AuditEvent",
    "AuditHead",
    "BackupRecord",
    "AuditReview",
    "Base",
    "DirectoryWrite",
    "Identity",
    "Job",
    "JobStatus",
    "LocalGroup",
    "LocalGroupMember",
    "LocalUser",
    "LockoutCounter",
    "PasswordHistory",
    "PasswordReminder",
    "SiemCursor",
    "WorkerHeartbeat",
]
