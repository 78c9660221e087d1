"""The console's conformance page (security officers; the auditor reads): choose a rulebook and
a period, read the report, download it as PDF or JSON. Every report built here is recorded in
the audit log with its SHA-256 (``conformance.report``), as the command line does."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, abort, render_template, request
from flask_babel import lazy_gettext as _l

from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.conformance import catalogue, render, service
from iam.i18n import page_language_tag
from iam.web import db, services

bp = Blueprint("conformance_admin", __name__, url_prefix="/admin/conformance")
OFFICER = Role.SECURITY_OFFICER
PERIOD_HINT = _l(
    "A year (2026), a quarter (2026-Q3), a month (2026-05) or two days (2026-01-01..2026-06-30)."
)


def _build(fmt: str) -> tuple[dict[str, Any] | None, str | None]:
    """The report the query asks for (recorded as built in ``fmt``), or the error to show."""
    rulebook = request.args.get("rulebook", "")
    if rulebook not in catalogue.known():
        abort(400)
    period = (request.args.get("period") or "").strip() or None
    if period is not None and len(period) > 32:
        return None, str(PERIOD_HINT)
    try:
        service.parse_period(period)
    except ValueError:
        return None, str(PERIOD_HINT)
    report = service.build(services(), rulebook, period=period, language=page_language_tag().split("-")[0])
    db().commit()  # the request's own writes first: the record is a transaction of its own
    service.record(services(), report, actor=admin_actor(), fmt=fmt)
    return report, None


def _file(body: bytes | str, mimetype: str, report: dict[str, Any], ext: str) -> Response:
    name = f"conformance-{report['rulebook']['id']}-{report['period']['label'].replace('..', '_')}.{ext}"
    return Response(
        body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.get("/")
@require_admin(OFFICER)
def page() -> Any:
    report, error = _build("html") if request.args.get("rulebook") else (None, None)
    return render_template(
        "iam/admin/conformance.html",
        rulebooks=[(name, catalogue.load(name).title) for name in catalogue.known()],
        rulebook=request.args.get("rulebook", ""),
        period=request.args.get("period", ""),
        hint=PERIOD_HINT,
        report=report,
        w=render.words(report["language"]) if report else None,
        lang=render.lang(report["language"]) if report else None,
        error=error,
    ), 400 if error else 200


@bp.get("/report.pdf")
@require_admin(OFFICER)
def pdf() -> Any:
    report, error = _build("pdf")
    if report is None:
        abort(400, error)
    return _file(render.pdf(report), "application/pdf", report, "pdf")


@bp.get("/report.json")
@require_admin(OFFICER)
def as_json() -> Any:
    report, error = _build("json")
    if report is None:
        abort(400, error)
    return _file(json.dumps(report, indent=2, ensure_ascii=False), "application/json", report, "json")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage(
            "conformance_admin.page",
            _l("Conformance report"),
            Section.AUDIT,
            roles=frozenset({OFFICER}),
            order=60,
        ),
    )
