"""Access review pages (reviewer inbox, campaign dashboard, a person's access history) and the
JSON API ``/api/v1/reviews`` (scope ``reviews``). Thin: every rule lives in ``service``."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select

from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from iam.models.identity import Identity
from iam.pages import NavLink, register_nav
from iam.web import db, require_scope, services
from provisioning.reviews import definitions as defs
from provisioning.reviews.models import Campaign, CampaignItem
from provisioning.reviews.service import campaigns, decisions, report
from provisioning.reviews.service.decisions import Filter, Reviewer
from provisioning.reviews.service.reviewers import is_officer
from sso.views.common import current_sso

bp = Blueprint("reviews", __name__)
api = Blueprint("reviews_api", __name__)
SCOPE = "reviews"
PAGE = 100


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button and its CSRF token."""


def _me() -> Reviewer:
    """The signed-in person (sign-in first; deny by default)."""
    sso = current_sso()
    if sso is None:
        abort(redirect(url_for("sso.login", next=request.full_path)))
    identity = db().get(Identity, sso.sub)
    if identity is None:
        abort(403)
    return Reviewer(username=identity.username, sub=sso.sub, ip=g.client_ip, user_agent=g.user_agent)


def _officer() -> Reviewer:
    me = _me()
    if not is_officer(services(), me.username):
        abort(403)
    return me


def _nav_signed_in() -> bool:
    """The inbox is every signed-in person's (it lists only their own items)."""
    return current_sso() is not None


def _nav_officer() -> bool:
    sso = current_sso()
    identity = db().get(Identity, sso.sub) if sso is not None else None
    return identity is not None and is_officer(services(), identity.username)


def register_navigation(app: Flask) -> None:
    """Access reviews in the header: the inbox for everyone signed in, campaigns for officers."""
    register_nav(
        app,
        NavLink("reviews.inbox", _l("Access reviews"), _nav_signed_in, order=70),
        NavLink("reviews.dashboard", _l("Review campaigns"), _nav_officer, order=71),
    )


def _filter() -> Filter:
    args = request.values
    return Filter(
        campaign=args.get("campaign") or None,
        person=args.get("person") or None,
        resource=args.get("resource") or None,
        recommendation=args.get("recommendation")
        if args.get("recommendation") in ("keep", "revoke")
        else None,
        open_only=args.get("show") != "all",
    )


@bp.get("/reviews/")
def inbox() -> Any:
    me = _me()
    try:
        page = max(0, int(request.args.get("page", "0")))
    except ValueError:
        abort(400)
    rows, total = decisions.inbox(services(), db(), me, _filter(), limit=PAGE, offset=page * PAGE)
    groups: dict[str, list[CampaignItem]] = {}
    for row in rows:
        groups.setdefault(f"{row.person_name} ({row.username})", []).append(row)
    return render_template(
        "reviews/inbox.html",
        groups=groups,
        total=total,
        page=page,
        pages=(total + PAGE - 1) // PAGE,
        flt=_filter(),
        form=ConfirmForm(),
        officer=is_officer(services(), me.username),
    )


@bp.post("/reviews/decide")
def decide() -> Any:
    me = _me()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    choice = request.form.get("decision", "")
    comment = request.form.get("comment", "")
    scope = request.form.get("scope", "selected")
    try:
        if scope == "filter":
            done = decisions.decide(
                services(),
                db(),
                reviewer=me,
                flt=_filter(),
                decision=choice,
                comment=comment,
                reduce_to=request.form.get("reduce_to"),
            )
        else:
            ids = [int(v) for v in request.form.getlist("item")]
            done = decisions.decide(
                services(),
                db(),
                reviewer=me,
                items=ids,
                decision=choice,
                comment=comment,
                reduce_to=request.form.get("reduce_to"),
            )
    except ValueError:
        abort(400)
    except (ValidationFailed, Conflict, Forbidden, NotFound) as exc:
        flash(str(exc))
        return redirect(_back())
    flash(f"{len(done)} item(s): {choice}.")
    return redirect(_back())


def _back() -> str:
    """The inbox with the filter the form was posted from."""
    kept: dict[str, Any] = {
        k: v
        for k in ("campaign", "person", "resource", "recommendation", "show")
        if (v := request.form.get(k))
    }
    return url_for("reviews.inbox", **kept)


