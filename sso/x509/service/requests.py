"""Account requests made with a card (R-MFA-2): nothing is created until an administrator
approves; the worker then creates the account and binds the card (``sso.x509.jobs``)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.errors import Conflict, NotFound, ValidationFailed
from sso.x509.certs import CardFacts, to_pem
from sso.x509.models import AccountRequest, RequestStatus
from sso.x509.service.validation import Validated, cert_details


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
        details={**cert_details(facts), "request": row.id, "username": row.proposed["username"]},
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
