"""Table of access requests: one request for one catalogue item for one person, with its
approval chain, the decision and the fulfilment in the directory."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base


class Status(enum.StrEnum):
    PENDING = "pending"
    """Waiting for the approver of the current step."""
    APPROVED = "approved"
    """Decided (grant or grant reduced): the directory job carries it into AD."""
    GRANTED = "granted"
    """In AD and read back."""
    REFUSED = "refused"
    FAILED = "failed"
    """The directory refused the change (e.g. the group is gone); an administrator looks."""
    ENDED = "ended"
    """A time-limited grant reached its end and was removed from AD."""
    WITHDRAWN = "withdrawn"


class Outcome(enum.StrEnum):
    GRANT = "grant"
    GRANT_REDUCED = "grant_reduced"
    """A lesser item of the catalogue is given instead (PABIANICE §5)."""
    REFUSE = "refuse"


OPEN = (Status.PENDING, Status.APPROVED)


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (
        Index("ix_access_requests_status_approver", "status", "approver"),
        Index("ix_access_requests_person", "person_sub", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    """The request number (shown to people, part of the decision number)."""
    item: Mapped[str] = mapped_column(String(64))
    """Catalogue item being decided (a reduced grant replaces it; ``requested_item`` keeps the ask)."""
    requested_item: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column(String(256))
    """The AD group the item gives (of ``item``)."""
    person_sub: Mapped[str] = mapped_column(String(64))
    person_username: Mapped[str] = mapped_column(String(256))
    person_name: Mapped[str] = mapped_column(String(256))
    employee_number: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(256))
    job_title: Mapped[str | None] = mapped_column(String(256))
    requested_by: Mapped[str] = mapped_column(String(256))
    """Username of who asked: the person, or their manager."""
    scope: Mapped[str] = mapped_column(Text, default="")
    """What exactly is needed (PABIANICE §2: the scope requested)."""
    justification: Mapped[str] = mapped_column(Text)
    duration_days: Mapped[int | None] = mapped_column(Integer)
    """Asked (and, once decided, granted) duration; None: until taken away."""
    chain: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The approval steps (``manager``, ``owner``, ``security_officer``) in order."""
    step: Mapped[int] = mapped_column(Integer, default=0)
    approver: Mapped[str | None] = mapped_column(String(256))
    """Username who decides the current step."""
    step_started_at: Mapped[dt.datetime | None]
    step_due_at: Mapped[dt.datetime | None]
    """End of the step's working days (the officer's opinion: 3 working days)."""
    reminded_at: Mapped[dt.datetime | None]
    escalated_at: Mapped[dt.datetime | None]
    escalated_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Every step's decision: step, approver, by, decision, comment, at."""
    sod_conflicts: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Separation-of-duties rules the grant would break, found when it was asked."""
    sod_exception: Mapped[bool] = mapped_column(default=False)
    """Allowed despite a conflict (the item's rule permits a recorded exception)."""
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING)
    outcome: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[dt.datetime | None]
    decision_number: Mapped[str | None] = mapped_column(String(128))
    granted_at: Mapped[dt.datetime | None]
    """Read back from AD."""
    ends_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
