"""``/api/v1/hr/events``: HR systems deliver joiners, movers, leavers and rehires. Authenticated
with an OAuth client-credentials access token carrying the ``hr`` scope."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from iam.errors import Conflict, NotFound, ValidationFailed
from iam.web import bearer_claims, db, services
from provisioning.models import EventStatus
from provisioning.service import engine
from provisioning.service import events as event_service
from provisioning.service.schemas import parse_event

log = logging.getLogger("provisioning")
api = Blueprint("provisioning_api", __name__)
SCOPE = "hr"


def _problem(status: int, error: str, description: str) -> Response:
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    if status == 401:
        resp.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", scope="{SCOPE}"'
    return resp


def caller() -> str | None:
    """The client id of a valid ``hr`` access token, or None."""
    claims = bearer_claims(SCOPE)
    if claims is None:
        return None
    g.hr_client = str(claims.get("client_id"))
    return g.hr_client  # type: ignore[no-any-return]


def _unauthorized() -> Response:
    return _problem(401, "invalid_token", "An access token with the hr scope is required.")


@api.post("/api/v1/hr/events")
def post_event() -> Any:
    client = caller()
    if client is None:
        return _unauthorized()
    data = request.get_json(silent=True)
    if data is None:
        return _problem(
            400, "invalid_request", "The body must be a JSON object (Content-Type: application/json)."
        )
    settings = services().settings.provisioning
    try:
        event = parse_event(data)
        accepted = event_service.accept(
            db(), event, source="api", actor=f"client:{client}", settings=settings, ip=g.client_ip
        )
    except ValidationFailed as exc:
        db().rollback()
        return _problem(400, "invalid_event", str(exc))
    except Conflict as exc:
        db().rollback()
        return _problem(409, "conflict", str(exc))
    row = accepted.event
    db().commit()  # durable before it is acknowledged
    if (
        not accepted.duplicate
        and row.kind in settings.apply_at_once
        and row.status == EventStatus.PENDING
        and row.effective_at <= _now()
    ):
        try:
            engine.apply_due(services(), row.employee_number)
        except Exception as exc:  # noqa: BLE001 — the worker retries; the event is stored
            log.info("HR event %s will be retried by the worker: %s", row.id, exc)
        db().expire_all()
        row = event_service.get_event(db(), row.id)
    body = event_service.event_as_dict(row)
    body["duplicate"] = accepted.duplicate
    resp = jsonify(body)
    resp.status_code = 200 if accepted.duplicate else 202
    resp.headers["Location"] = f"/api/v1/hr/events/{row.id}"
    return resp


def _now() -> Any:
    from iam import clock

    return clock.now()


@api.get("/api/v1/hr/events")
def list_events() -> Any:
    if caller() is None:
        return _unauthorized()
    status = request.args.get("status") or None
    if status and status not in {s.value for s in EventStatus}:
        return _problem(400, "invalid_request", "Unknown status.")
    try:
        limit = min(max(int(request.args.get("limit", "100")), 1), 1000)
        offset = max(int(request.args.get("offset", "0")), 0)
    except ValueError:
        return _problem(400, "invalid_request", "limit and offset must be integers.")
    rows = event_service.list_events(
        db(),
        status=status,
        employee_number=request.args.get("employee_number") or None,
        limit=limit,
        offset=offset,
    )
    return jsonify(events=[event_service.event_as_dict(r) for r in rows])


@api.get("/api/v1/hr/events/<event_id>")
def get_event(event_id: str) -> Any:
    if caller() is None:
        return _unauthorized()
    try:
        row = event_service.get_event(db(), event_id)
    except NotFound as exc:
        return _problem(404, "not_found", str(exc))
    return jsonify(event_service.event_as_dict(row))


@api.post("/api/v1/hr/events/<event_id>/discard")
def discard_event(event_id: str) -> Any:
    """Take a dead event off the dead-letter list, with a reason (audited)."""
    client = caller()
    if client is None:
        return _unauthorized()
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("reason"), str):
        return _problem(400, "invalid_request", 'The body must be {"reason": "why it can never apply"}.')
    try:
        row = event_service.discard(db(), event_id, actor=f"client:{client}", reason=data["reason"])
    except ValidationFailed as exc:
        db().rollback()
        return _problem(400, "invalid_request", str(exc))
    except NotFound as exc:
        db().rollback()
        return _problem(404, "not_found", str(exc))
    except Conflict as exc:
        db().rollback()
        return _problem(409, "conflict", str(exc))
    db().commit()
    return jsonify(event_service.event_as_dict(row))


def openapi_paths() -> dict[str, Any]:
    person = {
        "type": "object",
        "required": ["employee_number"],
        "additionalProperties": False,
        "properties": {
            "employee_number": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
            "given_name": {"type": "string"},
            "family_name": {"type": "string"},
            "birth_date": {"type": "string", "format": "date"},
            "email": {"type": "string", "format": "email"},
            "department": {"type": "string"},
            "title": {"type": "string"},
            "manager": {"type": "string", "description": "employee number of the manager"},
            "manager_email": {"type": "string", "format": "email"},
            "engagement": {
                "type": "string",
                "enum": ["official", "civil_servant", "staff", "contractor", "third_party"],
            },
            "start_date": {"type": "string", "format": "date"},
            "end_date": {"type": "string", "format": "date"},
            "personal_data": {"type": "string", "enum": ["none", "limited", "full"]},
            "personal_data_scope": {"type": "string"},
            "decision_number": {"type": "string"},
            "remarks": {"type": "string"},
        },
    }
    event = {
        "type": "object",
        "required": ["idempotency_key", "kind", "person"],
        "additionalProperties": False,
        "properties": {
            "idempotency_key": {"type": "string", "maxLength": 200},
            "kind": {"type": "string", "enum": ["joiner", "mover", "leaver", "rehire"]},
            "effective_at": {
                "type": "string",
                "description": "date-time with offset, or a date (local midnight); default now "
                "(joiner/rehire: provisioning.joiner_lead_days before the start date, default now: "
                "the account is created disabled and enabled at the start date)",
            },
            "person": person,
        },
    }
    out: dict[str, Any] = {"content": {"application/json": {}}}
    err: dict[str, Any] = {"description": "{error, error_description}", "content": {"application/json": {}}}
    security: list[dict[str, list[str]]] = [{"hrToken": []}]
    return {
        "/api/v1/hr/events": {
            "post": {
                "summary": "Deliver an HR event (joiner, mover, leaver, rehire)",
                "description": "Bearer access token (client credentials) with scope hr. The event is "
                "stored durably before the answer; the same idempotency key with the same content "
                "answers 200 with the stored event, with other content 409. Joiners and rehires need "
                "given_name, family_name, department, title, engagement and start_date.",
                "security": security,
                "requestBody": {"required": True, "content": {"application/json": {"schema": event}}},
                "responses": {
                    "202": {"description": "Accepted (stored; applied at its effective time)", **out},
                    "200": {"description": "Duplicate delivery: the stored event", **out},
                    "400": err,
                    "401": err,
                    "409": err,
                },
            },
            "get": {
                "summary": "HR events, newest first",
                "security": security,
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("status", "employee_number", "limit", "offset")
                ],
                "responses": {"200": out, "401": err},
            },
        },
        "/api/v1/hr/events/{event_id}": {
            "get": {
                "summary": "One HR event with its status, attempts, error and latency",
                "security": security,
                "parameters": [
                    {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": out, "401": err, "404": err},
            }
        },
        "/api/v1/hr/events/{event_id}/discard": {
            "post": {
                "summary": "Discard a dead event that can never apply (with a reason, audited)",
                "description": "Only an event on the dead-letter list (status dead) can be discarded; it "
                "stays in the log with status discarded and the reason, and is never applied.",
                "security": security,
                "parameters": [
                    {"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "additionalProperties": False,
                                "properties": {"reason": {"type": "string", "maxLength": 1000}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "The discarded event", **out},
                    "400": err,
                    "401": err,
                    "404": err,
                    "409": {"description": "The event is not on the dead-letter list", **err},
                },
            }
        },
    }
