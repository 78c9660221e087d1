"""Access review pages: the reviewer's inbox (filters, bulk decisions), the campaign dashboard
and page for security officers, a person's access history. Thin: every rule is in ``service``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import select

from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from iam.i18n import message_of
from iam.models.identity import Identity
from iam.pages import NavLink, register_nav
from iam.web import db, services
from provisioning.reviews import definitions as defs
from provisioning.reviews.models import Campaign, CampaignItem
from provisioning.reviews.service import campaigns, decisions, report
from provisioning.reviews.service.decisions import Filter, Reviewer
from provisioning.reviews.service.reviewers import is_officer
from sso.views.common import current_sso

bp = Blueprint("reviews", __name__)
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


def request_filter() -> Filter:
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
    rows, total = decisions.inbox(services(), db(), me, request_filter(), limit=PAGE, offset=page * PAGE)
    groups: dict[str, list[CampaignItem]] = {}
    for row in rows:
        groups.setdefault(f"{row.person_name} ({row.username})", []).append(row)
    return render_template(
        "reviews/inbox.html",
        groups=groups,
        total=total,
        page=page,
        pages=(total + PAGE - 1) // PAGE,
        flt=request_filter(),
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
                flt=request_filter(),
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
        flash(message_of(exc))
        return redirect(_back())
    flash(ngettext("%(num)d item: %(choice)s.", "%(num)d items: %(choice)s.", len(done), choice=choice))
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
        flash(message_of(exc))
        return redirect(url_for("reviews.dashboard"))
    flash(
        _(
            "Campaign started: %(items)s for %(persons)s.",
            items=ngettext("%(num)d item", "%(num)d items", result["items"]),
            persons=ngettext("%(num)d person", "%(num)d persons", result["persons"]),
        )
    )
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
            flash(_("Closed: unanswered items got the default outcome; revocations are queued."))
        elif action == "extend":
            try:
                days = int(request.form.get("days", "7"))
            except ValueError:
                raise ValidationFailed("Extend by a whole number of days.") from None
            campaigns.extend(db(), campaign_id=campaign_id, days=days, actor=actor)
            flash(ngettext("Deadline moved by %(num)d day.", "Deadline moved by %(num)d days.", days))
        else:
            n = campaigns.remind(services(), db(), campaigns.get(db(), campaign_id), actor=actor)
            flash(ngettext("%(num)d reminder queued.", "%(num)d reminders queued.", n))
    except NotFound:
        abort(404)
    except (Conflict, ValidationFailed) as exc:
        flash(message_of(exc))
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
