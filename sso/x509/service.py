"""Card sign-in as domain operations: validate a presented certificate, map it to an account,
bind cards, manage uploaded CAs and account requests. Takes a Session; never imports Flask;
each state change writes its audit event in the same transaction."""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.config import Settings
from iam.directory.base import Directory, DirectoryUser
from iam.errors import Conflict, NotFound, ValidationFailed
from sso.x509 import mapping
from sso.x509.certs import (
    CardFacts,
    CertificateRefused,
    hardware_bound,
    is_self_issued,
    load_pem_or_der,
    thumbprint,
    to_pem,
)
from sso.x509.models import AccountRequest, CardBinding, CardHolder, RequestStatus, UploadedCA
from sso.x509.revocation import Fetch, RevocationChecker, http_fetch
from sso.x509.trust import TrustStore, build_path

log = logging.getLogger("sso.x509")


def trust_dir(settings: Settings) -> Path:
    return settings.x509.trust_dir or settings.var_dir / "x509" / "ca"


@dataclass
class Validated:
    """A certificate that passed every check: its path to a trusted CA and what it says."""

    cert: x509.Certificate
    path: list[x509.Certificate]
    facts: CardFacts
    hardware: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def amr(self) -> list[str]:
        """RFC 8176: ``sc`` always; ``hwk`` when the CA states the key is hardware-bound."""
        return ["sc", "hwk"] if self.hardware else ["sc"]


class CardValidator:
    """Per process: the trust anchors and the revocation caches."""

    def __init__(self, settings: Settings, sessions: Any, fetch: Fetch = http_fetch) -> None:
        self.settings = settings
        self.trust = TrustStore(settings.x509, trust_dir(settings), sessions)
        self.revocation = RevocationChecker(settings.x509, fetch)

    def validate(self, certs: list[x509.Certificate], now: dt.datetime | None = None) -> Validated:
        """``certs[0]`` is the client's certificate, the rest intermediates it sent."""
        if not certs:
            raise CertificateRefused("no_certificate", "No certificate was presented.")
        now = now or clock.now()
        leaf, extra = certs[0], certs[1:]
        path = build_path(leaf, extra, self.trust.anchors(), self.settings.x509, now)
        outcome = self.revocation.check(path, now)
        return Validated(
            cert=leaf,
            path=path,
            facts=CardFacts.of(leaf),
            hardware=hardware_bound(leaf, self.settings.x509.hardware_key_policies),
            warnings=outcome.warnings,
        )


def validator_for(services: Any) -> CardValidator:
    """The process's validator (kept in ``services.extensions``)."""
    current = services.extensions.get("sso.x509.validator")
    if current is None:
        current = CardValidator(services.settings, services.reader)
        services.extensions["sso.x509.validator"] = current
    return current  # type: ignore[no-any-return]


def _cert_details(facts: CardFacts) -> dict[str, str]:
    return {
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serial": facts.serial,
        "thumbprint": facts.thumbprint,
    }


# -- sign-in ----------------------------------------------------------------------------------
def sign_in(
    session: Session,
    validator: CardValidator,
    directory: Directory,
    certs: list[x509.Certificate],
    *,
    ip: str | None,
    user_agent: str | None,
) -> tuple[DirectoryUser, Validated]:
    """Validate, map and check the account; every refusal is audited with its reason."""
    facts: CardFacts | None = None
    try:
        if certs:
            facts = CardFacts.of(certs[0])
        checked = validator.validate(certs)
        found = mapping.map_certificate(checked.cert, validator.settings.x509, session, directory)
        _check_account(found.user)
    except CertificateRefused as exc:
        audit.record(
            session,
            "card.login_refused",
            outcome="failure",
            severity=audit.Severity.SIGNIFICANT
            if exc.reason in ("revoked", "ca_revoked", "untrusted", "disabled", "locked")
            else audit.Severity.NORMAL,
            ip=ip,
            user_agent=user_agent,
            details={"reason": exc.reason, **(_cert_details(facts) if facts else {})},
        )
        raise
    now = clock.now()
    if found.binding_id:
        row = session.get(CardBinding, found.binding_id)
        if row is not None:
            row.last_used_at = now
    holder = session.get(CardHolder, found.user.id)
    if holder is None:
        session.add(
            CardHolder(
                sub=found.user.id,
                first_used_at=now,
                last_used_at=now,
                last_thumbprint=checked.facts.thumbprint,
            )
        )
    else:
        holder.last_used_at, holder.last_thumbprint = now, checked.facts.thumbprint
    if checked.warnings:
        audit.record(
            session,
            "card.revocation_unknown_accepted",
            severity=audit.Severity.SIGNIFICANT,
            actor=found.user.id,
            subject=found.user.id,
            ip=ip,
            details={**_cert_details(checked.facts), "fail_open": True},
        )
    audit.record(
        session,
        "card.verified",
        actor=found.user.id,
        subject=found.user.id,
        ip=ip,
        user_agent=user_agent,
        details={**_cert_details(checked.facts), "rule": found.rule, "amr": checked.amr},
    )
    return found.user, checked


