"""The change-password page: self-service, and the forced change during sign-in (AD 532/773,
the profile's maximum age, an administrator reset). Our profile is checked before AD is written."""

from __future__ import annotations

from typing import Any

from flask import g, render_template, request, session
from flask_babel import gettext as _

from iam import audit, clock
from iam.directory import errors as dir_errors
from iam.directory.base import DirectoryUser
from iam.i18n import message_of
from iam.models.identity import Identity
from iam.passwords import service as passwords
from iam.web import db, reader, services
from sso import service
from sso.forms import ChangePasswordForm
from sso.views.common import _cookie_name, _record, bp
from sso.views.signin import _attempt, _complete_login, _login_error


def _check_profile(username: str, current: str, new_password: str) -> None:
    """Raise PasswordRejected listing every rule of our profile the new password breaks."""
    violations = _profile_violations(username, current, new_password)
    if violations:
        raise dir_errors.PasswordRejected(" ".join(v.localized() for v in violations))


def _profile_violations(username: str, current: str, new_password: str) -> list[Any]:
    """Our profile's verdict on the new password, once the current one is proven (so the
    messages, which may mention personal data, are shown only to the account holder).
    Reads run outside the write lock: the directory write comes next."""
    directory = services().directory
    must_change = False
    user: DirectoryUser | None
    try:
        user = directory.authenticate(username, current)
    except (dir_errors.PasswordExpired, dir_errors.MustChangePassword):
        must_change = True
        user = directory.find_login(username)
    if user is None:
        return []
    facts = passwords.identity_facts(reader(), user, must_change=must_change)
    return passwords.evaluate(
        reader(), services().password_profile, password=new_password, identity=facts, now=clock.now()
    )


def _signed_in_username() -> str | None:
    """The username of this browser's signed-in person, or None. Read only: the password
    attempt below writes in its own transaction, so this request holds no write before it."""
    sso = service.peek_sso_session(reader(), services().settings, request.cookies.get(_cookie_name()))
    if sso is None:
        return None
    identity = reader().get(Identity, sso.sub)
    if identity is None or identity.disabled:
        return None
    return identity.username


@bp.route("/password/change", methods=["GET", "POST"])
def change_password() -> Any:
    pending = session.get("pwchange") or {}
    form = ChangePasswordForm()
    # whose password: the account of the sign-in that asked for the change, else the signed-in
    # person's own; the field is then read-only and a posted name is ignored
    fixed = pending.get("username") or _signed_in_username()
    if fixed:
        form.username.data = fixed
    error: str | None = None
    field_errors: dict[str, str] = {}
    if form.validate_on_submit():
        username = str(form.username.data or "").strip()
        new_password = str(form.new_password.data or "")
        current = str(form.current_password.data or "")
        directory = services().directory
        try:
            with _attempt(username):
                _check_profile(username, current, new_password)
                directory.change_password(username, current, new_password)
        except dir_errors.PasswordRejected as exc:
            error = _("The new password was refused: %(reason)s", reason=message_of(exc))
            field_errors["new_password"] = error
            outcome = "rejected"
        except dir_errors.DirectoryError as exc:
            error, outcome = _login_error(exc)
            if outcome == "bad_credentials":
                field_errors["current_password"] = error
        else:
            outcome = ""
        if error:
            _record(
                "password.change_failed",
                outcome="failure",
                actor=username,
                details={"reason": outcome},
            )
        else:
            session.pop("pwchange", None)
            try:
                user = directory.authenticate(username, new_password)
            except dir_errors.DirectoryError as exc:
                error, _reason = _login_error(exc)
            else:
                passwords.record_password_set(
                    db(),
                    user.id,
                    new_password,
                    by_admin=False,
                    actor=user.id,
                    profile=services().password_profile,
                    ip=g.client_ip,
                )
                _record(
                    "password.changed",
                    severity=audit.Severity.SIGNIFICANT,
                    actor=user.id,
                    subject=user.id,
                    details={"reason": pending.get("reason", "self_service")},
                )
                return _complete_login(user, amr=["pwd"])
    elif request.method == "POST":
        field_errors = {name: messages[0] for name, messages in form.errors.items() if messages}
        error = next(iter(field_errors.values()), None) or _("Fill in every field.")
    return render_template(
        "sso/change_password.html",
        form=form,
        error=error,
        field_errors=field_errors,
        reason=pending.get("reason"),
        fixed=bool(fixed),
        profile=services().password_profile,
    ), (400 if error else 200)
