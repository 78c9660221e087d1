"""``/api/v1/pim/…``: the same as the pages, for tools. Bearer access token with the
``pim.api_scope`` scope; the token's ``acr``/``amr`` is the sign-in level. Errors are
``{error, error_description}``; a missing sign-in level answers 401 with
``WWW-Authenticate: Bearer error="insufficient_user_authentication", acr_values="…"`` (RFC 9470).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iam.errors import Conflict, Forbidden, IamError, NotFound, ValidationFailed
from iam.web import db, services
from pim import service
from pim.roles import all_roles, source
from pim.service import Actor, StepUpRequired
from pim.service.queries import ensure_visible_role, role_dict
from pim.views.common import api_actor

api = Blueprint("pim_api", __name__, url_prefix="/api/v1/pim")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequestIn(_In):
    role: str = Field(min_length=1, max_length=64)
    minutes: int | None = Field(default=None, ge=1)
    justification: str = Field(default="", max_length=2000)
    ticket: str | None = Field(default=None, max_length=128)


class BreakGlassIn(_In):
    role: str = Field(min_length=1, max_length=64)
    justification: str = Field(min_length=10, max_length=2000)


class CommentIn(_In):
    comment: str = Field(default="", max_length=2000)


class ReasonIn(_In):
    reason: str = Field(default="", max_length=256)


class NoteIn(_In):
    note: str = Field(min_length=5, max_length=4000)


class EligibilityIn(_In):
    role: str = Field(min_length=1, max_length=64)
    username: str = Field(min_length=1, max_length=256)
    permanent: bool = False


def _body(model: type[_In]) -> Any:
    data = request.get_json(silent=True)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise ValidationFailed(f"Invalid field {where}: {err['msg']}.") from None


def _error(code: str, description: str, status: int) -> Any:
    return jsonify(error=code, error_description=description), status


def endpoint(view: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate (deny by default) and map domain errors to JSON."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.pim_actor = api_actor()
        try:
            return view(*args, **kwargs)
        except StepUpRequired as exc:
            db().rollback()  # the refusal's audit row is kept (iam.audit.record_refusal)
            resp = jsonify(
                error="insufficient_user_authentication", error_description=str(exc), acr_values=exc.required
            )
            resp.headers["WWW-Authenticate"] = (
                f'Bearer error="insufficient_user_authentication", acr_values="{exc.required}"'
            )
            return resp, 401
        except IamError as exc:
            db().rollback()  # nothing half-written; refusals stay audited (iam.audit.record_refusal)
            if isinstance(exc, Forbidden):
                return _error("forbidden", str(exc), 403)
            if isinstance(exc, NotFound):
                return _error("not_found", str(exc), 404)
            if isinstance(exc, Conflict):
                return _error("conflict", str(exc), 409)
            return _error("invalid_request", str(exc), 400)

    return wrapper


def _actor() -> Actor:
    return g.pim_actor  # type: ignore[no-any-return]


def _req(request_id: str) -> Any:
    return jsonify(service.show(db(), services(), _actor(), request_id))


@api.get("/roles")
@endpoint
def roles() -> Any:
    actor = _actor()
    session = db()
    if service.is_security_officer(services(), actor):
        visible = all_roles(session, services(), include_disabled=True)
    else:
        visible = {r.name: r for r, _ in service.eligible_roles(session, services(), actor)}
    return jsonify(
        roles=[{**role_dict(r), "source": source(session, services(), r.name)} for r in visible.values()]
    )


@api.get("/roles/<name>")
@endpoint
def role(name: str) -> Any:
    r = ensure_visible_role(db(), services(), _actor(), name)
    return jsonify({**role_dict(r), "source": source(db(), services(), name)})


@api.put("/roles/<name>")
@endpoint
def put_role(name: str) -> Any:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object with the role's keys.")
    r = service.put_role(db(), services(), actor=_actor(), name=name, definition=data)
    return jsonify({**role_dict(r), "source": "database"})


@api.delete("/roles/<name>")
@endpoint
def delete_role(name: str) -> Any:
    service.delete_role_override(db(), services(), actor=_actor(), name=name)
    return "", 204


@api.get("/me")
@endpoint
def me() -> Any:
    return jsonify(service.mine(db(), services(), _actor()))


@api.post("/requests")
@endpoint
def create_request() -> Any:
    body = _body(RequestIn)
    req = service.request_elevation(
        db(),
        services(),
        actor=_actor(),
        role=body.role,
        minutes=body.minutes,
        justification=body.justification,
        ticket=body.ticket,
    )
    return jsonify(service.request_dict(req)), 201


@api.post("/break-glass")
@endpoint
def break_glass() -> Any:
    body = _body(BreakGlassIn)
    req = service.break_glass(
        db(), services(), actor=_actor(), role=body.role, justification=body.justification
    )
    return jsonify(service.request_dict(req)), 201


@api.get("/requests/<request_id>")
@endpoint
def get_request(request_id: str) -> Any:
    return _req(request_id)


@api.post("/requests/<request_id>/approve")
@endpoint
def approve(request_id: str) -> Any:
    body = _body(CommentIn)
    service.decide(
        db(), services(), actor=_actor(), request_id=request_id, approve=True, comment=body.comment
    )
    return _req(request_id)


@api.post("/requests/<request_id>/deny")
@endpoint
def deny(request_id: str) -> Any:
    body = _body(CommentIn)
    service.decide(
        db(), services(), actor=_actor(), request_id=request_id, approve=False, comment=body.comment
    )
    return _req(request_id)


@api.post("/requests/<request_id>/cancel")
@endpoint
def cancel(request_id: str) -> Any:
    body = _body(ReasonIn)
    service.cancel(db(), services(), actor=_actor(), request_id=request_id, reason=body.reason)
    return _req(request_id)


@api.post("/requests/<request_id>/revoke")
@endpoint
def revoke(request_id: str) -> Any:
    body = _body(ReasonIn)
    service.revoke(db(), services(), actor=_actor(), request_id=request_id, reason=body.reason)
    return _req(request_id)


@api.post("/requests/<request_id>/password")
@endpoint
def password(request_id: str) -> Any:
    value = service.reveal_secret(db(), services(), actor=_actor(), request_id=request_id)
    resp = jsonify(password=value, note="Shown once. It stops working when the elevation ends.")
    return resp


@api.post("/requests/<request_id>/review")
@endpoint
def review(request_id: str) -> Any:
    body = _body(NoteIn)
    service.review(db(), services(), actor=_actor(), request_id=request_id, note=body.note)
    return _req(request_id)


@api.get("/approvals")
@endpoint
def approvals() -> Any:
    return jsonify(requests=service.inbox(db(), services(), _actor()))


@api.get("/overview")
@endpoint
def overview() -> Any:
    return jsonify(service.overview(db(), services(), _actor()))


@api.post("/eligibility")
@endpoint
def add_eligibility() -> Any:
    body = _body(EligibilityIn)
    row = service.add_eligibility(
        db(), services(), actor=_actor(), role=body.role, username=body.username, permanent=body.permanent
    )
    return jsonify(role=row.role, username=row.username, permanent=row.permanent), 201


@api.delete("/eligibility")
@endpoint
def remove_eligibility() -> Any:
    body = _body(EligibilityIn)
    service.remove_eligibility(db(), services(), actor=_actor(), role=body.role, username=body.username)
    return "", 204


@api.post("/shared/<username>/checkout")
@endpoint
def shared_checkout(username: str) -> Any:
    """A shared administrator account's current password, for a person eligible for one of its
    roles (recorded: their leaving rotates it)."""
    value = service.checkout_shared(db(), services(), actor=_actor(), username=username)
    return jsonify(username=username, password=value)
