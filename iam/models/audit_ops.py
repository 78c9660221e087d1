"""What the audit log's operations keep: each SIEM destination's cursor, the weekly archives
written, the monthly reviews signed off (issue 15; R-AUD-3, R-AUD-5)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam.db import Base


class SiemCursor(Base):
    """How far one SIEM destination has received the sealed chain (``last_seq``), and the
    lease of the worker sending to it now: a worker takes the lease with one conditional
    UPDATE, so two workers never send the same batch at once."""

    __tablename__ = "siem_cursors"

    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Sequence number of the last event the collector accepted."""
    head_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Chain head (anchor) last sent along."""
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None]
    delivered: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]


class AuditArchive(Base):
    """One weekly archive file (ISO week ``2026-W49``): which chain segment it holds."""

    __tablename__ = "audit_archives"

    week: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    """``written``, or ``missed`` (an alert was raised; the archive is written when it can be)."""
    file_name: Mapped[str | None] = mapped_column(String(128))
    sha256: Mapped[str | None] = mapped_column(String(64))
    first_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str | None] = mapped_column(String(64))
    written_at: Mapped[dt.datetime | None]
    alerted_at: Mapped[dt.datetime | None]


class AuditReview(Base):
    """The monthly review of significant and critical events (``2026-11``), once signed off."""

    __tablename__ = "audit_reviews"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    signed_by: Mapped[str | None] = mapped_column(String(256))
    signed_at: Mapped[dt.datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    events: Mapped[int] = mapped_column(Integer, default=0)
    """How many significant/critical events the month held when it was signed."""
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    """The sealed chain position the reviewer saw (events after it were not yet in the review)."""
    reminded_at: Mapped[dt.datetime | None]
    reminders: Mapped[int] = mapped_column(Integer, default=0)
