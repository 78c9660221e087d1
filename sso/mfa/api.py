"""The administrators' JSON API for second factors (``/api/v1/mfa/…``), described in
:mod:`sso.mfa.openapi`. Callers present a Bearer access token of this provider carrying the
``mfa:admin`` scope (checked by :func:`iam.web.require_scope`, which also exempts these
routes from the cookie CSRF check); every change is audited with the caller as actor."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
