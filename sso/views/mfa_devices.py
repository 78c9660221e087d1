"""My security devices (``/mfa/devices``) and enrollment (``/mfa/enroll``), on the ``mfa``
blueprint of :mod:`sso.views.mfa`.

- enrollment: after re-entering the password, a QR code (rendered here as SVG) and the key,
  confirmed by a first code; the recovery codes are shown once;
- the devices page lists every device (other packages add theirs via :mod:`sso.mfa.hooks`);
  removing the app or renewing the recovery codes needs the password again — and, for a
  password-only session of a user who has a second factor, that second factor first.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, g, redirect, render_template, session, url_for
from flask_babel import gettext as _

from iam import clock, lockout
from iam.directory import errors as dir_errors
from iam.models.identity import Identity
from iam.web import db, services
from sso.mfa import flow as mfa_flow
from sso.mfa import hooks, levels
from sso.mfa import service as mfa
from sso.mfa.forms import CodeForm, PasswordForm
from sso.views import signin
from sso.views.common import _error_page, _record, _settings, current_sso
from sso.views.mfa import _DEVICES, _ENROLL_KEY, _REAUTH_KEY, bp


# -- re-authentication for changes to one's devices -------------------------------------------
def _reauthenticated(sso: Any) -> bool:
    mark = session.get(_REAUTH_KEY) or {}
    return bool(
        mark.get("sid") == sso.sid
        and clock.timestamp() - int(mark.get("at", 0)) <= _settings().mfa.reauth_seconds
    )


def _authenticate_counted(account: lockout.Account, password: str) -> Any:
    """The directory's password check, counted by the provider's lockout (R-PW-6) on the
    account's counter inside this request's transaction (the session already holds it: a
    signed-in user re-authenticating)."""
    settings = services().settings.lockout
    s = db()
    username = account.name
    if lockout.begin_attempt(s, settings, account=account, ip=g.client_ip).locked:
        raise signin.LockedOut("locked by the provider")
    outcome = lockout.Outcome.OTHER
    try:
        user = services().directory.authenticate(username, password)
        outcome = lockout.Outcome.SUCCESS
    except dir_errors.InvalidCredentials:
        outcome = lockout.Outcome.FAILURE
        raise
    finally:
        lockout.finish_attempt(
            s, settings, account=account, ip=g.client_ip, user_agent=g.user_agent, outcome=outcome
        )
    return user


def _check_password(sso: Any, password: str) -> str | None:
    """None when ``password`` is the signed-in user's; else the error to show."""
    identity = db().get(Identity, sso.sub)
    if identity is None:
        return str(_("Wrong password."))
    try:
        user = _authenticate_counted(lockout.Account(identity.username, identity.sub), password)
    except dir_errors.DirectoryError as exc:
        message, reason = signin._login_error(exc)
        if isinstance(exc, dir_errors.InvalidCredentials):
            message = _("Wrong password.")
        _record(
            "mfa.reauth_failed", outcome="failure", actor=sso.sub, subject=sso.sub, details={"reason": reason}
        )
        return str(message)
    if user.id != sso.sub:
        return str(_("Wrong password."))
    session[_REAUTH_KEY] = {"sid": sso.sid, "at": clock.timestamp()}
    return None


def _second_factor_first(sso: Any) -> Any:
    """A password-only session of a user who has a second factor may not change the user's
    devices: step up first (then come back). None when the session may go on."""
    if not mfa_flow.strong_factor_missing(db(), sso.sub, sso.amr):
        return None
    settings = _settings()
    level = levels.achieved_level(settings.mfa, levels.normalise_amr(sso.amr, ["otp"]))
    session[signin.REQUIRED_KEY] = {"level": level, "key": _DEVICES, "sid": sso.sid}
    flash(_("Confirm it is you with your second factor first."))
    return redirect(url_for("mfa.choose"))


# -- enrollment --------------------------------------------------------------------------------
@bp.route("/mfa/enroll", methods=["GET", "POST"])
def enroll() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    settings = _settings()
    if not settings.mfa.self_enrollment:
        return _error_page(
            _("Setting up an authenticator"),
            _("Authenticator apps are set up by the help desk here. Please contact them."),
            403,
        )
    gate = _second_factor_first(sso)
    if gate is not None:
        return gate
    if not _reauthenticated(sso):
        form = PasswordForm()
        error = None
        if form.validate_on_submit():
            error = _check_password(sso, str(form.password.data or ""))
            if error is None:
                return redirect(url_for("mfa.enroll"))
        return render_template("sso/mfa/reauth.html", form=form, error=error, action=url_for("mfa.enroll")), (
            401 if error else 200
        )
    identity = db().get(Identity, sso.sub)
    account = (identity.username if identity else sso.sub)[:200]
    enrollment = mfa.start_enrollment(
        db(),
        settings.mfa,
        services().cipher,
        sub=sso.sub,
        account_name=account,
        issuer_label=settings.mfa.issuer_label or settings.organisation,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )
    session[_ENROLL_KEY] = {"id": enrollment.credential_id, "sid": sso.sid}
    return render_template(
        "sso/mfa/enroll.html",
        enrollment=enrollment,
        form=CodeForm(formdata=None),
        error=None,
        replacing=mfa.has_totp(db(), sso.sub),
        settings=settings.mfa,
    )


