"""Operators' pages: HR event log, dead-letter list with replay, reconciliation report, register
of authorised persons; and the manager's one-time activation link."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from iam import i18n
from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.directory.errors import DirectoryError
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.i18n import message_of
from iam.web import db, services
from provisioning.models import EventStatus, GroupRemoval, ReviewItem
from provisioning.service import delivery, reports
from provisioning.service import events as event_service
from sso.views.common import current_sso

bp = Blueprint("provisioning", __name__)


class ConfirmForm(FlaskForm):  # type: ignore[misc]
    """A button and its CSRF token."""


def _in_operators_group(sub: str) -> bool:
    """Whether ``sub`` is in ``provisioning.operators_group`` (asked once per request)."""
    cache: dict[str, bool] = g.setdefault("hr_operator", {})
    if sub not in cache:
        group = services().settings.provisioning.operators_group
        groups = services().directory.user_groups(sub)  # DirectoryError: the caller decides
        cache[sub] = group.casefold() in {name.casefold() for name in groups}
    return cache[sub]


def _operator_group() -> bool:
    """The pages' check from before the console: a member of ``provisioning.operators_group``
    (the console's HR operators are accepted beside it)."""
    sso = current_sso()
    try:
        return sso is not None and _in_operators_group(sso.sub)
    except DirectoryError:
        abort(503)


HR = Role.HR_OPERATOR


def _nav_operator() -> bool:
    """The navigation's check: the same as :func:`_operator_group` (a directory failure hides it)."""
    sso = current_sso()
    return sso is not None and _in_operators_group(sso.sub)


def register_navigation(app: Flask) -> None:
    """The HR pages in the console's HR section (no longer in the header)."""
    hr = frozenset({HR})
    register_admin_page(
        app,
        AdminPage(
            "provisioning.event_log", _l("HR events"), Section.HR, roles=hr, order=10, also=_nav_operator
        ),
        AdminPage(
            "provisioning.dead_letters",
            _l("Dead letters"),
            Section.HR,
            roles=hr,
            order=20,
            also=_nav_operator,
        ),
        AdminPage(
            "provisioning.reconcile", _l("Reconciliation"), Section.HR, roles=hr, order=30, also=_nav_operator
        ),
        AdminPage(
            "provisioning.register",
            _l("Register of authorised persons"),
            Section.HR,
            roles=hr,
            order=40,
            also=_nav_operator,
        ),
    )


@bp.get("/hr/events")
@require_admin(HR, also=_operator_group)
def event_log() -> Any:
    status = request.args.get("status") or None
    if status and status not in {s.value for s in EventStatus}:
        abort(400)
    rows = event_service.list_events(
        db(), status=status, employee_number=request.args.get("employee") or None
    )
    return render_template(
        "provisioning/events.html",
        events=rows,
        counts=event_service.counts(db()),
        status=status,
        form=ConfirmForm(),
    )


@bp.get("/hr/events/<event_id>")
@require_admin(HR, also=_operator_group)
def event_detail(event_id: str) -> Any:
    try:
        row = event_service.get_event(db(), event_id)
    except NotFound:
        abort(404)
    removals = db().scalars(select(GroupRemoval).where(GroupRemoval.event_id == row.id)).all()
    review = db().scalars(select(ReviewItem).where(ReviewItem.event_id == row.id)).all()
    return render_template(
        "provisioning/event.html", event=row, removals=removals, review=review, form=ConfirmForm()
    )


@bp.get("/hr/dead")
@require_admin(HR, also=_operator_group)
def dead_letters() -> Any:
    rows = event_service.list_events(db(), status=EventStatus.DEAD)
    return render_template(
        "provisioning/dead.html", events=rows, form=ConfirmForm(), discard_form=DiscardForm()
    )


@bp.post("/hr/events/<event_id>/replay")
@require_admin(HR, also=_operator_group)
def replay(event_id: str) -> Any:
    actor = admin_actor()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        event_service.replay(db(), event_id, actor=actor, settings=services().settings.provisioning)
    except NotFound:
        abort(404)
    except Conflict as exc:
        flash(message_of(exc))
        return redirect(url_for("provisioning.dead_letters"))
    flash(_("The event was put back in the queue."))
    return redirect(url_for("provisioning.dead_letters"))


class DiscardForm(FlaskForm):  # type: ignore[misc]
    reason = StringField("Reason", validators=[DataRequired(), Length(max=event_service.REASON_MAX)])


@bp.post("/hr/events/<event_id>/discard")
@require_admin(HR, also=_operator_group)
def discard(event_id: str) -> Any:
    actor = admin_actor()
    form = DiscardForm()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400)
        flash(_("Give the reason for discarding the event."))
        return redirect(url_for("provisioning.dead_letters")), 303
    try:
        event_service.discard(db(), event_id, actor=actor, reason=str(form.reason.data))
    except NotFound:
        abort(404)
    except (Conflict, ValidationFailed) as exc:
        flash(message_of(exc))
        return redirect(url_for("provisioning.dead_letters")), 303
    flash(_("The event was discarded; it will not be applied."))
    return redirect(url_for("provisioning.dead_letters")), 303


@bp.get("/hr/reconcile")
@require_admin(HR, also=_operator_group)
def reconcile() -> Any:
    try:
        findings = reports.reconcile(services())
    except DirectoryError:
        abort(503)
    if request.args.get("format") == "csv":
        return Response(
            reports.findings_csv(findings),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=reconciliation.csv"},
        )
    return render_template("provisioning/reconcile.html", findings=findings)


@bp.get("/hr/register")
@require_admin(HR, also=_operator_group)
def register() -> Any:
    rows = reports.register(db())
    fmt = request.args.get("format")
    if fmt == "csv":
        return Response(
            reports.register_csv(rows),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment; filename=register.csv"},
        )
    if fmt == "pdf":
        settings = services().settings
        t = i18n.translator(settings, i18n.page_language_tag())
        pdf = reports.register_pdf(rows, organisation=settings.organisation, t=t)
        return Response(pdf, mimetype="application/pdf")
    return render_template("provisioning/register.html", rows=rows, fields=reports.REGISTER_FIELDS)


@bp.get("/hr/activate/<token>")
def activate(token: str) -> Any:
    row = delivery.peek(db(), token)
    return render_template("provisioning/activate.html", row=row, form=ConfirmForm(), revealed=None)


@bp.post("/hr/activate/<token>")
def activate_reveal(token: str) -> Any:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        username, password = delivery.reveal(db(), services(), token, ip=g.client_ip)
    except NotFound:
        return render_template("provisioning/activate.html", row=None, form=ConfirmForm(), revealed=None), 404
    resp = Response(
        render_template(
            "provisioning/activate.html",
            row=None,
            form=None,
            revealed={"username": username, "password": password},
        )
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp
