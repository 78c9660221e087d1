"""The administrators' JSON API for second factors (``/api/v1/mfa/…``), described in
:mod:`sso.mfa.openapi`. Callers present a Bearer access token of this provider carrying the
``mfa:admin`` scope; every change is audited by the service with the caller as actor."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iam.web import db, services
from sso.mfa import service as mfa
from sso.mfa.openapi import ADMIN_SCOPE

bp = Blueprint("api", __name__)


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)
    end_sessions: bool = False


def _api_actor() -> tuple[str | None, Any]:
    """The caller of the admin API (a Bearer access token of ours with ``mfa:admin``)."""
    from sso.views.endpoints import _bearer_claims, _bearer_error

    claims = _bearer_claims()
    if claims is None:
        return None, _bearer_error("The access token is invalid, expired or revoked.")
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        resp = jsonify(
            error="insufficient_scope", error_description=f"The token lacks the {ADMIN_SCOPE} scope."
        )
        resp.status_code = 403
        resp.headers["WWW-Authenticate"] = f'Bearer error="insufficient_scope", scope="{ADMIN_SCOPE}"'
        return None, resp
    sub, client_id = str(claims.get("sub")), str(claims.get("client_id"))
    return (f"client:{client_id}" if sub == client_id else sub), None


def _api_user(user: str) -> tuple[str | None, Any]:
    sub = mfa.resolve_user(db(), services().directory, user)
    if sub is None:
        return None, (jsonify(error="not_found", error_description="There is no such user."), 404)
    return sub, None


@bp.get("/api/v1/mfa/users/<user>")
def api_status(user: str) -> Any:
    actor, refusal = _api_actor()
    if refusal is not None:
        return refusal
    sub, missing = _api_user(user)
    if missing is not None:
        return missing
    assert sub is not None
    return jsonify(mfa.status(db(), sub))


@bp.post("/api/v1/mfa/users/<user>/reset")
def api_reset(user: str) -> Any:
    actor, refusal = _api_actor()
    if refusal is not None:
        return refusal
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
    assert actor is not None
    result = mfa.admin_reset(
        db(),
        sub=sub,
        actor=actor,
        reason=body.reason,
        end_sessions=body.end_sessions,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )
    return jsonify(result)
