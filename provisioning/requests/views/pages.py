"""Access request pages: ask (for oneself or a team member, with separation-of-duties conflicts
shown before sending), my requests, one request with its decision form, and the one inbox of
everything waiting for the signed-in person (every feature's registered inbox source). Thin:
the rules are in ``service``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session

from iam import inbox
from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from iam.models.identity import Identity
from iam.pages import NavLink, register_nav
from iam.services import Services
from iam.web import db, services
from provisioning.requests import catalogue
from provisioning.requests.service import asking, deciding
from provisioning.requests.service.common import Actor, get, summary
from provisioning.reviews.service import decisions as review_decisions
from provisioning.reviews.service.decisions import Filter, Reviewer
from provisioning.reviews.service.reviewers import is_officer
from sso.views.common import current_sso

bp = Blueprint("requests", __name__)


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button and its CSRF token."""


def _me() -> Actor:
    """The signed-in person (sign-in first; deny by default)."""
    sso = current_sso()
    if sso is None:
        abort(redirect(url_for("sso.login", next=request.full_path)))
    identity = db().get(Identity, sso.sub)
    if identity is None:
        abort(403)
    return Actor(username=identity.username, sub=sso.sub, ip=g.client_ip, user_agent=g.user_agent)


def _signed_in() -> bool:
    return current_sso() is not None


def _language() -> str:
    locale = get_locale()
    return str(locale) if locale is not None else "en"


def _review_items(svc: Services, session: Session, me: inbox.Me) -> list[inbox.Waiting]:
    """Access review items waiting for the person (one bundle: the reviews inbox filters them)."""
    _rows, total = review_decisions.inbox(
        svc, session, Reviewer(username=me.username, sub=me.sub), Filter(), limit=1
    )
    if not total:
        return []
    return [
        inbox.Waiting(
            kind=_l("Access review"),
            title=_("%(n)s item(s) to review", n=total),
            href=url_for("reviews.inbox"),
            count=total,
        )
    ]


def _request_steps(svc: Services, session: Session, me: inbox.Me) -> list[inbox.Waiting]:
    rows = deciding.waiting_for(svc, session, Actor(username=me.username, sub=me.sub))
    return [
        inbox.Waiting(
            kind=_l("Access request"),
            title=f"{r.id}: {r.item} — {r.person_name} ({r.person_username})",
            href=url_for("requests.show", request_id=r.id),
            due_at=r.step_due_at,
        )
        for r in rows
    ]


def register_navigation(app: Flask) -> None:
    """Requests and the one inbox in the header; this feature's sources of the inbox."""
    register_nav(
        app,
        NavLink("requests.inbox_page", _l("Waiting for me"), _signed_in, order=65),
        NavLink("requests.mine", _l("Access requests"), _signed_in, order=66),
    )
    inbox.register("access_requests", _request_steps)
    inbox.register("access_reviews", _review_items)


def _errors(exc: Exception) -> None:
    flash(str(exc))


@bp.get("/requests/inbox")
def inbox_page() -> Any:
    me = _me()
    items = inbox.waiting(services(), db(), inbox.Me(sub=me.sub or "", username=me.username))
    return render_template("requests/inbox.html", items=items)


@bp.get("/requests/")
def mine() -> Any:
    me = _me()
    own = deciding.history_of(db(), me.sub or "")
    asked = [r for r in deciding.asked_by(db(), me.username) if r.person_sub != me.sub]
    return render_template("requests/mine.html", own=own, asked=asked, form=ConfirmForm())


def _form_state(me: Actor) -> dict[str, Any]:
    team = asking.team(db(), me)
    person = request.values.get("person") or me.sub or ""
    items = catalogue.catalogue(services())
    chosen = request.values.get("item") or ""
    preview = None
    if chosen and chosen in items:
        try:
            preview = asking.preview(services(), db(), actor=me, item_name=chosen, person_sub=person)
        except (Forbidden, NotFound) as exc:
            flash(str(exc))
    return {
        "team": team,
        "person": person,
        "items": list(items.values()),
        "chosen": chosen,
        "preview": preview,
        "language": _language(),
        "values": request.values,
    }


@bp.get("/requests/new")
def new() -> Any:
    me = _me()
    return render_template("requests/new.html", form=ConfirmForm(), me=me, **_form_state(me))


@bp.post("/requests/new")
def submit() -> Any:
    me = _me()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    days = request.form.get("duration_days", "").strip()
    try:
        duration = int(days) if days else None
    except ValueError:
        duration = -1
    try:
        req = asking.submit(
            services(),
            db(),
            actor=me,
            item_name=request.form.get("item", ""),
            person_sub=request.form.get("person", "") or (me.sub or ""),
            justification=request.form.get("justification", ""),
            scope=request.form.get("scope", ""),
            duration_days=duration,
            accept_exception=request.form.get("accept_exception") == "yes",
        )
    except (ValidationFailed, Conflict, Forbidden, NotFound, ConfigError) as exc:
        db().rollback()
        flash(str(exc))
        return render_template("requests/new.html", form=ConfirmForm(), me=me, **_form_state(me)), 400
    db().commit()
    flash(_("Request %(n)s sent. It now waits for %(who)s.", n=req.id, who=req.approver or "—"))
    return redirect(url_for("requests.show", request_id=req.id))


def _may_see(me: Actor, row: dict[str, Any], may_decide: bool) -> bool:
    names = {me.username.casefold()}
    return (
        may_decide
        or row["person"].casefold() in names
        or row["requested_by"].casefold() in names
        or any(h.get("by", "").casefold() in names for h in row["history"])
        or is_officer(services(), me.username)
    )


@bp.get("/requests/<int:request_id>")
def show(request_id: int) -> Any:
    me = _me()
    try:
        req = get(db(), request_id)
    except NotFound:
        abort(404)
    may_decide = req in deciding.waiting_for(services(), db(), me)
    row = summary(req)
    if not _may_see(me, row, may_decide):
        abort(403)
    item = catalogue.catalogue(services()).get(req.item)
    return render_template(
        "requests/show.html",
        r=row,
        item=item,
        reduced=[catalogue.catalogue(services())[n] for n in (item.reduced if item else [])],
        may_decide=may_decide,
        may_withdraw=req.status == "pending"
        and me.username.casefold() in {req.person_username.casefold(), req.requested_by.casefold()},
        language=_language(),
        form=ConfirmForm(),
    )


@bp.post("/requests/<int:request_id>/decide")
def decide(request_id: int) -> Any:
    me = _me()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        req = deciding.decide(
            services(),
            db(),
            request_id=request_id,
            actor=me,
            outcome=request.form.get("outcome", ""),
            comment=request.form.get("comment", ""),
            reduce_to=request.form.get("reduce_to") or None,
        )
    except (ValidationFailed, Conflict, Forbidden, NotFound, ConfigError) as exc:
        db().rollback()
        flash(str(exc))
        return redirect(url_for("requests.show", request_id=request_id))
    db().commit()
    flash(_("Decision recorded for request %(n)s (%(s)s).", n=req.id, s=req.status))
    return redirect(url_for("requests.inbox_page"))


@bp.post("/requests/<int:request_id>/withdraw")
def withdraw(request_id: int) -> Any:
    me = _me()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        deciding.withdraw(db(), request_id=request_id, actor=me)
    except (Conflict, Forbidden, NotFound) as exc:
        db().rollback()
        flash(str(exc))
        return redirect(url_for("requests.mine"))
    db().commit()
    flash(_("Request %(n)s withdrawn.", n=request_id))
    return redirect(url_for("requests.mine"))
