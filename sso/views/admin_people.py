"""What the sign-in package adds to a person's page in the console (``iam.admin.hooks``):
sessions (end one or all), second factors (reset) and smart cards (revoke), and the help-desk
actions behind those buttons. Each action asks for a reason and is audited with the
administrator as actor; a privileged account's second factor is reset only by a security
officer (:mod:`iam.privileged`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session

from iam import audit, privileged
from iam.admin import Role, admin_actor, current_admin, require_admin
from iam.admin.hooks import Action, Panel, PersonRef, person_panel
from iam.admin.views.common import client_ip, person_path, reason_or_back, refused
from iam.directory.errors import DirectoryError
from iam.errors import NotFound
from iam.services import Services
from iam.web import db, services
from sso import service
from sso.mfa import service as mfa
from sso.models import SsoSession

bp = Blueprint("sso_admin", __name__, url_prefix="/admin/sso")

HELPDESK = frozenset({Role.HELPDESK})
MFA_RESET = frozenset({Role.HELPDESK, Role.SECURITY_OFFICER})


@person_panel("sso.sessions", order=40)
def _sessions(services_: Services, session: Session, person: PersonRef) -> Panel:
    rows = [r for sub in person.subs for r in service.user_sessions(session, sub)]
    return Panel(
        title=_l("Sessions"),
        columns=[_l("Account"), _l("Started"), _l("Last seen"), _l("Level"), _l("Address"), _l("Browser")],
        rows=[
            [person.username_of(r.sub), r.created_at, r.last_seen_at, r.acr, r.ip, (r.user_agent or "")[:80]]
            for r in rows
        ],
        row_actions=[
            [Action(_l("End this session"), "sso_admin.end_session", {"sid": r.sid}, HELPDESK)] for r in rows
        ],
        actions=[
            Action(_l("End all sessions"), "sso_admin.end_all", {"sub": a.user.id}, HELPDESK, danger=True)
            for a in person.accounts
            if any(r.sub == a.user.id for r in rows)
        ],
    )


@person_panel("sso.factors", order=45)
def _factors(services_: Services, session: Session, person: PersonRef) -> Panel:
    from sso.x509.service.bindings import list_bindings

    rows: list[list[Any]] = []
    row_actions: list[list[Action]] = []
    for account in person.accounts:
        sub = account.user.id
        state = mfa.status(session, sub)
        totp: Any = state["totp"]
        if totp is not None or state["recovery_codes_left"]:
            rows.append(
                [
                    account.user.username,
                    _l("authenticator app"),
                    (totp or {}).get("label") or "",
                    (totp or {}).get("confirmed_at"),
                    (totp or {}).get("last_used_at"),
                    _l("%(n)s recovery codes left", n=state["recovery_codes_left"]),
                ]
            )
            row_actions.append(
                [
                    Action(
                        _l("Reset second factor"), "sso_admin.reset_mfa", {"sub": sub}, MFA_RESET, danger=True
                    )
                ]
            )
        for card in list_bindings(session, sub=sub):
            rows.append(
                [account.user.username, _l("smart card"), card.subject, card.created_at, None, card.issuer]
            )
            row_actions.append(
                [
                    Action(
                        _l("Revoke card"),
                        "sso_admin.revoke_card",
                        {"binding_id": card.id},
                        HELPDESK,
                        danger=True,
                    )
                ]
            )
    return Panel(
        title=_l("Second factors and cards"),
        columns=[_l("Account"), _l("Kind"), _l("Name"), _l("Since"), _l("Last used"), _l("Detail")],
        rows=rows,
        row_actions=row_actions,
    )


@bp.post("/sessions/<sid>/end")
@require_admin(Role.HELPDESK)
def end_session(sid: str) -> Any:
    row = db().query(SsoSession).filter(SsoSession.sid == sid).one_or_none()
    if row is None or row.ended_at is not None:
        flash(_("That session has already ended."))
        return redirect(url_for("admin.people"), code=303)
    back = person_path(row.sub)
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    service.end_sso_session(db(), row, reason="admin", actor=admin_actor(), ip=client_ip())
    audit.record(
        db(),
        "admin.session_ended",
        actor=admin_actor(),
        subject=row.sub,
        ip=client_ip(),
        details={"sid": sid, "reason": reason},
    )
    flash(_("The session has ended."))
    return redirect(back, code=303)


@bp.post("/people/<sub>/sessions/end")
@require_admin(Role.HELPDESK)
def end_all(sub: str) -> Any:
    back = person_path(sub)
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    ended = service.end_all_sessions(db(), sub, reason="admin", actor=admin_actor())
    audit.record(
        db(),
        "admin.sessions_ended",
        actor=admin_actor(),
        subject=sub,
        ip=client_ip(),
        details={"ended": ended, "reason": reason},
    )
    flash(_("%(n)s session(s) ended.", n=ended))
    return redirect(back, code=303)


@bp.post("/people/<sub>/mfa/reset")
@require_admin(Role.HELPDESK, Role.SECURITY_OFFICER)
def reset_mfa(sub: str) -> Any:
    back = person_path(sub)
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    svc = services()
    try:
        target = svc.directory.get_user(sub)
        why = (
            (privileged.why_privileged(svc, target) or privileged.needs_security_officer(svc, target))
            if target
            else None
        )
    except DirectoryError:
        return refused(_("The directory cannot be reached; nothing was changed. Try again."), back)
    if target is None:
        return refused(_("There is no such account in the directory."), back)
    officer = Role.SECURITY_OFFICER in current_admin().roles
    if why and not officer:
        audit.record_refusal(
            db(),
            "mfa.reset_refused",
            severity=audit.Severity.CRITICAL,
            actor=admin_actor(),
            subject=sub,
            ip=client_ip(),
            details={"why": why, "reason": reason},
        )
        return refused(
            _("This is a privileged account: only a security officer may reset its second factor."), back
        )
    mfa.admin_reset(db(), sub=sub, actor=admin_actor(), reason=reason or "", ip=client_ip())
    flash(_("The second factor is reset; the person sets up a new one at their next sign-in."))
    return redirect(back, code=303)


@bp.post("/cards/<binding_id>/revoke")
@require_admin(Role.HELPDESK)
def revoke_card(binding_id: str) -> Any:
    from sso.x509.models import CardBinding
    from sso.x509.service.bindings import revoke_binding

    row = db().get(CardBinding, binding_id)
    back = person_path(row.sub) if row is not None else url_for("admin.people")
    reason, stop = reason_or_back(back)
    if stop is not None:
        return stop
    try:
        revoke_binding(db(), binding_id=binding_id, actor=admin_actor(), reason=reason or "", ip=client_ip())
    except NotFound:
        return refused(_("There is no such active card binding."), back)
    flash(_("The card is revoked."))
    return redirect(back, code=303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