@bp.get("/reviews/campaigns")
def dashboard() -> Any:
    _officer()
    rows = db().scalars(select(Campaign).order_by(Campaign.started_at.desc()).limit(100)).all()
    summaries = [report.summary(db(), c) for c in rows if c.status == "open"]
    return render_template(
        "reviews/dashboard.html",
        campaigns=rows,
        summaries=summaries,
        definitions=defs.definitions(services()),
        form=ConfirmForm(),
    )


@bp.post("/reviews/campaigns")
def start() -> Any:
    me = _officer()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        d = defs.get(services(), request.form.get("definition", ""))
        result = campaigns.start(services(), db(), definition=d, actor=me.sub or me.username)
    except (NotFound, Conflict, ConfigError) as exc:
        flash(str(exc))
        return redirect(url_for("reviews.dashboard"))
    flash(f"Campaign started: {result['items']} item(s) for {result['persons']} person(s).")
    return redirect(url_for("reviews.campaign", campaign_id=result["id"]))


@bp.get("/reviews/campaigns/<campaign_id>")
def campaign(campaign_id: str) -> Any:
    _officer()
    try:
        c = campaigns.get(db(), campaign_id)
    except NotFound:
        abort(404)
    return render_template("reviews/campaign.html", c=c, s=report.summary(db(), c), form=ConfirmForm())


@bp.post("/reviews/campaigns/<campaign_id>/<action>")
def campaign_action(campaign_id: str, action: str) -> Any:
    me = _officer()
    if not ConfirmForm().validate_on_submit() or action not in ("close", "extend", "remind"):
        abort(400)
    actor = me.sub or me.username
    try:
        if action == "close":
            campaigns.close(services(), db(), campaign_id=campaign_id, actor=actor)
            flash("Closed: unanswered items got the default outcome; revocations are queued.")
        elif action == "extend":
            try:
                days = int(request.form.get("days", "7"))
            except ValueError:
                raise ValidationFailed("Extend by a whole number of days.") from None
            campaigns.extend(db(), campaign_id=campaign_id, days=days, actor=actor)
            flash(f"Deadline moved by {days} day(s).")
        else:
            n = campaigns.remind(services(), db(), campaigns.get(db(), campaign_id), actor=actor)
            flash(f"{n} reminder(s) queued.")
    except NotFound:
        abort(404)
    except (Conflict, ValidationFailed) as exc:
        flash(str(exc))
    return redirect(url_for("reviews.campaign", campaign_id=campaign_id))


@bp.get("/reviews/campaigns/<campaign_id>/report.<fmt>")
def campaign_report(campaign_id: str, fmt: str) -> Any:
    me = _officer()
    if fmt not in ("csv", "pdf"):
        abort(404)
    try:
        data, digest = report.report(
            services(), db(), campaign_id=campaign_id, fmt=fmt, actor=me.sub or me.username
        )
    except NotFound:
        abort(404)
    mime = "application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8"
    resp = Response(data, mimetype=mime)
    resp.headers["Content-Disposition"] = f'attachment; filename="access-review-{campaign_id}.{fmt}"'
    resp.headers["X-Content-SHA256"] = digest
    return resp


@bp.get("/reviews/people/<username>")
def person(username: str) -> Any:
    _officer()
    rows = (
        db()
        .scalars(
            select(CampaignItem)
            .where(CampaignItem.username == username)
            .order_by(CampaignItem.decided_at.desc().nulls_last(), CampaignItem.id.desc())
            .limit(500)
        )
        .all()
    )
    return render_template("reviews/person.html", username=username, rows=rows)


# -- JSON API ----------------------------------------------------------------------------------


def _problem(status: int, error: str, description: str) -> Response:
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    return resp


def _api_reviewer() -> Reviewer | None:
    """A person's token: the reviewer is that person. A client's token has no person."""
    claims: dict[str, Any] = g.api_claims
    sub = claims.get("sub")
    if not sub or sub == claims.get("client_id"):
        return None
    identity = db().get(Identity, str(sub))
    return Reviewer(username=identity.username if identity else str(sub), sub=str(sub), ip=g.client_ip)


