"""Tables of card sign-in: uploaded trust anchors, card bindings, account requests (R-MFA-1/2)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base, new_id


class UploadedCA(Base):
    """A third-party CA an administrator added with ``iam ca add`` (audited); shared by every
    process through the database, merged with the CA folder."""

    __tablename__ = "x509_uploaded_cas"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(1024))
    pem: Mapped[str] = mapped_column(Text)
    not_after: Mapped[dt.datetime]
    added_by: Mapped[str] = mapped_column(String(256))
    added_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class CardBinding(Base):
    """A certificate bound to an account: matched by SHA-256 thumbprint (strong) or, when the
    binding says so, by issuer + serial number (survives nothing but re-encoding)."""

    __tablename__ = "x509_bindings"
    __table_args__ = (
        Index("ix_x509_bindings_issuer_serial", "issuer", "serial"),
        Index("ix_x509_bindings_sub", "sub"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    sub: Mapped[str] = mapped_column(String(64))
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the certificate's DER, lowercase hex."""
    issuer: Mapped[str] = mapped_column(String(1024))
    """RFC 4514 string of the issuer name."""
    serial: Mapped[str] = mapped_column(String(64))
    """Serial number, lowercase hex."""
    subject: Mapped[str] = mapped_column(String(1024))
    not_after: Mapped[dt.datetime]
    match: Mapped[str] = mapped_column(String(16), default="thumbprint")
    """``thumbprint`` (only this exact certificate) or ``issuer_serial``."""
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    created_by: Mapped[str] = mapped_column(String(256))
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(256))
    revoke_reason: Mapped[str | None] = mapped_column(String(512))


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class AccountRequest(Base):
    """A person with a valid card but no account asks for one (R-MFA-2); nothing is created
    until an administrator approves."""

    __tablename__ = "x509_account_requests"
    __table_args__ = (Index("ix_x509_account_requests_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING)
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    issuer: Mapped[str] = mapped_column(String(1024))
    serial: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(1024))
    cert_pem: Mapped[str] = mapped_column(Text)
    proposed: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    """Account data read from the certificate: username, given_name, family_name, email,
    employee_number (subject serialNumber), upn."""
    requested_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    requested_ip: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(String(512))
    sub: Mapped[str | None] = mapped_column(String(64))
    """The account created on approval (filled by the worker's job)."""


class CardHolder(Base):
    """An account that has signed in with a card (by any mapping rule). Such an account "has a
    card": the MFA pages offer the card for step-up and, after a password, ask for it."""

    __tablename__ = "x509_card_holders"

    sub: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_used_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    last_used_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    last_thumbprint: Mapped[str] = mapped_column(String(64))
