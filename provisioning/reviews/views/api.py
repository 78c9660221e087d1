"""``/api/v1/reviews``: access reviews over HTTP with an access token carrying the scope
``reviews`` (and the provider's API audience). A person's token decides on their items; a
security officer's, or a registered client's (automation), runs campaigns."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import select

from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from iam.web import db, require_scope, services
from provisioning.api_common import problem, problem_of, token_person
from provisioning.reviews import definitions as defs
from provisioning.reviews.models import Campaign
from provisioning.reviews.service import campaigns, decisions, report
from provisioning.reviews.service.decisions import Reviewer
from provisioning.reviews.service.reviewers import is_officer
from provisioning.reviews.views.pages import request_filter

api = Blueprint("reviews_api", __name__)
SCOPE = "reviews"


def _api_reviewer() -> Reviewer | None:
    """A person's token: the reviewer is that person. A client's token has no person."""
    return token_person(Reviewer)


def _api_manager() -> str | None:
    """Campaigns are run by a security officer's token, or by a registered client's (automation)."""
    me = _api_reviewer()
    if me is None:
        return str(g.api_actor)
    return me.sub if is_officer(services(), me.username) else None


@api.get("/api/v1/reviews/definitions")
@require_scope(SCOPE)
def api_definitions() -> Any:
    return jsonify({n: d.model_dump(mode="json") for n, d in defs.definitions(services()).items()})


@api.get("/api/v1/reviews/campaigns")
@require_scope(SCOPE)
def api_campaigns() -> Any:
    if _api_manager() is None:
        return problem(403, "forbidden", "Only a security officer sees every campaign.")
    rows = db().scalars(select(Campaign).order_by(Campaign.started_at.desc()).limit(200)).all()
    return jsonify([report.summary(db(), c) for c in rows])


@api.post("/api/v1/reviews/campaigns")
@require_scope(SCOPE)
def api_start() -> Any:
    actor = _api_manager()
    if actor is None:
        return problem(403, "forbidden", "Only a security officer starts a campaign.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("definition"), str):
        return problem(400, "invalid_request", 'The body is {"definition": NAME, "dry_run": false}.')
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        return problem(400, "invalid_request", "dry_run is true or false.")
    try:
        d = defs.get(services(), body["definition"])
        result = campaigns.start(services(), db(), definition=d, actor=actor, dry_run=dry)
    except (NotFound, Conflict, ConfigError) as exc:
        return problem_of(exc)
    return jsonify(result), 200 if dry else 201


@api.get("/api/v1/reviews/campaigns/<campaign_id>")
@require_scope(SCOPE)
def api_campaign(campaign_id: str) -> Any:
    if _api_manager() is None:
        return problem(403, "forbidden", "Only a security officer sees a campaign.")
    try:
        return jsonify(report.summary(db(), campaigns.get(db(), campaign_id)))
    except NotFound as exc:
        return problem_of(exc)


@api.post("/api/v1/reviews/campaigns/<campaign_id>/close")
@require_scope(SCOPE)
def api_close(campaign_id: str) -> Any:
    actor = _api_manager()
    if actor is None:
        return problem(403, "forbidden", "Only a security officer closes a campaign.")
    try:
        return jsonify(campaigns.close(services(), db(), campaign_id=campaign_id, actor=actor))
    except (NotFound, Conflict) as exc:
        return problem_of(exc)


@api.get("/api/v1/reviews/campaigns/<campaign_id>/report")
@require_scope(SCOPE)
def api_report(campaign_id: str) -> Any:
    actor = _api_manager()
    if actor is None:
        return problem(403, "forbidden", "Only a security officer reads the report.")
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "pdf"):
        return problem(400, "invalid_request", "format is csv or pdf.")
    try:
        data, digest = report.report(services(), db(), campaign_id=campaign_id, fmt=fmt, actor=actor)
    except NotFound as exc:
        return problem_of(exc)
    resp = Response(data, mimetype="application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8")
    resp.headers["X-Content-SHA256"] = digest
    return resp


@api.get("/api/v1/reviews/items")
@require_scope(SCOPE)
def api_items() -> Any:
    me = _api_reviewer()
    if me is None:
        return problem(403, "forbidden", "Review items belong to a person: use a person's access token.")
    rows, total = decisions.inbox(services(), db(), me, request_filter(), limit=500)
    return jsonify({"total": total, "items": [decisions.item_dict(r) for r in rows]})


@api.post("/api/v1/reviews/items/decisions")
@require_scope(SCOPE)
def api_decide() -> Any:
    me = _api_reviewer()
    if me is None:
        return problem(403, "forbidden", "Decisions are made by a person: use a person's access token.")
    body = request.get_json(silent=True)
    items = body.get("items") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or not isinstance(items, list)
        or not items
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in items)
        or not isinstance(body.get("decision"), str)
        or not isinstance(body.get("comment", ""), str)
        or not isinstance(body.get("reduce_to", ""), str | None)
    ):
        return problem(
            400,
            "invalid_request",
            'The body is {"items": [ids], "decision": "approve|revoke|reduce", "comment": "…", '
            '"reduce_to": "…"}.',
        )
    try:
        done = decisions.decide(
            services(),
            db(),
            reviewer=me,
            items=items,
            decision=body["decision"],
            comment=body.get("comment", ""),
            reduce_to=body.get("reduce_to"),
        )
    except (ValidationFailed, Conflict, Forbidden, NotFound) as exc:
        return problem_of(exc)
    return jsonify({"decided": done, "decision": body["decision"]})


def openapi_paths() -> dict[str, Any]:
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    out: dict[str, Any] = {"description": "OK", "content": {"application/json": {}}}
    err: dict[str, Any] = {"description": "{error, error_description}", "content": {"application/json": {}}}
    cid = {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}
    errors = {"400": err, "401": err, "403": err, "404": err, "409": err}
    return {
        "/api/v1/reviews/definitions": {
            "get": {
                "summary": "Campaign definitions (policies/reviews)",
                "security": sec,
                "responses": {"200": out, "401": err, "403": err},
            },
        },
        "/api/v1/reviews/campaigns": {
            "get": {
                "summary": "Campaigns with their progress (security officer or client token)",
                "security": sec,
                "responses": {"200": out, "401": err, "403": err},
            },
            "post": {
                "summary": "Start a campaign of a definition (or count it: dry_run)",
                "security": sec,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["definition"],
                                "additionalProperties": False,
                                "properties": {
                                    "definition": {"type": "string"},
                                    "dry_run": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": out, "200": out, **errors},
            },
        },
        "/api/v1/reviews/campaigns/{campaign_id}": {
            "get": {
                "summary": "A campaign's progress by reviewer and department",
                "security": sec,
                "parameters": [cid],
                "responses": {"200": out, **errors},
            },
        },
        "/api/v1/reviews/campaigns/{campaign_id}/close": {
            "post": {
                "summary": "Close now: unanswered items get the default outcome",
                "security": sec,
                "parameters": [cid],
                "responses": {"200": out, **errors},
            },
        },
        "/api/v1/reviews/campaigns/{campaign_id}/report": {
            "get": {
                "summary": "The auditor's report (CSV or PDF); its SHA-256 is audited and sent in "
                "X-Content-SHA256",
                "security": sec,
                "parameters": [
                    cid,
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "pdf"]}},
                ],
                "responses": {
                    "200": {"description": "The report", "content": {"text/csv": {}, "application/pdf": {}}},
                    **errors,
                },
            },
        },
        "/api/v1/reviews/items": {
            "get": {
                "summary": "The calling person's review items (a person's token)",
                "security": sec,
                "parameters": [
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("campaign", "person", "resource", "recommendation", "show")
                ],
                "responses": {"200": out, "401": err, "403": err},
            },
        },
        "/api/v1/reviews/items/decisions": {
            "post": {
                "summary": "Decide on items: approve, revoke or reduce (a person's token; never one's "
                "own access)",
                "security": sec,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["items", "decision"],
                                "additionalProperties": False,
                                "properties": {
                                    "items": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                                    "decision": {"type": "string", "enum": ["approve", "revoke", "reduce"]},
                                    "comment": {"type": "string", "maxLength": 2000},
                                    "reduce_to": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": out, **errors},
            },
        },
    }
