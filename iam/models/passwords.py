"""The password history (R-PW-2): argon2id hashes of passwords set through us."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iam.db import Base


class PasswordHistory(Base):
    """One password an account had, as an argon2id hash, and when it was set.

    Kept for directory-backed accounts too (AD keeps its own history out of our reach), and
    pruned as soon as neither the count- nor the time-based history rule needs the row.
    """

    __tablename__ = "password_history"
    __table_args__ = (Index("ix_password_history_sub_set_at", "sub", "set_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    sub: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    set_at: Mapped[dt.datetime]
    by_admin: Mapped[bool] = mapped_column(default=False)


class PasswordReminder(Base):
    """A password-expiry reminder mailed to an account: one per expiry date and reminder day, so
    a reminder is sent once even when the worker runs the check many times a day."""

    __tablename__ = "password_reminders"
    __table_args__ = (UniqueConstraint("sub", "expires_at", "days_before"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    sub: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime]
    days_before: Mapped[int]
    sent_at: Mapped[dt.datetime]
