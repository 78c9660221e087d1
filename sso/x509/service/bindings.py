"""Card bindings: a certificate bound to an account, listed and revoked (audited)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import Settings
from iam.directory.base import Directory
from iam.errors import Conflict, NotFound, ValidationFailed
from sso.x509 import mapping
from sso.x509.certs import CertificateRefused
from sso.x509.models import CardBinding, CardHolder
from sso.x509.service.validation import Validated, cert_details


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
        details={**cert_details(facts), "binding": row.id, "match": match},
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
