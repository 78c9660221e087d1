"""Detection's tables: cursors on the audit log and the directory, rule hits, alerts, the
directory snapshot and the changes seen in it, and the per-agency counters."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base

_ID = BigInteger().with_variant(Integer, "sqlite")


class Cursor(Base):
    """How far one consumer has read: an audit ``seq``, or a directory's highest committed USN.
    Its row lock serialises the consumer across nodes and workers."""

    __tablename__ = "detect_cursors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str | None] = mapped_column(String(512))
    """What the position belongs to (the domain controller's ``dsServiceName``)."""
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class Hit(Base):
    """One audit event that matched a counting rule, by the rule's grouping key; counted over
    the rule's window in the database, so every worker sees the same numbers."""

    __tablename__ = "detect_hits"
    __table_args__ = (Index("ix_detect_hits_rule_key_at", "rule", "key", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[str | None] = mapped_column(String(256))
    """What the rule counts distinct values of (the account, for spraying)."""
    at: Mapped[dt.datetime] = mapped_column(index=True)
    event_id: Mapped[int] = mapped_column(BigInteger)


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class Alert(Base):
    """One incident: raised once when a rule's threshold is crossed; further matching events
    inside the rule's quiet window are counted on it instead of raising another."""

    __tablename__ = "detect_alerts"
    __table_args__ = (Index("ix_detect_alerts_rule_key", "rule", "key", "last_at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default=AlertState.OPEN, index=True)
    first_at: Mapped[dt.datetime]
    last_at: Mapped[dt.datetime]
    events: Mapped[int] = mapped_column(default=1)
    """Matching events counted on this incident."""
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    audit_event_id: Mapped[int | None] = mapped_column(BigInteger)
    """The critical audit event that raised it."""
    comment: Mapped[str | None] = mapped_column(Text)
    handled_by: Mapped[str | None] = mapped_column(String(256))
    handled_at: Mapped[dt.datetime | None]


class DirectoryObject(Base):
    """The last state seen of one user, group or OU (what changes are compared with)."""

    __tablename__ = "detect_ad_objects"

    guid: Mapped[str] = mapped_column(String(36), primary_key=True)
    dn: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(8))
    """``user``, ``group`` or ``ou``."""
    state: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    usn: Mapped[int] = mapped_column(BigInteger, default=0)
    seen_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class DirectoryChange(Base):
    """A change of a user, group or OU that the provider did not make."""

    __tablename__ = "detect_ad_changes"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    """When the poll saw it."""
    changed_at: Mapped[dt.datetime | None]
    """``whenChanged`` of the entry (the directory's clock)."""
    usn: Mapped[int] = mapped_column(BigInteger)
    guid: Mapped[str] = mapped_column(String(36), index=True)
    dn: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(8))
    change: Mapped[str] = mapped_column(String(64), index=True)
    """E.g. ``user.created``, ``user.enabled``, ``group.member_added``."""
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    audit_event_id: Mapped[int | None] = mapped_column(BigInteger)


class StatCounter(Base):
    """Per-agency statistics (R-AUD-4): one count per day, client, agency code and metric."""

    __tablename__ = "detect_stats"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    agency: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(96), primary_key=True)
    """``signin``, ``login``, ``token:<grant>``, ``refused:<reason>``."""
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class StatClient(Base):
    """First and last connection of each client (and agency)."""

    __tablename__ = "detect_stats_clients"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    agency: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_at: Mapped[dt.datetime]
    last_at: Mapped[dt.datetime]


__all__ = [
    "Alert",
    "AlertState",
    "Cursor",
    "DirectoryChange",
    "DirectoryObject",
    "Hit",
    "StatClient",
    "StatCounter",
]
