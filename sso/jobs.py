"""The provider's scheduled work: back-channel logout delivery, housekeeping."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.jobs import RetryLater, handler, periodic
from sso import keys, service
from sso.models import Client
from sso.tokens import Signer
from sso.x509 import jobs as _x509_jobs  # noqa: F401 — registers the card handlers

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("sso.jobs")

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def _signer(services: Services) -> Signer:
    ring = keys.keyring_for(services)
    return Signer(ring, services.settings.issuer, services.settings.tokens.signing_alg)


def logout_token(services: Services, client: Client, sub: str, sid: str | None) -> str:
    now = clock.timestamp()
    claims: dict[str, Any] = {
        "iss": services.settings.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
        "sub": sub,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    if sid:
        claims["sid"] = sid
    return _signer(services).sign(claims, alg=client.id_token_alg, typ="logout+jwt")


@handler("sso.backchannel_logout")
def backchannel_logout(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """POST a logout token to the client's back-channel URI; non-2xx is retried with backoff."""
    client = session.get(Client, str(payload["client_id"]))
    if client is None or not client.backchannel_logout_uri:
        return
    token = logout_token(services, client, str(payload["sub"]), payload.get("sid"))
    try:
        resp = httpx.post(
            client.backchannel_logout_uri,
            data={"logout_token": token},
            timeout=5.0,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise RetryLater(f"back-channel logout to {client.client_id} failed: {type(exc).__name__}") from exc
    if resp.status_code >= 300:
        raise RetryLater(f"back-channel logout to {client.client_id} answered {resp.status_code}")
    audit.record(
        session,
        "logout.backchannel_delivered",
        actor="system",
        subject=str(payload["sub"]),
        client_id=client.client_id,
        details={"sid": payload.get("sid")},
    )


@periodic("sso.directory_sweep", lambda settings: settings.session.directory_sweep_interval)
def directory_sweep(services: Services) -> None:
    with services.transaction() as session:
        ended = service.sweep_inactive_accounts(session, services.directory)
    if ended:
        log.info("signed out %d account(s) no longer active in the directory", len(ended))


@periodic("sso.housekeeping", 3600)
def housekeeping(services: Services) -> None:
    with services.transaction() as session:
        removed = service.purge_expired(session)
        keys.remove_expired(session)
    log.info("housekeeping: %s", removed)


from sso import conformance as _conformance  # noqa: E402, F401 — registers conformance evidence
