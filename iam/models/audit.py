"""The audit log: append-only, HMAC-protected rows sealed into a hash chain (R-AUD-1..3)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam.db import Base


class Severity(enum.StrEnum):
    """PABIANICE §65: critical / significant / normal."""

    NORMAL = "normal"
    SIGNIFICANT = "significant"
    CRITICAL = "critical"


class AuditEvent(Base):
    """One event. ``row_hash`` protects the content from the moment it is written; ``seq``,
    ``prev_hash`` and ``hash`` are set when the row is sealed into the chain (within about a
    second, by the worker), after which deleting or inserting rows is detected too."""

    __tablename__ = "audit_events"
    # The console's audit search pages newest first by (at, id) (keyset, never OFFSET) with one
    # equality filter: each filterable column leads an index that ends in (at, id).
    __table_args__ = (
        Index("ix_audit_events_at_id", "at", "id"),
        Index("ix_audit_events_event_at", "event", "at", "id"),
        Index("ix_audit_events_actor_at", "actor", "at", "id"),
        Index("ix_audit_events_subject_at", "subject", "at", "id"),
        Index("ix_audit_events_client_at", "client_id", "at", "id"),
        Index("ix_audit_events_ip_at", "ip", "at", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    at: Mapped[dt.datetime] = mapped_column()
    event: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(256))
    subject: Mapped[str | None] = mapped_column(String(256))
    client_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    nonce: Mapped[str] = mapped_column(String(64))
    """Random per row, so a copied row never has a valid, unique ``row_hash``."""
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sealed sequence number and hash. Serialises sealers; shows tail deletion."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64))
    """HMAC over seq and hash: the head cannot be rewound without the key."""


class AuditVerification(Base):
    """One verification of the whole chain (``iam.audit.verify``): by the worker every
    ``admin.audit_verify_interval`` seconds, or asked for in the console. The console shows the
    latest; a failed one is also a critical audit event."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime]
    ok: Mapped[bool]
    checked: Mapped[int] = mapped_column(BigInteger)
    unsealed: Mapped[int] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(256))
