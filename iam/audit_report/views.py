"""Pages for security officers and auditors: the audit report (PDF/CSV) and the monthly review
with its sign-off. Thin: the rules are in :mod:`.service` and :mod:`.review`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # wtforms 3.3, newer than its stubs
from wtforms.validators import DataRequired, Length, Optional

from iam import audit
from iam.admin import AdminPage, Role, Section, current_admin, register_admin_page, require_admin
from iam.audit_report import review as rv
from iam.audit_report import service
from iam.audit_report.pdf import report_pdf
from iam.errors import Conflict, IamError
from iam.web import db, services, signed_in

bp = Blueprint("audit_report", __name__, url_prefix="/audit")


class ReportForm(FlaskForm):  # type: ignore[misc]
    start = StringField(_l("From (date)"), validators=[DataRequired(), Length(max=32)])
    end = StringField(_l("To (date, included)"), validators=[DataRequired(), Length(max=32)])
    person = StringField(_l("Person (account)"), validators=[Optional(), Length(max=256)])
    client = StringField(_l("Application (client id)"), validators=[Optional(), Length(max=128)])
    severity = SelectField(
        _l("Severity"),
        choices=[
            SelectChoice("", _l("all")),
            SelectChoice("significant", _l("significant and critical")),
            SelectChoice("critical", _l("critical")),
        ],
        validators=[Optional()],
    )
    fmt = SelectField(_l("Format"), choices=[SelectChoice("pdf", "PDF"), SelectChoice("csv", "CSV")])


class SignOffForm(FlaskForm):  # type: ignore[misc]
    comment = TextAreaField(_l("Findings and actions (optional)"), validators=[Optional(), Length(max=4000)])


def _who() -> tuple[str, str] | None:
    """``(sub, username)`` of the person signed in to this browser."""
    if "audit_who" not in g:
        try:
            who = signed_in()
            g.audit_who = (who.sub, who.username) if who is not None else None
        except Exception:  # noqa: BLE001 — no session store: nobody
            g.audit_who = None
    return g.audit_who  # type: ignore[no-any-return]


def _may_review() -> bool:
    if "audit_may_review" not in g:
        who = _who()
        g.audit_may_review = who is not None and rv.may_review(services(), *who)
    return bool(g.audit_may_review)


def _may_read() -> bool:
    who = _who()
    return who is not None and (_may_review() or rv.may_read(services(), *who))


def _username() -> str:
    return current_admin().viewer.username


@bp.route("/report", methods=["GET", "POST"])
@require_admin(Role.SECURITY_OFFICER, also=_may_read, reads=True)
def report() -> Any:
    """The report form; POST answers with the PDF or CSV file (and audits that it was made).
    Building a report changes nothing: the auditor may too."""
    username = _username()
    form = ReportForm()
    error = None
    if form.validate_on_submit():
        settings = services().settings
        try:
            q = service.parse_query(
                form.start.data or "",
                form.end.data or "",
                person=form.person.data,
                client=form.client.data,
                severity=form.severity.data,
                zone=settings.timezone,
            )
        except IamError as exc:
            error = str(exc)
        else:
            session = db()
            evs = service.events(session, q)
            fmt = form.fmt.data
            details = {**q.describe(), "format": fmt, "events": len(evs)}
            audit.record(session, "audit.report", actor=username, ip=g.get("client_ip"), details=details)
            session.commit()
            name = f"audit-report-{q.start:%Y%m%d}-{q.end:%Y%m%d}.{fmt}"
            if fmt == "csv":
                body, mime = (
                    service.to_csv(evs, zone=settings.timezone).encode("utf-8-sig"),
                    "text/csv; charset=utf-8",
                )
            else:
                body = report_pdf(evs, q, organisation=settings.organisation, zone=settings.timezone)
                mime = "application/pdf"
            return Response(
                body, mimetype=mime, headers={"Content-Disposition": f'attachment; filename="{name}"'}
            )
    return render_template("audit/report.html", form=form, error=error), 400 if error else 200


@bp.route("/review", methods=["GET", "POST"])
@require_admin(Role.SECURITY_OFFICER, also=_may_review)
def review_latest() -> Any:
    """Last month's review (the console's link)."""
    return _review(rv.previous_month(services().settings.timezone))


@bp.route("/review/<month>", methods=["GET", "POST"])
@require_admin(Role.SECURITY_OFFICER, also=_may_review)
def review(month: str) -> Any:
    """The month's significant and critical events; the security officer signs the month off."""
    return _review(month)


def _review(month: str) -> Any:
    username = _username()
    form = SignOffForm()
    session = db()
    try:
        data = rv.load(services(), session, month)
    except IamError:
        abort(404)
    status = 200
    if form.validate_on_submit():
        try:
            rv.sign_off(
                services(),
                session,
                month=month,
                actor=username,
                comment=form.comment.data or "",
                ip=g.get("client_ip"),
                user_agent=g.get("user_agent"),
            )
            session.commit()
            flash(_("The review of %(month)s is signed off.", month=month))
            return redirect(url_for("audit_report.review", month=month))
        except Conflict as exc:
            flash(str(exc))
            status = 409
        except IamError as exc:
            flash(str(exc))
            status = 400
        session.rollback()
        data = rv.load(services(), session, month)
    rows = list(service.rows(data.events, zone=services().settings.timezone))
    return render_template(
        "audit/review.html", data=data, rows=rows, form=form, month=month, zone=services().settings.timezone
    ), status


def register_navigation(app: Flask) -> None:
    """In the console's Audit section (no longer in the header)."""
    register_admin_page(
        app,
        AdminPage(
            "audit_report.report",
            _l("Audit reports"),
            Section.AUDIT,
            roles=frozenset({Role.SECURITY_OFFICER}),
            order=20,
            also=_may_read,
        ),
        AdminPage(
            "audit_report.review_latest",
            _l("Monthly audit review"),
            Section.AUDIT,
            roles=frozenset({Role.SECURITY_OFFICER}),
            order=30,
            also=_may_review,
        ),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_navigation(app)
