"""The password history (R-PW-2): argon2id hashes of passwords set through us."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String
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
