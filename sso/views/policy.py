"""The security-policy acknowledgement (R-SSO-6): the page a person accepts before going on,
and the acceptance report for security officers and auditors (page and CSV)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam import audit, privileged
from iam.admin import AdminPage, Role, Section, register_admin_page, require_admin
from iam.errors import ConfigError
from iam.models.identity import Identity
from iam.pages import page_language
from iam.web import db, services
from sso.forms import ConfirmForm
from sso.policy import service as policy
from sso.views.common import _error_page, _record, bp, current_sso, log


def pending_for_current() -> bool:
    """Whether the signed-in person must accept the current policy before going on. A policy
    folder that cannot be read counts as "not accepted" (deny by default): the policy page
    then says the sign-in is unavailable."""
    sso = current_sso()
    if sso is None:
        return False
    try:
        return policy.pending(db(), services().settings, sso.sub)
    except ConfigError:
        log.error("the security policy cannot be read; sign-ins to applications wait", exc_info=True)
        return True


def _resume() -> Any:
    from sso.views.signin import _resume as resume_flow

    if session.get("flow"):
        return resume_flow()
    return redirect(url_for("sso.index"))


def _unavailable() -> Any:
    return _error_page(
        _("Sign-in is unavailable right now"),
        _("The security policy cannot be shown. Please tell the help desk."),
        503,
    )


@bp.route("/policy", methods=["GET", "POST"])
def acknowledge() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    settings = services().settings
    if not settings.policy.required:
        return _resume()
    try:
        current = policy.load(settings, page_language())
    except ConfigError:
        return _unavailable()
    if policy.accepted(db(), sso.sub, current.version) is not None:
        return _resume()
    form = ConfirmForm()
    if form.validate_on_submit():
        if form.action.data != current.version:  # the page shown was an older text: show the new one
            return redirect(url_for("sso.acknowledge"))
        identity = db().get(Identity, sso.sub)
        policy.accept(
            db(),
            sub=sso.sub,
            username=identity.username if identity else sso.sub,
            policy=current,
            ip=g.client_ip,
            user_agent=g.user_agent,
        )
        return _resume()
    return render_template("sso/policy.html", policy=current, form=form)


def _may_read_report() -> bool:
    sso = current_sso()
    if sso is None:
        return False
    settings = services().settings
    identity = db().get(Identity, sso.sub)
    auditors = {u.casefold() for u in settings.policy.auditors}
    return privileged.is_security_officer(services(), sso.sub) or (
        identity is not None and identity.username.casefold() in auditors
    )


def _record_refusal() -> None:
    """A refused look at the report is audited (as before the console)."""
    sso = current_sso()
    audit.record_refusal(
        db(),
        "policy.report_refused",
        actor=sso.sub if sso else None,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )


@bp.get("/policy/acceptances")
@require_admin(Role.SECURITY_OFFICER, also=_may_read_report, on_refusal=_record_refusal)
def acceptances() -> Any:
    try:
        current, rows = policy.report(db(), services().settings)
    except ConfigError:
        return _unavailable()
    return render_template(
        "sso/policy_report.html",
        current=current,
        rows=rows,
        accepted=sum(1 for r in rows if r.accepted_current),
        required=services().settings.policy.required,
    )


@bp.get("/policy/acceptances.csv")
@require_admin(Role.SECURITY_OFFICER, also=_may_read_report, on_refusal=_record_refusal)
def acceptances_csv() -> Any:
    try:
        current, rows = policy.report(db(), services().settings)
    except ConfigError:
        return _unavailable()
    sso = current_sso()
    _record("policy.report_exported", actor=sso.sub if sso else None, details={"rows": len(rows)})
    return Response(
        policy.report_csv(current, rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="policy-acceptances.csv"'},
    )


def register_navigation(app: Flask) -> None:
    """The acceptance report in the console's Audit section (no longer in the header)."""
    register_admin_page(
        app,
        AdminPage(
            "sso.acceptances",
            _l("Policy acceptances"),
            Section.AUDIT,
            roles=frozenset({Role.SECURITY_OFFICER}),
            order=50,
            also=_may_read_report,
        ),
    )
