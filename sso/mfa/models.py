"""Tables of the second factors. Secrets are encrypted, recovery codes hashed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base


class TotpCredential(Base):
    """An authenticator app (RFC 6238). At most one confirmed per user; an unconfirmed row is
    an enrollment in progress. The shared secret is AES-GCM encrypted (``services.cipher``),
    bound to the row id. ``last_step`` is the last accepted time step: a code of that step or
    an earlier one is never accepted again (no replay), set by one conditional UPDATE."""

    __tablename__ = "mfa_totp_credentials"
    __table_args__ = (Index("ix_mfa_totp_credentials_sub", "sub"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sub: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(128))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    digits: Mapped[int]
    period: Mapped[int]
    algorithm: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    confirmed_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
    last_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(Base):
    """One single-use recovery code, stored as the SHA-256 of the code (it is random, 80 bits)."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("sub", "code_hash", name="uq_mfa_recovery_codes_sub_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(64), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    used_at: Mapped[dt.datetime | None]
