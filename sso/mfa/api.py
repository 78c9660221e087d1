"""The administrators' JSON API for second factors (``/api/v1/mfa/…``), described in
:mod:`sso.mfa.openapi`. Callers present a Bearer access token of this provider carrying the
``mfa:admin`` scope (checked by :func:`iam.web.require_scope`, which also exempts these
routes from the cookie CSRF check); every change is audited with the caller as actor."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iam import audit, privileged
from iam.web import db, require_scope, services
from sso.mfa import service as mfa
from sso.mfa.openapi import ADMIN_SCOPE

bp = Blueprint("api", __name__)


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)
    end_sessions: bool = False


def _api_user(user: str) -> tuple[str | None, Any]:
    sub = mfa.resolve_user(db(), services().directory, user)
    if sub is None:
        return None, (jsonify(error="not_found", error_description="There is no such user."), 404)
    return sub, None


def _officer_only(sub: str, reason: str) -> Any:
    """The second factor of a security officer or an approver is reset only by a security
    officer acting in person (a user's token), never by a help-desk tool's ``mfa:admin`` token.
    A refusal is a critical audit event, committed before the answer."""
    svc = services()
    target = svc.directory.get_user(sub)
    why = privileged.needs_security_officer(svc, target) if target is not None else None
    if why is None:
        return None
    claims = g.api_claims
    person = claims.get("sub") if claims.get("sub") != claims.get("client_id") else None
    if person and privileged.is_security_officer(svc, str(person)):
        return None
    session = db()  # nothing else was written in this request: commit the refusal at once
    audit.record(
        session,
        "mfa.reset_refused",
        severity=audit.Severity.CRITICAL,
        outcome="failure",
        actor=str(g.api_actor),
        subject=sub,
        client_id=str(claims.get("client_id") or "") or None,
        ip=g.client_ip,
        user_agent=g.user_agent,
        details={"why": why, "reason": reason},
    )
    session.commit()
    return jsonify(
        error="access_denied",
        error_description=f"The account is {why}: only a security officer may reset its second factor.",
    ), 403


@bp.get("/api/v1/mfa/users/<user>")
@require_scope(ADMIN_SCOPE)
def api_status(user: str) -> Any:
    sub, missing = _api_user(user)
    if missing is not None:
        return missing
    assert sub is not None
    return jsonify(mfa.status(db(), sub))


@bp.post("/api/v1/mfa/users/<user>/reset")
@require_scope(ADMIN_SCOPE)
def api_reset(user: str) -> Any:
    try:
        body = ResetRequest.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        return jsonify(
            error="invalid_request", error_description=f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        ), 400
    sub, missing = _api_user(user)
    if missing is not None:
        return missing
    assert sub is not None
    refused = _officer_only(sub, body.reason)
    if refused is not None:
        return refused
    result = mfa.admin_reset(
        db(),
        sub=sub,
        actor=str(g.api_actor),
        reason=body.reason,
        end_sessions=body.end_sessions,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )
    return jsonify(result)
