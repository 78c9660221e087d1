"""Card work done by the worker: creating an approved account in the directory (R-MFA-2)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import audit
from iam.directory.base import NewUser
from iam.directory.errors import DirectoryError, DirectoryUnavailable
from iam.identities import upsert_identity
from iam.jobs import RetryLater, handler
from sso.x509.certs import CardFacts, load_pem_or_der
from sso.x509.models import AccountRequest, CardBinding

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("sso.x509.jobs")


@handler("x509.create_account")
def create_account(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """Create the approved account (enabled; it has no password, the card is its credential)
    and bind the card that asked for it. Idempotent: a retry after a partial run finds the
    user by username."""
    # read first without the write lock: the built-in directory writes through its own
    # transaction, which must not wait for this job's (SQLite has one writer)
    with services.reader() as reader:
        seen = reader.get(AccountRequest, str(payload["request_id"]))
        if seen is None or seen.sub is not None:
            return
        proposed = dict(seen.proposed)
    directory = services.directory
    try:
        user = directory.find_user(username=proposed["username"])
        if user is None:
            user = directory.create_user(
                NewUser(
                    username=proposed["username"],
                    given_name=proposed.get("given_name"),
                    family_name=proposed.get("family_name"),
                    display_name=proposed.get("display_name"),
                    email=proposed.get("email"),
                    employee_number=proposed.get("employee_number"),
                    upn=proposed.get("upn"),
                    enabled=True,
                )
            )
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc
    except DirectoryError as exc:
        log.warning("card account request %s: the directory refused: %s", payload["request_id"], exc)
        raise
    row = session.get(AccountRequest, str(payload["request_id"]))
    if row is None:
        return
    upsert_identity(session, user, kind=directory.kind)
    cert = load_pem_or_der(row.cert_pem.encode())[0]
    facts = CardFacts.of(cert)
    if session.query(CardBinding).filter_by(thumbprint=facts.thumbprint).first() is None:
        session.add(
            CardBinding(
                sub=user.id,
                thumbprint=facts.thumbprint,
                issuer=facts.issuer,
                serial=facts.serial,
                subject=facts.subject,
                not_after=cert.not_valid_after_utc,
                match="thumbprint",
                created_by=row.decided_by or "system",
            )
        )
    row.sub = user.id
    audit.record(
        session,
        "card.account_created",
        severity=audit.Severity.SIGNIFICANT,
        actor=row.decided_by,
        subject=user.id,
        details={"request": row.id, "username": user.username, "thumbprint": facts.thumbprint},
    )
    log.info("account %s created from an approved card request", user.username)
