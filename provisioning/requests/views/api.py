"""``/api/v1/requests``: access requests over HTTP with an access token carrying the scope
``requests`` (and the provider's API audience). A person's token asks (for themself or their
team) and decides the steps waiting for them; a registered client's token (automation) reads
every request. Bodies and answers are pydantic models; the OpenAPI schemas are generated
from them."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from iam.web import db, require_scope, services
from provisioning.api_common import problem, problem_of, token_person
from provisioning.requests import catalogue
from provisioning.requests.models import AccessRequest
from provisioning.requests.service import asking, deciding
from provisioning.requests.service.common import MAX_TEXT, Actor, get, summary

api = Blueprint("requests_api", __name__)
SCOPE = "requests"


class RequestIn(BaseModel):
    """Ask for a catalogue item (for yourself when ``person`` is left out)."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=64)
    person: str | None = Field(default=None, max_length=256)
    """Username of a team member (the caller's HR manager link)."""
    justification: str = Field(min_length=1, max_length=MAX_TEXT)
    scope: str = Field(default="", max_length=MAX_TEXT)
    duration_days: int | None = Field(default=None, ge=1, le=3650)
    accept_exception: bool = False
    """Ask for a recorded exception when the item allows one for a separation-of-duties conflict."""


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["grant", "grant_reduced", "refuse"]
    comment: str = Field(min_length=1, max_length=MAX_TEXT)
    reduce_to: str | None = Field(default=None, max_length=64)


class RequestOut(BaseModel):
    id: int
    item: str
    requested_item: str
    group: str
    person: str
    person_name: str
    employee_number: str | None
    department: str | None
    title: str | None
    requested_by: str
    scope: str
    justification: str
    duration_days: int | None
    chain: list[str]
    step: int
    step_name: str | None
    approver: str | None
    step_due_at: str | None
    escalated_to: list[str]
    sod_conflicts: list[str]
    sod_exception: bool
    status: str
    outcome: str | None
    comment: str | None
    decided_by: str | None
    decided_at: str | None
    decision_number: str | None
    granted_at: str | None
    ends_at: str | None
    ended_at: str | None
    error: str | None
    history: list[dict[str, Any]]
    created_at: str


class ProblemOut(BaseModel):
    error: str
    error_description: str


def _person() -> Actor | None:
    """A person's token acts as that person; a client's token has no person."""
    return token_person(Actor)


def _out(req: AccessRequest) -> dict[str, Any]:
    return RequestOut.model_validate(summary(req)).model_dump(mode="json")


@api.get("/api/v1/requests/catalogue")
@require_scope(SCOPE)
def api_catalogue() -> Any:
    return jsonify({n: i.model_dump(mode="json") for n, i in catalogue.catalogue(services()).items()})


@api.get("/api/v1/requests")
@require_scope(SCOPE)
def api_list() -> Any:
    me = _person()
    status = request.args.get("status")
    if me is None:
        q = select(AccessRequest).order_by(AccessRequest.id.desc()).limit(500)
        if status:
            q = q.where(AccessRequest.status == status)
        return jsonify(requests=[_out(r) for r in db().scalars(q)])
    mine = deciding.history_of(db(), me.sub or "") + [
        r for r in deciding.asked_by(db(), me.username) if r.person_sub != me.sub
    ]
    return jsonify(
        requests=[_out(r) for r in mine if not status or r.status == status],
        waiting_for_me=[_out(r) for r in deciding.waiting_for(services(), db(), me)],
    )


