"""What the provider itself wrote to the directory: the ledger that tells our own changes
apart from changes made behind the provider's back (iam.directory.ad_changes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base


class DirectoryWrite(Base):
    """One attribute the provider's service account wrote on one entry (or ``*`` for an entry
    it created, ``@`` for one it moved or renamed). Written by the process that made the write,
    in a transaction of its own, right after the directory accepted it."""

    __tablename__ = "directory_writes"
    __table_args__ = (Index("ix_directory_writes_dn_at", "dn", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    dn: Mapped[str] = mapped_column(String(512))
    """The entry's DN, lower case."""
    attribute: Mapped[str] = mapped_column(String(64))
    """The attribute's LDAP name, lower case."""
    at: Mapped[dt.datetime] = mapped_column(default=clock.now, index=True)
