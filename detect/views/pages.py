"""Security officers' pages: alerts (acknowledge, close with a comment), changes made in AD
outside the provider, per-agency statistics with charts and CSV. Thin: rules are in ``service``."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import AnyOf, Length

from detect.models import Alert, AlertState
from detect.service import adchanges, alerts, stats
from detect.views.access import may_see
from detect.views.charts import daily_chart
from iam import clock
from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.errors import NotFound, ValidationFailed
from iam.web import db, reader

bp = Blueprint("detect", __name__, url_prefix="/security")

STATE_LABELS = {
    AlertState.OPEN: _l("open"),
    AlertState.ACKNOWLEDGED: _l("acknowledged"),
    AlertState.CLOSED: _l("closed"),
}


class HandleForm(FlaskForm):  # type: ignore[misc]
    to = HiddenField(validators=[AnyOf([AlertState.ACKNOWLEDGED.value, AlertState.CLOSED.value])])
    comment = TextAreaField(_l("Comment"), validators=[Length(max=alerts.COMMENT_MAX)])


OFFICER = frozenset({Role.SECURITY_OFFICER})
STATISTICS = frozenset({Role.SECURITY_OFFICER, Role.IT_ADMIN})


def register_navigation(app: Flask) -> None:
    """In the console's Audit section (no longer in the header)."""
    register_admin_page(
        app,
        AdminPage(
            "detect.alerts", _l("Security alerts"), Section.AUDIT, roles=OFFICER, order=40, also=may_see
        ),
        AdminPage(
            "detect.directory_changes",
            _l("AD changes outside the provider"),
            Section.AUDIT,
            roles=OFFICER,
            order=41,
            also=may_see,
        ),
        AdminPage(
            "detect.statistics",
            _l("Statistics per agency"),
            Section.AUDIT,
            roles=STATISTICS,
            order=42,
            also=may_see,
        ),
    )


@bp.get("/alerts", endpoint="alerts")
@require_admin(*OFFICER, also=may_see)
def alerts_page() -> Any:
    state = request.args.get("state") or None
    if state not in (None, *[s.value for s in AlertState]):
        abort(400)
    rows = alerts.listing(reader(), state=state)
    return render_template("detect/alerts.html", alerts=rows, state=state, labels=STATE_LABELS)


@bp.route("/alerts/<int:alert_id>", methods=["GET", "POST"])
@require_admin(*OFFICER, also=may_see)
def alert(alert_id: int) -> Any:
    sub = admin_actor()
    form = HandleForm()
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                alerts.handle(
                    db(),
                    alert_id,
                    to=str(form.to.data),
                    comment=form.comment.data or "",
                    actor=sub,
                    ip=g.client_ip,
                )
            except NotFound:
                abort(404)
            except ValidationFailed as exc:
                error = _(str(exc))
            else:
                flash(_("The alert was updated."))
                return redirect(url_for("detect.alert", alert_id=alert_id))
        else:
            error = _("Choose what to do and keep the comment under %(n)s characters.", n=alerts.COMMENT_MAX)
    row = db().get(Alert, alert_id)
    if row is None:
        abort(404)
    status = 400 if error else 200
    return render_template(
        "detect/alert.html", alert=row, form=form, error=error, labels=STATE_LABELS
    ), status


@bp.get("/directory-changes")
@require_admin(*OFFICER, also=may_see)
def directory_changes() -> Any:
    change = request.args.get("change") or None
    rows = adchanges.listing(reader(), change=change)
    return render_template("detect/directory_changes.html", changes=rows, change=change)


def _period() -> tuple[dt.date, dt.date, str | None, str | None]:
    today = clock.now().date()
    try:
        end = dt.date.fromisoformat(request.args["to"]) if request.args.get("to") else today
        start = (
            dt.date.fromisoformat(request.args["from"])
            if request.args.get("from")
            else end - dt.timedelta(days=29)
        )
    except ValueError:
        abort(400, _("Dates are written YYYY-MM-DD."))
    if start > end or (end - start).days > 366:
        abort(400, _("The period must start before it ends and last at most a year."))
    client = request.args.get("client_id") or None
    agency = request.args.get("agency")
    for value, size in ((agency, 64), (client, 128)):
        if value is not None and (len(value) > size or "\x00" in value):
            abort(400, _("No application or agency has such a name."))
    return start, end, client, agency if agency not in (None, "") else None


@bp.get("/statistics")
@require_admin(*STATISTICS, also=may_see)
def statistics() -> Any:
    start, end, client, agency = _period()
    report = stats.report(reader(), start=start, end=end, client_id=client, agency=agency)
    series: dict[str, dict[dt.date, int]] = {}
    for d in report.daily:
        series.setdefault(d.metric, {})[d.day] = d.count
    chart = daily_chart(series, start, end)
    metrics = sorted({m for c in report.clients for m in c.metrics})
    return render_template(
        "detect/statistics.html", report=report, chart=chart, metrics=metrics, start=start, end=end
    )


@bp.get("/statistics.csv")
@require_admin(*STATISTICS, also=may_see)
def statistics_csv() -> Response:
    start, end, client, agency = _period()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(stats.CSV_HEADER)
    writer.writerows(stats.csv_rows(reader(), start=start, end=end, client_id=client, agency=agency))
    resp = Response(out.getvalue(), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="statistics-{start}-{end}.csv"'
    return resp