def _check_account(user: DirectoryUser) -> None:
    if not user.enabled:
        raise CertificateRefused("disabled", "Your account is disabled. Contact the help desk.")
    if user.locked:
        raise CertificateRefused(
            "locked", "Your account is locked. Try again later or contact the help desk."
        )


# -- bindings ---------------------------------------------------------------------------------
def bind(
    session: Session,
    settings: Settings,
    directory: Directory,
    checked: Validated,
    *,
    sub: str,
    actor: str,
    match: str = "thumbprint",
    ip: str | None = None,
) -> CardBinding:
    """Bind a validated certificate to ``sub``. Refused when the card already belongs to, or
    maps by another rule to, a different account."""
    if match not in ("thumbprint", "issuer_serial"):
        raise ValidationFailed("match must be thumbprint or issuer_serial.")
    facts = checked.facts
    existing = mapping.find_binding(session, facts)
    if existing is not None:
        if existing.sub == sub:
            raise Conflict("This card is already bound to this account.")
        raise Conflict("This card is bound to another account.")
    for rule in settings.x509.mapping:
        if rule.kind == "binding":
            continue
        try:
            other = mapping.apply_rule(rule, checked.cert, facts, session, directory)
        except CertificateRefused:
            raise Conflict("This card matches other accounts; it cannot be bound.") from None
        if other is not None and other.user.id != sub:
            raise Conflict("This card belongs to another account.")
    # a revoked binding of the same certificate is replaced (thumbprint is unique)
    old = session.scalar(select(CardBinding).where(CardBinding.thumbprint == facts.thumbprint))
    if old is not None:
        session.delete(old)
        session.flush()
    row = CardBinding(
        sub=sub,
        thumbprint=facts.thumbprint,
        issuer=facts.issuer,
        serial=facts.serial,
        subject=facts.subject,
        not_after=checked.cert.not_valid_after_utc,
        match=match,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "card.bound",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=sub,
        ip=ip,
        details={**_cert_details(facts), "binding": row.id, "match": match},
    )
    return row


def has_card(session: Session, sub: str) -> bool:
    """Has this account a card: an active binding, or a card sign-in before (any rule)?"""
    if session.get(CardHolder, sub) is not None:
        return True
    return (
        session.scalar(
            select(CardBinding.id).where(CardBinding.sub == sub, CardBinding.revoked_at.is_(None)).limit(1)
        )
        is not None
    )


