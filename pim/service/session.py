"""Signing in to the provider *as* the admin account during an elevation (the alternative to
showing its password): the browser's SSO session switches to the admin account, carrying the
person's sign-in level, and it can never outlive the elevation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from iam import audit
from iam.errors import Conflict, Forbidden, NotFound
from iam.i18n import N_
from iam.identities import upsert_identity
from pim.models import AdminAccount, ElevationRequest, State
from pim.service.common import Actor, record
from sso import service as sso_service

if TYPE_CHECKING:
    from iam.services import Services
    from sso.models import SsoSession


def start_admin_session(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    request_id: str,
    acr: str,
    amr: list[str],
) -> tuple[str, SsoSession]:
    """A new SSO session for the requester's admin account; returns (cookie value, row)."""
    req = session.get(ElevationRequest, request_id)
    if req is None or req.requester_sub != actor.sub:
        raise NotFound(N_("There is no such request."))
    if req.state != State.ACTIVE or req.ends_at is None:
        raise Conflict(N_("The elevation is not active (yet)."))
    account = session.get(AdminAccount, req.requester_sub)
    if account is None or not account.account_id:
        raise Conflict(N_("The admin account does not exist yet."))
    user = services.directory.get_user(account.account_id)
    if user is None or not user.enabled:
        raise Forbidden(N_("The admin account is not enabled."))
    upsert_identity(session, user, kind=services.directory.kind)
    cookie, row = sso_service.create_sso_session(
        session,
        services.settings,
        sub=user.id,
        acr=acr,
        amr=list(amr),
        ip=actor.ip,
        user_agent=actor.user_agent,
    )
    row.expires_at = min(row.expires_at, req.ends_at)  # never outlives the elevation
    record(
        session,
        "pim.admin_session_started",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=user.id,
        details={"request": req.id, "admin_account": account.username, "sid": row.sid},
    )
    return cookie, row
