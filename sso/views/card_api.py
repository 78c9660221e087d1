"""The administrators' card API (``/api/v1/x509/…``): bindings and account requests. A Bearer
access token of this provider with the ``x509:admin`` scope; errors are
``{error, error_description}``; every change is audited by the service it calls."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iam.errors import Conflict, IamError, NotFound
from iam.web import db, require_scope
from sso.views.card import bp
from sso.x509 import service as cards
from sso.x509.openapi import ADMIN_SCOPE


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str | None = Field(default=None, max_length=20)


class DenyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


def _body(model: type[BaseModel]) -> tuple[Any, Any]:
    data = request.get_json(silent=True)
    if data is None:
        data = {}
    try:
        return model.model_validate(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "body"
        return None, (jsonify(error="invalid_request", error_description=f"{where}: {first['msg']}"), 400)


def _domain_error(exc: IamError) -> Any:
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
    return jsonify(error=exc.__class__.__name__.lower(), error_description=str(exc)), status


@bp.get("/api/v1/x509/bindings")
@require_scope(ADMIN_SCOPE)
def api_bindings() -> Any:
    sub = request.args.get("sub") or None
    rows = cards.list_bindings(db(), sub=sub, include_revoked=request.args.get("include_revoked") == "true")
    return jsonify(bindings=[cards.binding_dict(r) for r in rows])


@bp.post("/api/v1/x509/bindings/<binding_id>/revoke")
@require_scope(ADMIN_SCOPE)
def api_revoke_binding(binding_id: str) -> Any:
    body, bad = _body(RevokeIn)
    if bad is not None:
        return bad
    try:
        row = cards.revoke_binding(
            db(),
            binding_id=binding_id,
            actor=g.api_actor,
            reason=body.reason or "revoked by administrator",
            ip=g.client_ip,
        )
    except IamError as exc:
        return _domain_error(exc)
    return jsonify(cards.binding_dict(row))


@bp.get("/api/v1/x509/requests")
@require_scope(ADMIN_SCOPE)
def api_requests() -> Any:
    status = request.args.get("status", "pending")
    if status not in ("pending", "approved", "denied", "all"):
        return jsonify(
            error="invalid_request", error_description="status: pending, approved, denied or all"
        ), 400
    rows = cards.list_requests(db(), status=None if status == "all" else status)
    return jsonify(requests=[cards.request_dict(r) for r in rows])


@bp.post("/api/v1/x509/requests/<request_id>/approve")
@require_scope(ADMIN_SCOPE)
def api_approve(request_id: str) -> Any:
    body, bad = _body(ApproveIn)
    if bad is not None:
        return bad
    try:
        row = cards.approve_request(
            db(), request_id=request_id, actor=g.api_actor, username=body.username, ip=g.client_ip
        )
    except IamError as exc:
        return _domain_error(exc)
    return jsonify(cards.request_dict(row))


@bp.post("/api/v1/x509/requests/<request_id>/deny")
@require_scope(ADMIN_SCOPE)
def api_deny(request_id: str) -> Any:
    body, bad = _body(DenyIn)
    if bad is not None:
        return bad
    try:
        row = cards.deny_request(
            db(), request_id=request_id, actor=g.api_actor, reason=body.reason, ip=g.client_ip
        )
    except IamError as exc:
        return _domain_error(exc)
    return jsonify(cards.request_dict(row))
