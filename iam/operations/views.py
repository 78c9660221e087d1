"""The console's Operations pages (core): the job queue, the workers and the health of each
dependency, and the effective settings without secrets. Signing keys and the card trust
anchors are Operations pages too; the ``sso`` package registers them.

Every route declares its role (IT administrator; the auditor reads) through
:func:`iam.admin.require_admin`; every change asks for a reason and is audited with the
administrator as actor."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.admin.forms import ReasonForm
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.operations import service
from iam.web import db, reader, services

bp = Blueprint("admin_ops", __name__, url_prefix="/admin/operations")
IT = frozenset({Role.IT_ADMIN})

JOB_LABELS = {
    "pending": _l("Waiting"),
    "failed": _l("Failed, will retry"),
    "dead": _l("Dead"),
    "running": _l("Running"),
    "discarded": _l("Discarded"),
}


@bp.get("/jobs")
@require_admin(Role.IT_ADMIN)
def jobs() -> Any:
    view = request.args.get("view", "dead")
    if view not in service.JOB_VIEWS:
        abort(404)
    session = reader()
    return render_template(
        "iam/admin/jobs.html",
        view=view,
        views=[(v, JOB_LABELS[v]) for v in service.JOB_VIEWS],
        counts=service.job_counts(session),
        rows=service.list_jobs(session, view),
        form=ReasonForm(),
    )


def _job_action(job_id: str, action: str) -> Any:
    form = ReasonForm()
    view = request.args.get("view", "dead")
    back = url_for("admin_ops.jobs", view=view if view in service.JOB_VIEWS else "dead")
    if not form.validate_on_submit():
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(back)
    try:
        if action == "retry":
            job = service.retry_job(
                db(), job_id, actor=admin_actor(), reason=form.reason.data or "", ip=g.get("client_ip")
            )
            flash(_("The job %(kind)s will run again now.", kind=job.kind))
        else:
            job = service.discard_job(
                db(), job_id, actor=admin_actor(), reason=form.reason.data or "", ip=g.get("client_ip")
            )
            flash(_("The job %(kind)s was discarded.", kind=job.kind))
    except NotFound:
        db().rollback()
        abort(404)
    except (Conflict, ValidationFailed) as exc:
        db().rollback()
        flash(_("Nothing was changed: %(why)s", why=str(exc)))
    return redirect(back)


@bp.post("/jobs/<job_id>/retry")
@require_admin(Role.IT_ADMIN)
def job_retry(job_id: str) -> Any:
    return _job_action(job_id, "retry")


@bp.post("/jobs/<job_id>/discard")
@require_admin(Role.IT_ADMIN)
def job_discard(job_id: str) -> Any:
    return _job_action(job_id, "discard")


@bp.get("/health")
@require_admin(Role.IT_ADMIN)
def health() -> Any:
    svc = services()
    alive_seconds = svc.settings.operations.worker_alive_seconds
    return render_template(
        "iam/admin/health.html",
        checks=service.health(svc),
        workers=service.workers(reader(), alive_seconds),
        alive_seconds=alive_seconds,
        labels={
            "database": _l("Database"),
            "directory": _l("Directory (Active Directory)"),
            "mail": _l("Mail relay"),
            "workers": _l("Workers"),
        },
    )


@bp.get("/settings")
@require_admin(Role.IT_ADMIN)
def settings() -> Any:
    rows = service.effective_settings(services().settings)
    sections: dict[str, list[service.SettingRow]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    return render_template("iam/admin/settings.html", sections=sections, mask=service.MASK)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage("admin_ops.jobs", _l("Jobs"), Section.OPERATIONS, roles=IT, order=10),
        AdminPage("admin_ops.health", _l("Health"), Section.OPERATIONS, roles=IT, order=40),
        AdminPage("admin_ops.settings", _l("Settings in effect"), Section.OPERATIONS, roles=IT, order=50),
    )
