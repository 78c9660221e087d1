"""Identities (one per person account we have seen) and the built-in directory's tables."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class Identity(Base):
    """An account known to the provider. ``sub`` is the directory's stable id (AD objectGUID)."""

    __tablename__ = "identities"

    sub: Mapped[str] = mapped_column(String(64), primary_key=True)
    directory: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(256), index=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(256))
    birth_date: Mapped[dt.date | None]
    """From the HR record when provisioning knows it; the password rules refuse it in passwords."""
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now, onupdate=clock.now)
    last_login_at: Mapped[dt.datetime | None]
    language: Mapped[str | None] = mapped_column(String(35))
    """The language the person chose with the language switch (a BCP 47 tag): their pages and
    mails are in it (``iam.i18n``)."""


class LocalUser(Base):
    """A user of the built-in directory (``directory.kind = "local"``)."""

    __tablename__ = "local_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(256), unique=True)
    upn: Mapped[str | None] = mapped_column(String(256), unique=True)
    given_name: Mapped[str | None] = mapped_column(String(256))
    family_name: Mapped[str | None] = mapped_column(String(256))
    display_name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(256))
    employee_number: Mapped[str | None] = mapped_column(String(64), unique=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    ou: Mapped[str | None] = mapped_column(String(512))
    """The organisational unit (DN) the account is placed in, as in AD; None = the top."""
    password_hash: Mapped[str | None] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(default=True)
    locked: Mapped[bool] = mapped_column(default=False)
    must_change_password: Mapped[bool] = mapped_column(default=False)
    password_changed_at: Mapped[dt.datetime | None]
    password_expires_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class LocalGroup(Base):
    __tablename__ = "local_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(256), unique=True)


class LocalGroupMember(Base):
    """Membership of a user or of another group (nesting) in a group."""

    __tablename__ = "local_group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "user_id", "member_group_id"),
        Index("ix_local_group_members_user", "user_id"),
        Index("ix_local_group_members_member_group", "member_group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("local_groups.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("local_users.id", ondelete="CASCADE"))
    member_group_id: Mapped[str | None] = mapped_column(ForeignKey("local_groups.id", ondelete="CASCADE"))
