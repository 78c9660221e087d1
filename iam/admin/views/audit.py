"""The audit search: filters, keyset pages, CSV export, the chain's verification status."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam import audit, clock, jobs
from iam.admin import Role, admin_actor, bp, require_admin
from iam.admin.hooks import Action
from iam.admin.service import audit_search as service
from iam.admin.views.common import client_ip, may
from iam.errors import ValidationFailed
from iam.pages import organisation_zone
from iam.web import db, reader, services

VERIFY = Action(_l("Verify now"), "admin.audit_verify", {}, frozenset({Role.SECURITY_OFFICER}), reason=False)
FIELDS = ("since", "until", "person", "client_id", "event", "severity", "outcome", "ip")


def _moment(value: str) -> dt.datetime | None:
    """A time typed in the organisation's zone (``datetime-local``: 2026-03-01T14:05) → UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(_("A time must look like 2026-03-01 14:05.")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=organisation_zone())
    return moment.astimezone(dt.UTC)


def _filters() -> tuple[service.Filters, dict[str, str]]:
    args = {k: request.args.get(k, "").strip() for k in FIELDS}
    f = service.Filters(
        since=_moment(args["since"]),
        until=_moment(args["until"]),
        person=args["person"],
        client_id=args["client_id"],
        event=args["event"],
        severity=args["severity"],
        outcome=args["outcome"],
        ip=args["ip"],
    )
    f.check()
    return f, args


@bp.get("/audit")
@require_admin(Role.SECURITY_OFFICER)
def audit_search() -> Any:
    error = None
    page = service.Page([], None)
    args = {k: request.args.get(k, "") for k in FIELDS}
    try:
        f, args = _filters()
        after = request.args.get("after")
        cursor = service.Cursor.decode(after) if after else None
        page = service.search(
            services(), reader(), f, size=services().settings.admin.page_size, cursor=cursor
        )
    except ValidationFailed as exc:
        error = str(exc)
    query = {k: v for k, v in args.items() if v}
    next_href = (
        url_for("admin.audit_search") + "?" + urlencode({**query, "after": page.next.encode()})
        if page.next
        else None
    )
    return render_template(
        "iam/admin/audit.html",
        args=args,
        page=page,
        error=error,
        next_href=next_href,
        first_href=url_for("admin.audit_search") + ("?" + urlencode(query) if query else ""),
        paged="after" in request.args,
        csv_href=url_for("admin.audit_csv") + ("?" + urlencode(query) if query else ""),
        verification=service.last_verification(reader()),
        may_verify=may(VERIFY),
        severities=service.SEVERITIES,
        outcomes=service.OUTCOMES,
    )


@bp.get("/audit.csv")
@require_admin(Role.SECURITY_OFFICER)
def audit_csv() -> Any:
    try:
        f, _args = _filters()
    except ValidationFailed as exc:
        flash(str(exc))
        return redirect(url_for("admin.audit_search"), code=303)
    svc = services()
    actor = admin_actor()
    audit.record(
        db(),
        "audit.exported",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=client_ip(),
        details={k: str(v) for k, v in vars(f).items() if v},
    )
    db().commit()  # the export is on record before the first byte leaves

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        with svc.reader() as session:
            for row in service.export(svc, session, f):
                writer.writerow(row)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()

    name = f"audit-{clock.now():%Y%m%d-%H%M%S}.csv"
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.post("/audit/verify")
@require_admin(Role.SECURITY_OFFICER)
def audit_verify() -> Any:
    from flask_wtf import FlaskForm

    if not FlaskForm().validate_on_submit():
        flash(_("The form expired. Reload the page and try again."))
        return redirect(url_for("admin.audit_search"), code=303)
    jobs.enqueue(db(), "iam.audit.verify", {"actor": admin_actor()}, dedup_key=None)
    audit.record(db(), "audit.verify_requested", actor=admin_actor(), ip=client_ip())
    flash(
        _("The verification is queued; the worker runs it in a moment. Reload this page to see the result.")
    )
    return redirect(url_for("admin.audit_search"), code=303)