@api.post("/api/v1/requests")
@require_scope(SCOPE)
def api_submit() -> Any:
    me = _person()
    if me is None:
        return problem(
            403, "forbidden", "A request is asked by a person's token (for themself or their team)."
        )
    try:
        body = RequestIn.model_validate(request.get_json(silent=True))
    except ValidationError as exc:
        return problem(400, "invalid_request", str(exc.errors()[0]["msg"]))
    sub = me.sub or ""
    if body.person:
        user = services().directory.find_user(username=body.person)
        if user is None:
            return problem(404, "not_found", f"No person named {body.person!r}.")
        sub = user.id
    try:
        req = asking.submit(
            services(),
            db(),
            actor=me,
            item_name=body.item,
            person_sub=sub,
            justification=body.justification,
            scope=body.scope,
            duration_days=body.duration_days,
            accept_exception=body.accept_exception,
        )
    except (ValidationFailed, Conflict, Forbidden, NotFound, ConfigError) as exc:
        db().rollback()
        return problem_of(exc)
    return jsonify(_out(req)), 201


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 12:
        raise NotFound(f"There is no access request {text!r}.")
    return int(text)


@api.get("/api/v1/requests/<request_id>")
@require_scope(SCOPE)
def api_get(request_id: str) -> Any:
    try:
        req = get(db(), _number(request_id))
    except NotFound as exc:
        return problem_of(exc)
    me = _person()
    if me is not None:
        mine = {req.person_sub} & {me.sub} or me.username.casefold() == req.requested_by.casefold()
        if not mine and req not in deciding.waiting_for(services(), db(), me):
            return problem(403, "forbidden", "Not your request, nor waiting for you.")
    return jsonify(_out(req))


@api.post("/api/v1/requests/<request_id>/decision")
@require_scope(SCOPE)
def api_decide(request_id: str) -> Any:
    me = _person()
    if me is None:
        return problem(403, "forbidden", "A decision is made by a person's token.")
    try:
        body = DecisionIn.model_validate(request.get_json(silent=True))
    except ValidationError as exc:
        return problem(400, "invalid_request", str(exc.errors()[0]["msg"]))
    try:
        req = deciding.decide(
            services(),
            db(),
            request_id=_number(request_id),
            actor=me,
            outcome=body.outcome,
            comment=body.comment,
            reduce_to=body.reduce_to,
        )
    except (ValidationFailed, Conflict, Forbidden, NotFound, ConfigError) as exc:
        db().rollback()
        return problem_of(exc)
    return jsonify(_out(req))


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def openapi_paths() -> dict[str, Any]:
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    err = {
        "description": "{error, error_description}",
        "content": {"application/json": {"schema": _schema(ProblemOut)}},
    }
    one = {"description": "The request", "content": {"application/json": {"schema": _schema(RequestOut)}}}
    many = {
        "description": "Requests (a person's: theirs and those waiting for them)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "requests": {"type": "array", "items": _schema(RequestOut)},
                        "waiting_for_me": {"type": "array", "items": _schema(RequestOut)},
                    },
                }
            }
        },
    }
    rid = {"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    errors = {"400": err, "401": err, "403": err, "404": err, "409": err}
    return {
        "/api/v1/requests/catalogue": {
            "get": {
                "summary": "The catalogue of requestable rights",
                "security": sec,
                "responses": {
                    "200": {"description": "Items by name", "content": {"application/json": {}}},
                    "401": err,
                    "403": err,
                },
            }
        },
        "/api/v1/requests": {
            "get": {
                "summary": "Access requests (person: own and waiting; client: all)",
                "security": sec,
                "parameters": [
                    {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {"200": many, "401": err, "403": err},
            },
            "post": {
                "summary": "Ask for a right (for yourself or a team member)",
                "security": sec,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(RequestIn)}},
                },
                "responses": {"201": one, **errors},
            },
        },
        "/api/v1/requests/{request_id}": {
            "get": {
                "summary": "One access request",
                "security": sec,
                "parameters": [rid],
                "responses": {"200": one, "401": err, "403": err, "404": err},
            },
        },
        "/api/v1/requests/{request_id}/decision": {
            "post": {
                "summary": "Decide the step waiting for you: grant, grant_reduced or refuse, with a comment",
                "security": sec,
                "parameters": [rid],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(DecisionIn)}},
                },
                "responses": {"200": one, **errors},
            }
        },
    }
