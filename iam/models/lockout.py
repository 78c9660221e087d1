"""Failed sign-in counters for lockout at the provider (R-PW-6)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from iam.db import Base


class LockoutCounter(Base):
    """One counter per account (``acct:id:<directory id>``), per name that is no account
    (``acct:name:<name folded to lower case>``) or per network address (``addr:<ip>``).

    Every name the directory accepts for one account counts against the account's counter;
    a name that is no account locks the same way, so locking reveals nothing about which
    accounts exist (see :mod:`iam.lockout`)."""

    __tablename__ = "lockout_counters"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    in_flight: Mapped[int] = mapped_column(default=0, server_default="0")
    """Attempts that have been let through to the directory and not finished yet: they count
    against the threshold, so parallel attempts never reach the directory more often than the
    threshold allows (AD never locks before we do)."""
    window_start: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]
