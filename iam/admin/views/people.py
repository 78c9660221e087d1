"""People: search across the directory, one person's page, and the core's help-desk actions
(unlock, password reset of an ordinary account)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request
from flask_babel import gettext as _

from iam import audit
from iam.admin import Role, admin_actor, bp, require_admin
from iam.admin.hooks import Action, panels
from iam.admin.service import audit_search
from iam.admin.service import people as service
from iam.admin.views.common import (
    before_directory_write,
    client_ip,
    may,
    person_path,
    reason_or_back,
    refused,
)
from iam.directory.errors import DirectoryError
from iam.errors import NotFound, PrivilegedAccount, ValidationFailed
from iam.pages import error_page
from iam.web import db, services

LOOKUP = (Role.HELPDESK, Role.SECURITY_OFFICER, Role.HR_OPERATOR)
"""Who looks people up (the auditor reads every page too)."""
HELPDESK = frozenset({Role.HELPDESK})


@bp.get("/people")
@require_admin(*LOOKUP)
def people() -> Any:
    query = request.args.get("q", "")
    results: list[dict[str, Any]] = []
    error = None
    more = False
    if query.strip():
        size = services().settings.admin.page_size
        try:
            found = service.search(services(), query, limit=size)
        except ValidationFailed as exc:
            error = str(exc)
        except DirectoryError:
            return error_page(503, message=_("The directory cannot be reached. Try again in a few minutes."))
        else:
            more = len(found) > size
            results = [service.summary(u) for u in found[:size]]
    return render_template("iam/admin/people.html", query=query, results=results, error=error, more=more)


@bp.get("/people/<user_id>")
@require_admin(*LOOKUP)
def person(user_id: str) -> Any:
    svc = services()
    session = db()
    try:
        who = service.person(svc, session, user_id)
        statuses = service.statuses(svc, session, who)
        groups = service.groups(svc, session, who)
        rights = service.other_rights(svc, session, who)
    except NotFound:
        return error_page(404, message=_("There is no such account in the directory."))
    except DirectoryError:
        return error_page(503, message=_("The directory cannot be reached. Try again in a few minutes."))
    trail = audit_search.search(
        svc,
        session,
        audit_search.Filters(accounts=tuple(who.subs)),
        size=20,
    )
    unlock = Action(_("Unlock"), "admin.unlock", {}, HELPDESK)
    reset = Action(_("Reset password"), "admin.reset_password", {}, HELPDESK)
    feature_panels = [(name, panel) for name, panel in panels(svc, session, who)]
    return render_template(
        "iam/admin/person.html",
        who=who,
        statuses=statuses,
        groups=groups,
        rights=rights,
        trail=trail,
        panels=feature_panels,
        may=may,
        may_unlock=may(unlock),
        may_reset=may(reset),
    )


@bp.post("/people/<user_id>/unlock")
@require_admin(Role.HELPDESK)
def unlock(user_id: str) -> Any:
    back = person_path(user_id)
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    before_directory_write()
    try:
        was = service.unlock(
            services(), db(), user_id, actor=admin_actor(), reason=reason or "", ip=client_ip()
        )
    except NotFound:
        return refused(_("There is no such account in the directory."), back)
    except DirectoryError:
        return refused(_("The directory could not unlock the account; nothing was changed. Try again."), back)
    flash(_("The account is unlocked.") if was else _("The account was not locked; its counters are reset."))
    return redirect(back, code=303)


@bp.post("/people/<user_id>/password")
@require_admin(Role.HELPDESK)
def reset_password(user_id: str) -> Any:
    back = person_path(user_id)
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    before_directory_write()
    try:
        username, temporary, must_change = service.reset_password(
            services(), user_id, actor=admin_actor(), reason=reason or ""
        )
    except PrivilegedAccount:
        return refused(
            _(
                "This is a privileged account: the help desk cannot reset its password. "
                "It changes only through privileged access management (PIM)."
            ),
            back,
        )
    except NotFound:
        return refused(_("There is no such account in the directory."), back)
    except DirectoryError:
        return refused(_("The directory could not set the password; nothing was changed. Try again."), back)
    audit.record(
        db(),
        "admin.password_reset",
        severity=audit.Severity.SIGNIFICANT,
        actor=admin_actor(),
        subject=user_id,
        ip=client_ip(),
        details={"username": username, "reason": reason, "must_change": must_change},
    )
    # shown once, in this answer only (never in a URL, a flash cookie or the log)
    return render_template(
        "iam/admin/password_reset.html",
        username=username,
        temporary=temporary,
        must_change=must_change,
        back=back,
    )
