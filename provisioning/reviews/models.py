"""Tables of access reviews: campaigns and their items (one right of one account, with the
reviewer's decision and the remediation that carried a revocation into the directory)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class CampaignStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REVOKE = "revoke"
    REDUCE = "reduce"
    """Keep a lesser right instead (PABIANICE §5): the right is removed, ``reduce_to`` given."""


class Outcome(enum.StrEnum):
    """What happens to items nobody decided by the deadline (R-REV-3)."""

    KEEP = "keep"
    REVOKE = "revoke"
    ESCALATE = "escalate"
    RECOMMENDATION = "recommendation"


class Remediation(enum.StrEnum):
    PENDING = "pending"
    """Queued: a durable job carries it into the directory (retried while AD is down)."""
    DONE = "done"
    """Removed, and read back: gone."""
    STILL_PRESENT = "still_present"
    """Removed, but the read-back still finds the right (someone put it back, or replication)."""
    FAILED = "failed"


class Campaign(Base):
    __tablename__ = "review_campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    definition: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(256))
    trigger: Mapped[str] = mapped_column(String(32))
    """``schedule``, ``manual``, or the event that caused it (``mover``, ``rehire``,
    ``break_glass``, ``out_of_band``)."""
    status: Mapped[str] = mapped_column(String(16), default=CampaignStatus.OPEN, index=True)
    stage: Mapped[int] = mapped_column(Integer, default=1)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The definition as it was when the campaign started (what the auditor sees)."""
    started_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    started_by: Mapped[str] = mapped_column(String(256))
    due_at: Mapped[dt.datetime]
    """End of the current stage."""
    escalated_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(256))
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    report_sha256: Mapped[str | None] = mapped_column(String(64))
    reminders_sent: Mapped[list[int]] = mapped_column(JSON, default=list)
    """Day-marks (days before due) whose reminders went out for the current stage."""


class CampaignItem(Base):
    """One right of one account, to be confirmed or taken away."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_campaign_reviewer", "campaign_id", "reviewer", "decision"),
        Index("ix_review_items_campaign_person", "campaign_id", "person"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("review_campaigns.id", ondelete="CASCADE"))
    person: Mapped[str] = mapped_column(String(64))
    """The person's key: their ordinary account's directory id."""
    person_name: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256))
    """The person's ordinary username."""
    employee_number: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(256))
    job_title: Mapped[str | None] = mapped_column(String(256))
    account_id: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(256))
    account_kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(256))
    via: Mapped[list[str]] = mapped_column(JSON, default=list)
    origin: Mapped[str] = mapped_column(String(32))
    origin_ref: Mapped[str | None] = mapped_column(String(256))
    granted_at: Mapped[dt.datetime | None]
    granted_by: Mapped[str | None] = mapped_column(String(256))
    justification: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(256))
    privileged: Mapped[bool] = mapped_column(default=False)
    stage: Mapped[int] = mapped_column(Integer, default=1)
    reviewer: Mapped[str] = mapped_column(String(256))
    """Username of who decides at the current stage."""
    delegated_by: Mapped[str | None] = mapped_column(String(256))
    recommendation: Mapped[str] = mapped_column(String(16))
    recommendation_reason: Mapped[str] = mapped_column(Text, default="")
    helpers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Decision helpers: last sign-in, peers holding the same right, conflicts."""
    decision: Mapped[str | None] = mapped_column(String(16))
    reduce_to: Mapped[str | None] = mapped_column(String(256))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[dt.datetime | None]
    automatic: Mapped[bool] = mapped_column(default=False)
    """Decided by the campaign's default outcome, not by a person."""
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Decisions of earlier stages."""
    final: Mapped[bool] = mapped_column(default=False)
    """The decision is settled (stage closed): remediation may run."""
    remediation: Mapped[str | None] = mapped_column(String(16))
    remediation_error: Mapped[str | None] = mapped_column(Text)
    remediated_at: Mapped[dt.datetime | None]
    verified_at: Mapped[dt.datetime | None]