def list_bindings(
    session: Session, *, sub: str | None = None, include_revoked: bool = False
) -> list[CardBinding]:
    stmt = select(CardBinding).order_by(CardBinding.created_at)
    if sub is not None:
        stmt = stmt.where(CardBinding.sub == sub)
    if not include_revoked:
        stmt = stmt.where(CardBinding.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_binding(
    session: Session,
    *,
    binding_id: str,
    actor: str,
    reason: str,
    ip: str | None = None,
    owner: str | None = None,
) -> CardBinding:
    """End a binding (``owner`` set: only that account's own binding)."""
    row = session.get(CardBinding, binding_id)
    if row is None or row.revoked_at is not None or (owner is not None and row.sub != owner):
        raise NotFound("There is no such active card binding.")
    row.revoked_at = clock.now()
    row.revoked_by = actor
    row.revoke_reason = reason[:512]
    audit.record(
        session,
        "card.binding_revoked",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=row.sub,
        ip=ip,
        details={"binding": row.id, "thumbprint": row.thumbprint, "reason": reason[:200]},
    )
    return row


def binding_dict(row: CardBinding) -> dict[str, Any]:
    return {
        "id": row.id,
        "sub": row.sub,
        "subject": row.subject,
        "issuer": row.issuer,
        "serial": row.serial,
        "thumbprint": row.thumbprint,
        "match": row.match,
        "not_after": row.not_after.isoformat(),
        "created_at": row.created_at.isoformat(),
        "created_by": row.created_by,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


# -- uploaded CAs -----------------------------------------------------------------------------
def add_ca(session: Session, data: bytes, *, actor: str, ip: str | None = None) -> list[UploadedCA]:
    """Trust the CA certificate(s) in ``data`` (PEM or DER). Critical: it decides who can sign in."""
    try:
        certs = load_pem_or_der(data)
    except CertificateRefused:
        raise ValidationFailed("The file is not a certificate (PEM or DER).") from None
    added: list[UploadedCA] = []
    for cert in certs:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise ValidationFailed(f"{cert.subject.rfc4514_string()} is not a CA certificate.")
        tp = thumbprint(cert)
        if session.get(UploadedCA, tp) is not None:
            continue
        row = UploadedCA(
            sha256=tp,
            subject=cert.subject.rfc4514_string(),
            pem=to_pem(cert),
            not_after=cert.not_valid_after_utc,
            added_by=actor,
        )
        session.add(row)
        added.append(row)
        audit.record(
            session,
            "card.ca_added",
            severity=audit.Severity.CRITICAL,
            actor=actor,
            ip=ip,
            details={"subject": row.subject, "sha256": tp, "self_signed": is_self_issued(cert)},
        )
    session.flush()
    return added


def remove_ca(session: Session, sha256: str, *, actor: str, ip: str | None = None) -> None:
    row = session.get(UploadedCA, sha256.lower())
    if row is None:
        raise NotFound("There is no uploaded CA with this SHA-256 fingerprint.")
    session.delete(row)
    audit.record(
        session,
        "card.ca_removed",
        severity=audit.Severity.CRITICAL,
        actor=actor,
        ip=ip,
        details={"subject": row.subject, "sha256": row.sha256},
    )


# -- account requests (R-MFA-2) ---------------------------------------------------------------
def _ascii(text: str) -> str:
    table = str.maketrans({"đ": "dj", "Đ": "Dj", "ł": "l", "Ł": "L", "ß": "ss"})
    norm = unicodedata.normalize("NFKD", text.translate(table))
    return "".join(c for c in norm if not unicodedata.combining(c))


def proposed_account(facts: CardFacts) -> dict[str, str]:
    """Account data read from the certificate's subject (given name, surname, CN, serialNumber)."""
    given, family = facts.given_name, facts.family_name
    if not (given and family) and facts.common_name and " " in facts.common_name.strip():
        given, _, family = facts.common_name.strip().rpartition(" ")
        given, family = given.split(" ")[0], family
    base = ".".join(p for p in (given, family) if p) or (facts.common_name or "user")
    username = re.sub(r"[^a-z0-9.]", "", _ascii(base).lower())[:20] or "user"
    out = {"username": username}
    for key, value in (
        ("given_name", given),
        ("family_name", family),
        ("display_name", facts.common_name),
        ("email", facts.emails[0] if facts.emails else None),
        ("employee_number", facts.subject_serial),
        ("upn", facts.upns[0] if facts.upns else None),
    ):
        if value:
            out[key] = value
    return out


def request_account(
    session: Session, checked: Validated, *, ip: str | None, user_agent: str | None = None
) -> AccountRequest:
    facts = checked.facts
    existing = session.scalar(select(AccountRequest).where(AccountRequest.thumbprint == facts.thumbprint))
    if existing is not None:
        if existing.status == RequestStatus.PENDING:
            return existing
        raise Conflict("An account request for this card was already decided.")
    row = AccountRequest(
        thumbprint=facts.thumbprint,
        issuer=facts.issuer,
        serial=facts.serial,
        subject=facts.subject,
        cert_pem=to_pem(checked.cert),
        proposed=proposed_account(facts),
        requested_ip=ip,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "card.account_requested",
        severity=audit.Severity.SIGNIFICANT,
        ip=ip,
        user_agent=user_agent,
        details={**_cert_details(facts), "request": row.id, "username": row.proposed["username"]},
    )
    return row


def list_requests(session: Session, *, status: str | None = "pending") -> list[AccountRequest]:
    stmt = select(AccountRequest).order_by(AccountRequest.requested_at)
    if status:
        stmt = stmt.where(AccountRequest.status == status)
    return list(session.scalars(stmt))


def _pending(session: Session, request_id: str) -> AccountRequest:
    row = session.get(AccountRequest, request_id)
    if row is None:
        raise NotFound("There is no such account request.")
    if row.status != RequestStatus.PENDING:
        raise Conflict(f"The request was already {row.status}.")
    return row


def approve_request(
    session: Session,
    *,
    request_id: str,
    actor: str,
    username: str | None = None,
    ip: str | None = None,
) -> AccountRequest:
    """Approve: the account is created in the directory by a durable job, then bound."""
    row = _pending(session, request_id)
    if username is not None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}", username):
            raise ValidationFailed("The username must be 1-20 letters, digits, '.', '_' or '-'.")
        row.proposed = {**row.proposed, "username": username}
    row.status = RequestStatus.APPROVED
    row.decided_at = clock.now()
    row.decided_by = actor
    jobs.enqueue(session, "x509.create_account", {"request_id": row.id})
    audit.record(
        session,
        "card.account_request_approved",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=ip,
        details={"request": row.id, "username": row.proposed["username"], "thumbprint": row.thumbprint},
    )
    return row


def deny_request(
    session: Session, *, request_id: str, actor: str, reason: str = "", ip: str | None = None
) -> AccountRequest:
    row = _pending(session, request_id)
    row.status = RequestStatus.DENIED
    row.decided_at = clock.now()
    row.decided_by = actor
    row.reason = reason[:512]
    audit.record(
        session,
        "card.account_request_denied",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=ip,
        details={"request": row.id, "reason": reason[:200]},
    )
    return row


def request_dict(row: AccountRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "subject": row.subject,
        "issuer": row.issuer,
        "serial": row.serial,
        "thumbprint": row.thumbprint,
        "proposed": row.proposed,
        "requested_at": row.requested_at.isoformat(),
        "requested_ip": row.requested_ip,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decided_by": row.decided_by,
        "reason": row.reason,
        "sub": row.sub,
    }