@bp.post("/mfa/enroll/confirm")
def enroll_confirm() -> Any:
    sso = current_sso()
    pending = session.get(_ENROLL_KEY) or {}
    if sso is None or pending.get("sid") != sso.sid:
        return redirect(url_for("mfa.enroll"))
    settings = _settings()
    form = CodeForm()
    error = _("Enter the code your app shows.")
    if form.validate_on_submit():
        try:
            codes = mfa.confirm_enrollment(
                db(),
                settings.mfa,
                services().cipher,
                sub=sso.sub,
                credential_id=str(pending["id"]),
                code=str(form.code.data or ""),
                ip=g.client_ip,
                user_agent=g.user_agent,
            )
        except mfa.NoAuthenticator:
            return redirect(url_for("mfa.enroll"))
        except mfa.Throttled:
            return _error_page(_("Too many wrong codes"), _("Try again later or contact the help desk."), 429)
        if codes is not None:
            session.pop(_ENROLL_KEY, None)
            # R-MFA-4: enrolling proves possession of the new authenticator, not who set it up
            # (a password is all it took). The session keeps its level; the next sign-in that
            # uses both factors reaches the higher one.
            return render_template(
                "sso/mfa/recovery_codes.html",
                codes=codes,
                flow=bool(session.get("flow")),
                level=levels.achieved_level(settings.mfa, sso.amr),
            )
        error = _("That code is not valid. Check the time on your phone and enter the current code.")
    row = mfa.pending_enrollment(db(), sso.sub, str(pending["id"]))
    if row is None:
        return redirect(url_for("mfa.enroll"))
    identity = db().get(Identity, sso.sub)
    enrollment = mfa.enrollment_view(
        services().cipher,
        row,
        account_name=(identity.username if identity else sso.sub)[:200],
        issuer_label=settings.mfa.issuer_label or settings.organisation,
    )
    return render_template(
        "sso/mfa/enroll.html",
        enrollment=enrollment,
        form=form,
        error=error,
        replacing=mfa.has_totp(db(), sso.sub),
        settings=settings.mfa,
    ), 401


# -- my security devices -----------------------------------------------------------------------
@bp.get("/mfa/devices")
def devices() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    s = db()
    return render_template(
        "sso/mfa/devices.html",
        devices=hooks.devices_for(s, sso.sub),
        has_totp=mfa.has_totp(s, sso.sub),
        can_enroll=_settings().mfa.self_enrollment,
        form=PasswordForm(formdata=None),
        current=sso,
        level=levels.achieved_level(_settings().mfa, sso.amr),
    )


def _password_gate() -> tuple[Any, str | None]:
    """(sso, error): a signed-in user who typed their password correctly just now."""
    sso = current_sso()
    if sso is None:
        abort(401)
    form = PasswordForm()
    if not form.validate_on_submit():
        return sso, _("Enter your password to confirm.")
    return sso, _check_password(sso, str(form.password.data or ""))


@bp.post("/mfa/devices/totp/remove")
def remove_totp() -> Any:
    current = current_sso()
    gate = _second_factor_first(current) if current is not None else None
    if gate is not None:
        return gate
    sso, error = _password_gate()
    if error:
        flash(error)
        return redirect(url_for("mfa.devices"))
    if mfa.remove_totp(db(), sub=sso.sub, actor=sso.sub, ip=g.client_ip, user_agent=g.user_agent):
        flash(_("The authenticator app was removed; its recovery codes no longer work."))
    return redirect(url_for("mfa.devices"))


@bp.post("/mfa/devices/recovery-codes")
def new_recovery_codes() -> Any:
    current = current_sso()
    gate = _second_factor_first(current) if current is not None else None
    if gate is not None:
        return gate
    sso, error = _password_gate()
    if error:
        flash(error)
        return redirect(url_for("mfa.devices"))
    try:
        codes = mfa.regenerate_recovery_codes(
            db(), _settings().mfa, sub=sso.sub, ip=g.client_ip, user_agent=g.user_agent
        )
    except mfa.NoAuthenticator:
        return redirect(url_for("mfa.devices"))
    return render_template("sso/mfa/recovery_codes.html", codes=codes, flow=False)
