"""Tables of HR-driven provisioning: events (durable before acknowledged), HR person records,
usernames reserved forever, recorded group removals, access queued for review, one-time
activation of initial passwords and the SCIM resources HR systems push."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class EventKind(enum.StrEnum):
    JOINER = "joiner"
    MOVER = "mover"
    LEAVER = "leaver"
    REHIRE = "rehire"


class EventStatus(enum.StrEnum):
    PENDING = "pending"
    """Stored, waiting for its effective time or for the worker."""
    APPLIED = "applied"
    SUPERSEDED = "superseded"
    """Older than what was already applied to the person (out of order): recorded, not applied."""
    DEAD = "dead"
    """Kept failing: on the dead-letter list until an operator replays or discards it."""
    DISCARDED = "discarded"
    """Taken off the dead-letter list by an operator, with a reason: never applied."""


class Engagement(enum.StrEnum):
    """Kind of engagement (CACAK Član 19, PABIANICE §1)."""

    OFFICIAL = "official"
    CIVIL_SERVANT = "civil_servant"
    STAFF = "staff"
    CONTRACTOR = "contractor"
    THIRD_PARTY = "third_party"


class PersonStatus(enum.StrEnum):
    PENDING_START = "pending_start"
    ACTIVE = "active"
    LEFT = "left"


class HrEvent(Base):
    """One joiner / mover / leaver / rehire, from the API, SCIM or a batch file."""

    __tablename__ = "hr_events"
    __table_args__ = (Index("ix_hr_events_person_effective", "employee_number", "effective_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    employee_number: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    """``api``, ``scim`` or ``batch``."""
    actor: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    payload_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True, default=EventStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    effective_at: Mapped[dt.datetime]
    accepted_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    applied_at: Mapped[dt.datetime | None]
    latency_ms: Mapped[float | None] = mapped_column(Float)
    """Acceptance → applied; for a leaver: → disabled in the directory and every session ended."""
    result: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    replays: Mapped[int] = mapped_column(Integer, default=0)


class HrPerson(Base):
    """The HR record of a person, as the last applied event left it (R-JML-1)."""

    __tablename__ = "hr_persons"

    employee_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    given_name: Mapped[str] = mapped_column(String(256))
    family_name: Mapped[str] = mapped_column(String(256))
    birth_date: Mapped[dt.date | None]
    email: Mapped[str | None] = mapped_column(String(256))
    department: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(256))
    manager: Mapped[str | None] = mapped_column(String(64))
    """Employee number of the manager."""
    manager_email: Mapped[str | None] = mapped_column(String(256))
    engagement: Mapped[str] = mapped_column(String(32))
    start_date: Mapped[dt.date]
    end_date: Mapped[dt.date | None]
    personal_data: Mapped[str] = mapped_column(String(32), default="none")
    """Whether and how far the person processes personal data (PABIANICE §1): none, limited, full."""
    personal_data_scope: Mapped[str | None] = mapped_column(Text)
    decision_number: Mapped[str | None] = mapped_column(String(128))
    """Number of the decision that granted the authorisation (register, PABIANICE §15)."""
    remarks: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PersonStatus.PENDING_START)
    username: Mapped[str | None] = mapped_column(String(64), unique=True)
    sub: Mapped[str | None] = mapped_column(String(64), index=True)
    """The directory account (AD objectGUID) of the person."""
    linked_accounts: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Further accounts of the person (e.g. a separate admin account) ended with the leaver."""
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Birthright groups the position gives, as last computed."""
    last_effective_at: Mapped[dt.datetime | None]
    granted_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    purge_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Authorisation(Base):
    """One row of the register of authorised persons (PABIANICE §15): an authorisation to process
    personal data given by a joiner, a rehire or a mover to a new post, with its own date granted
    and decision number; ended by the next post or by leaving."""

    __tablename__ = "hr_authorisations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    employee_number: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str | None] = mapped_column(String(36))
    """The HR event that granted it (None: carried over from before the register kept rows)."""
    unit: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(Text)
    decision_number: Mapped[str | None] = mapped_column(String(128))
    granted_on: Mapped[dt.date]
    ended_on: Mapped[dt.date | None]
    remarks: Mapped[str | None] = mapped_column(Text)


class ReservedUsername(Base):
    """A username once given is never given to another person (R-JML-3, PABIANICE §17)."""

    __tablename__ = "hr_reserved_usernames"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    """Case-folded."""
    employee_number: Mapped[str] = mapped_column(String(64), index=True)
    reserved_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class GroupRemoval(Base):
    """A group membership removed (or to be removed after the grace period) by a mover or a
    leaver, recorded so a rehire or an undo can see what was there (PABIANICE §31)."""

    __tablename__ = "hr_group_removals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    employee_number: Mapped[str] = mapped_column(String(64), index=True)
    sub: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(36))
    due_at: Mapped[dt.datetime]
    removed_at: Mapped[dt.datetime | None]
    cancelled_at: Mapped[dt.datetime | None]


class ReviewItem(Base):
    """Access the new position does not explain, queued for review (R-JML-4, CACAK Član 14)."""

    __tablename__ = "hr_review_items"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    employee_number: Mapped[str] = mapped_column(String(64), index=True)
    sub: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column(String(256))
    event_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    decided_at: Mapped[dt.datetime | None]
    decision: Mapped[str | None] = mapped_column(String(16))


class Activation(Base):
    """An initial password waiting for delivery: a one-time link to the manager, or a sealed
    envelope to print. The password is encrypted at rest and erased once delivered."""

    __tablename__ = "hr_activations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    employee_number: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[dt.datetime]
    delivered_at: Mapped[dt.datetime | None]


class ScimUser(Base):
    """A SCIM User resource as the HR system pushed it (the source of its HR events)."""

    __tablename__ = "hr_scim_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_name: Mapped[str] = mapped_column(String(256), unique=True)
    """Case-folded (userName is case-insensitive in SCIM)."""
    external_id: Mapped[str | None] = mapped_column(String(256))
    employee_number: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    resource: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


# Access reviews keep their tables in their own room; importing them here registers them with
# the metadata (migrations and tests load ``provisioning.models``).
from provisioning.requests import models as _requests_models  # noqa: E402, F401
from provisioning.reviews import models as _reviews_models  # noqa: E402, F401
