"""Who is calling: the actor of a page (SSO session) or of an API call (access token)."""

from __future__ import annotations

from flask import g, request
from werkzeug.exceptions import Forbidden as HTTPForbidden

from iam.models.identity import Identity
from iam.web import db, reader, services
from pim import assurance
from pim.service import Actor
from sso.views.common import current_sso


def _levels() -> list[str]:
    return list(services().settings.pim.levels)


def page_actor() -> Actor | None:
    """The signed-in person, or None (the page then sends them to sign in)."""
    sso = current_sso()
    if sso is None:
        return None
    identity = db().get(Identity, sso.sub)
    if identity is None or identity.disabled:
        return None
    return Actor(
        sub=sso.sub,
        username=identity.username,
        level=assurance.achieved_level(sso.acr, sso.amr, _levels()),
        ip=g.get("client_ip"),
        user_agent=g.get("user_agent"),
    )


def api_actor() -> Actor:
    """The person behind the Bearer access token; 401 without a valid one, 403 without scope.

    The token is checked by the core (:func:`iam.web.api_token_claims`: signature, expiry,
    revocation, client still enabled, audience = the provider's API)."""
    from iam.web import InvalidToken, api_token_claims

    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise InvalidToken("A Bearer access token is required.")
    claims = api_token_claims(header[7:].strip())
    if claims is None:
        raise InvalidToken("The access token is invalid, expired, revoked or not issued for this API.")
    scope = str(claims.get("scope") or "").split()
    if services().settings.pim.api_scope not in scope:
        raise HTTPForbidden("The access token lacks the PIM scope.")
    sub = str(claims.get("sub"))
    identity = reader().get(Identity, sub)
    if identity is None or identity.disabled:
        raise HTTPForbidden("The token's account may not use PIM.")
    return Actor(
        sub=sub,
        username=identity.username,
        level=assurance.achieved_level(claims.get("acr"), claims.get("amr"), _levels()),
        ip=g.get("client_ip"),
        user_agent=g.get("user_agent"),
    )


def dev_recheck(actor: Actor, password: str | None, required: str) -> Actor:
    """Dev mode only: a correct password re-entered stands in for ``mfa`` (see pim.assurance)."""
    from iam import audit
    from iam.directory.errors import DirectoryError

    s = services().settings
    if not password or not (s.dev_mode and s.pim.dev_password_recheck):
        return actor
    if assurance.meets(actor.level, required, s.pim.levels) or not assurance.meets(
        "mfa", required, s.pim.levels
    ):
        return actor
    try:
        services().directory.authenticate(actor.username, password)
    except DirectoryError:
        audit.record(db(), "pim.dev_recheck_failed", actor=actor.sub, outcome="failure", ip=actor.ip)
        return actor
    audit.record(db(), "pim.dev_recheck", actor=actor.sub, ip=actor.ip, details={"level": "mfa"})
    return Actor(actor.sub, actor.username, "mfa", actor.ip, actor.user_agent)