def _api_manager() -> str | None:
    """Campaigns are run by a security officer's token, or by a registered client's (automation)."""
    me = _api_reviewer()
    if me is None:
        return str(g.api_actor)
    return me.sub if is_officer(services(), me.username) else None


def _errors(exc: Exception) -> Response:
    if isinstance(exc, NotFound):
        return _problem(404, "not_found", str(exc))
    if isinstance(exc, Forbidden):
        return _problem(403, "forbidden", str(exc))
    if isinstance(exc, Conflict):
        return _problem(409, "conflict", str(exc))
    return _problem(400, "invalid_request", str(exc))


@api.get("/api/v1/reviews/definitions")
@require_scope(SCOPE)
def api_definitions() -> Any:
    return jsonify({n: d.model_dump(mode="json") for n, d in defs.definitions(services()).items()})


@api.get("/api/v1/reviews/campaigns")
@require_scope(SCOPE)
def api_campaigns() -> Any:
    if _api_manager() is None:
        return _problem(403, "forbidden", "Only a security officer sees every campaign.")
    rows = db().scalars(select(Campaign).order_by(Campaign.started_at.desc()).limit(200)).all()
    return jsonify([report.summary(db(), c) for c in rows])


@api.post("/api/v1/reviews/campaigns")
@require_scope(SCOPE)
def api_start() -> Any:
    actor = _api_manager()
    if actor is None:
        return _problem(403, "forbidden", "Only a security officer starts a campaign.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("definition"), str):
        return _problem(400, "invalid_request", 'The body is {"definition": NAME, "dry_run": false}.')
    dry = body.get("dry_run", False)
    if not isinstance(dry, bool):
        return _problem(400, "invalid_request", "dry_run is true or false.")
    try:
        d = defs.get(services(), body["definition"])
        result = campaigns.start(services(), db(), definition=d, actor=actor, dry_run=dry)
    except (NotFound, Conflict, ConfigError) as exc:
        return _errors(exc)
    return jsonify(result), 200 if dry else 201


@api.get("/api/v1/reviews/campaigns/<campaign_id>")
@require_scope(SCOPE)
def api_campaign(campaign_id: str) -> Any:
    if _api_manager() is None:
        return _problem(403, "forbidden", "Only a security officer sees a campaign.")
    try:
        return jsonify(report.summary(db(), campaigns.get(db(), campaign_id)))
    except NotFound as exc:
        return _errors(exc)


@api.post("/api/v1/reviews/campaigns/<campaign_id>/close")
@require_scope(SCOPE)
def api_close(campaign_id: str) -> Any:
    actor = _api_manager()
    if actor is None:
        return _problem(403, "forbidden", "Only a security officer closes a campaign.")
    try:
        return jsonify(campaigns.close(services(), db(), campaign_id=campaign_id, actor=actor))
    except (NotFound, Conflict) as exc:
        return _errors(exc)


@api.get("/api/v1/reviews/campaigns/<campaign_id>/report")
@require_scope(SCOPE)
def api_report(campaign_id: str) -> Any:
    actor = _api_manager()
    if actor is None:
        return _problem(403, "forbidden", "Only a security officer reads the report.")
    fmt = request.args.get("format", "csv")
    if fmt not in ("csv", "pdf"):
        return _problem(400, "invalid_request", "format is csv or pdf.")
    try:
        data, digest = report.report(services(), db(), campaign_id=campaign_id, fmt=fmt, actor=actor)
    except NotFound as exc:
        return _errors(exc)
    resp = Response(data, mimetype="application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8")
    resp.headers["X-Content-SHA256"] = digest
    return resp


@api.get("/api/v1/reviews/items")
@require_scope(SCOPE)
def api_items() -> Any:
    me = _api_reviewer()
    if me is None:
        return _problem(403, "forbidden", "Review items belong to a person: use a person's access token.")
    rows, total = decisions.inbox(services(), db(), me, _filter(), limit=500)
    return jsonify({"total": total, "items": [decisions.item_dict(r) for r in rows]})


@api.post("/api/v1/reviews/items/decisions")
@require_scope(SCOPE)
def api_decide() -> Any:
    me = _api_reviewer()
    if me is None:
        return _problem(403, "forbidden", "Decisions are made by a person: use a person's access token.")
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
        return _problem(
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
        return _errors(exc)
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
