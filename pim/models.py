"""Tables of privileged elevation: role overrides, eligibility, admin accounts, requests,
decisions, shared accounts and out-of-band alerts."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class State(enum.StrEnum):
    """States of an elevation request (R-PIM-3, R-PIM-4)."""

    REQUESTED = "requested"
    """Waiting for approval; lapses after its pending lifetime."""
    APPROVED = "approved"
    """The access window has started; the directory write that grants it is queued. No
    password is shown yet."""
    ACTIVE = "active"
    """The admin account is enabled and in the role's groups, as read back from the directory."""
    FAILED = "failed"
    """The directory write failed (a group that does not exist, a refusal, the directory out of
    reach until the job gave up): ``end_reason`` says why; what was written is taken back."""
    DENIED = "denied"
    EXPIRED = "expired"
    """The access window ended."""
    REVOKED = "revoked"
    """Ended early by an approver or a security officer (or because the person left)."""
    CANCELLED = "cancelled"
    """Withdrawn by the requester, before approval or while active (ended early)."""
    LAPSED = "lapsed"
    """Not decided within its pending lifetime."""


OPEN_STATES = (State.REQUESTED,)
LIVE_STATES = (State.APPROVED, State.ACTIVE)
FINAL_STATES = (
    State.DENIED,
    State.EXPIRED,
    State.REVOKED,
    State.CANCELLED,
    State.LAPSED,
    State.FAILED,
)


class RoleOverride(Base):
    """A role defined or changed through the admin API; overrides a file of the same name."""

    __tablename__ = "pim_roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    updated_by: Mapped[str] = mapped_column(String(256))


class Eligibility(Base):
    """A person who may request a role (``permanent``: holds it standing, e.g. a break-glass
    account, and is never reported as out of band)."""

    __tablename__ = "pim_eligibility"
    __table_args__ = (UniqueConstraint("role", "username"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    role: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(256), index=True)
    sub: Mapped[str | None] = mapped_column(String(64), index=True)
    permanent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str] = mapped_column(String(256))


class AdminAccount(Base):
    """A person's separate privileged account in the directory (R-PIM-2)."""

    __tablename__ = "pim_admin_accounts"

    person_sub: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_username: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256), unique=True)
    account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The directory id (AD objectGUID) once created: the ``sub`` of its tokens."""
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class ElevationRequest(Base):
    __tablename__ = "pim_requests"
    __table_args__ = (
        Index("ix_pim_requests_state_ends", "state", "ends_at"),
        Index("ix_pim_requests_requester", "requester_sub"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    role: Mapped[str] = mapped_column(String(64), index=True)
    requester_sub: Mapped[str] = mapped_column(String(64))
    requester_username: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default=State.REQUESTED)
    version: Mapped[int] = mapped_column(default=1)
    """Bumped by every transition; transitions are conditional on it (one winner)."""
    justification: Mapped[str] = mapped_column(Text, default="")
    ticket: Mapped[str | None] = mapped_column(String(128))
    duration: Mapped[int]
    """Seconds of access requested."""
    level: Mapped[str] = mapped_column(String(32))
    """The sign-in level the requester proved."""
    approvals_required: Mapped[int] = mapped_column(default=1)
    break_glass: Mapped[bool] = mapped_column(default=False)
    requested_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    pending_until: Mapped[dt.datetime]
    starts_at: Mapped[dt.datetime | None]
    ends_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(256))
    end_reason: Mapped[str | None] = mapped_column(String(256))
    admin_username: Mapped[str | None] = mapped_column(String(256))
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The groups granted (copied from the role at approval)."""
    applied_at: Mapped[dt.datetime | None]
    """When the directory write that grants access completed."""
    removed_at: Mapped[dt.datetime | None]
    """When the directory write that removes access completed."""
    secret: Mapped[str | None] = mapped_column(Text)
    """The admin account's password for this elevation, encrypted, until shown once."""
    secret_shown_at: Mapped[dt.datetime | None]
    review_due: Mapped[dt.datetime | None]
    """Break-glass: the after-the-fact review is due by then."""
    reviewed_at: Mapped[dt.datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(256))
    review_note: Mapped[str | None] = mapped_column(Text)


class Decision(Base):
    """One approver's decision on one request."""

    __tablename__ = "pim_decisions"
    __table_args__ = (UniqueConstraint("request_id", "approver_sub"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("pim_requests.id", ondelete="CASCADE"), index=True)
    approver_sub: Mapped[str] = mapped_column(String(64))
    approver_username: Mapped[str] = mapped_column(String(256))
    approve: Mapped[bool]
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class SharedAccount(Base):
    """A shared administrator account whose password is rotated when a holder leaves (R-PIM-5)."""

    __tablename__ = "pim_shared_accounts"

    username: Mapped[str] = mapped_column(String(256), primary_key=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    """People eligible for (or who held) these roles could check the account out."""
    secret: Mapped[str | None] = mapped_column(Text)
    """The current password, encrypted (set by the rotation job)."""
    rotated_at: Mapped[dt.datetime | None]
    rotation_reason: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str] = mapped_column(String(256))


class SharedCheckout(Base):
    """Someone was shown a shared account's password (so a later leaver rotates it)."""

    __tablename__ = "pim_shared_checkouts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(
        ForeignKey("pim_shared_accounts.username", ondelete="CASCADE"), index=True
    )
    person_sub: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class Alert(Base):
    """A privileged change found outside PIM (R-PIM-7)."""

    __tablename__ = "pim_alerts"
    __table_args__ = (Index("ix_pim_alerts_open", "kind", "account_id", "group", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``member_outside_pim`` or ``account_enabled_outside_pim``."""
    group: Mapped[str] = mapped_column(String(256), default="")
    account_id: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(256))
    detected_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    removed: Mapped[bool] = mapped_column(default=False)
    """Removal (or disabling) was queued because ``pim.remove_out_of_band`` is on."""
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(256))
