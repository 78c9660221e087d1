"""The sign-in pages: authorization, login, password change, consent, logout."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import (
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam import audit, clock, lockout
from iam.directory import errors as dir_errors
from iam.directory.base import DirectoryUser
from iam.identities import upsert_identity
from iam.passwords import service as passwords
from iam.web import db, read_session, services, write_now
from sso import service
from sso.forms import LoginForm
from sso.mfa import flow as mfa_flow
from sso.mfa import levels
from sso.models import Client, Consent
from sso.server import OAuthClient, OAuthUser, load_client
from sso.views import policy as policy_views
from sso.views import portal as portal_views
from sso.views.common import (
    _error_page,
    _record,
    _set_session_cookie,
    _settings,
    bp,
    current_sso,
    local_path,
    server,
)


def _flow_key() -> str:
    return hashlib.sha256(request.query_string).hexdigest()[:32]


@bp.get("/authorize")
def authorize() -> Any:
    srv = server()
    if not request.args.get("redirect_uri"):
        # OpenID Connect requires it; without it nothing can be checked or returned
        return _error_page(
            _("The application's sign-in request is invalid"), _("The request has no redirect_uri.")
        )
    try:
        grant = srv.get_consent_grant(end_user=None)
    except OAuth2Error as err:
        if getattr(err, "redirect_uri", None):
            return srv.handle_error_response(srv.create_oauth2_request(None), err)
        _record(
            "authorize.refused",
            outcome="failure",
            client_id=request.args.get("client_id"),
            details={"error": err.error, "reason": err.description or ""},
        )
        return _error_page(_("The application's sign-in request is invalid"), err.description or err.error)
    except ValueError:  # authlib refuses to build an error naming characters OAuth forbids
        _record(
            "authorize.refused",
            outcome="failure",
            client_id=(request.args.get("client_id") or "")[:128] or None,
            details={"error": "invalid_request", "reason": "characters not allowed in a parameter"},
        )
        return _error_page(
            _("The application's sign-in request is invalid"),
            _("A parameter holds characters that OAuth does not allow (RFC 6749 Appendix A)."),
        )
    client: OAuthClient = grant.client
    redirect_uri = grant.redirect_uri

    def fail(error: str, description: str = "") -> Any:
        params = [("error", error)]
        if description:
            params.append(("error_description", description))
        if request.args.get("state"):
            params.append(("state", request.args["state"]))
        return redirect(add_params_to_uri(redirect_uri, params))

    prompt = set(request.args.get("prompt", "").split())
    if "none" in prompt and len(prompt) > 1:
        return fail("invalid_request", "prompt=none cannot be combined with other values")
    sso = current_sso()
    fresh = session.get("fresh_login") == _flow_key() and sso is not None
    needs_login = sso is None
    if sso is not None and not fresh:
        if "login" in prompt:
            needs_login = True
        max_age = request.args.get("max_age")
        if max_age is not None:
            try:
                age = int(max_age)
            except ValueError:
                return fail("invalid_request", "max_age must be a number of seconds")
            if (clock.now() - sso.auth_time).total_seconds() > age:
                needs_login = True

    def sign_in() -> Any:
        if "none" in prompt:
            return fail("login_required")
        # a fresh sign-in is due: whatever comes next starts a new session, never a step-up
        session.pop(STEP_UP_KEY, None)
        session.pop(REQUIRED_KEY, None)
        session["flow"] = {
            "query": request.query_string.decode(),
            "key": _flow_key(),
            "client": client.client_id,
        }
        session.pop("fresh_login", None)
        return redirect(url_for("sso.login"))

    if needs_login:
        return sign_in()
    assert sso is not None
    session.pop("fresh_login", None)
    row = client.row
    refused = portal_views.require_assignment(row, sso, prompt, fail)
    if refused is not None:
        return refused
    stronger = _require_level(row, sso, prompt, fail)
    if stronger is not None:
        return stronger
    if policy_views.pending_for_current():
        # R-SSO-6: the current security policy is accepted before the first code or token
        if "none" in prompt:
            return fail("interaction_required", "The security policy must be accepted first.")
        session["flow"] = {
            "query": request.query_string.decode(),
            "key": _flow_key(),
            "client": row.client_id,
        }
        return redirect(url_for("sso.acknowledge"))
    scope = grant.request.payload.scope or ""
    if row.require_consent:
        consent = db().get(Consent, (sso.sub, row.client_id))
        if consent is None or not set(scope.split()) <= set(consent.scope.split()) or "consent" in prompt:
            if "none" in prompt:
                return fail("consent_required")
            session["flow"] = {
                "query": request.query_string.decode(),
                "key": _flow_key(),
                "client": row.client_id,
            }
            return redirect(url_for("sso.consent"))
    if not service.link_client(db(), sso, row.client_id):
        return sign_in()  # the session ended (a logout elsewhere) since it was read
    ctx = service.AuthContext.of(sso)
    return srv.create_authorization_response(grant=grant, grant_user=OAuthUser(ctx))


REQUIRED_KEY = "mfa_required"
"""Flask-session key: the level the pending authorization needs ({level, key})."""


def _require_level(row: Client, sso: Any, prompt: set[str], fail: Any) -> Any:
    """R-MFA-4: the level this authorization needs — the client's minimum, the request's
    ``acr_values``, the user's groups' — or a step-up prompt (never a silent downgrade)."""
    settings = _settings()
    groups: list[str] = []
    if settings.mfa.group_levels:
        try:
            groups = services().directory.user_groups(sso.sub)
        except dir_errors.DirectoryError:
            return _error_page(
                _("Sign-in is unavailable right now. Please try again in a few minutes."),
                _("The directory could not be asked which groups you belong to."),
                503,
            )
    required = mfa_flow.required_level(
        settings,
        client_level=row.require_acr,
        acr_values=request.args.get("acr_values"),
        groups=groups,
    )
    achieved = levels.achieved_level(settings.mfa, sso.amr)
    if required is None or levels.meets(settings.mfa, achieved, required):
        return None
    if "none" in prompt:
        return fail("interaction_required", "A stronger sign-in is required.")
    session["flow"] = {
        "query": request.query_string.decode(),
        "key": _flow_key(),
        "client": row.client_id,
    }
    session[REQUIRED_KEY] = {"level": required, "key": _flow_key()}
    _record(
        "login.step_up_required",
        actor=sso.sub,
        subject=sso.sub,
        client_id=row.client_id,
        details={"required": required, "achieved": achieved, "sid": sso.sid},
    )
    return redirect(url_for("mfa.choose"))


def _resume() -> Any:
    flow = session.get("flow")
    if not flow:
        if policy_views.pending_for_current():  # R-SSO-6: shown right after signing in
            return redirect(url_for("sso.acknowledge"))
        back = local_path(str(session.pop("return_to", "") or ""))  # a page of ours sent here
        if back:
            return redirect(back)
        return redirect(url_for("sso.account"))
    session["fresh_login"] = flow["key"]
    session.pop("flow", None)
    return redirect(url_for("sso.authorize") + "?" + flow["query"])


def _flow_client_name() -> str | None:
    flow = session.get("flow")
    if not flow:
        return None
    row = load_client(flow.get("client"))  # the cached registration: no database, no write lock
    return row.name if row else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    error: str | None = None
    reason = ""
    if form.validate_on_submit():
        username = str(form.username.data or "").strip()
        directory = services().directory
        try:
            with _attempt(username):
                user = directory.authenticate(username, str(form.password.data or ""))
        except (dir_errors.PasswordExpired, dir_errors.MustChangePassword) as exc:
            reason = "expired" if isinstance(exc, dir_errors.PasswordExpired) else "must_change"
            return _require_change(username, reason)
        except dir_errors.DirectoryError as exc:
            error, reason = _login_error(exc)
            _record(
                "login.failed",
                outcome="failure",
                actor=username,
                severity=audit.Severity.SIGNIFICANT
                if reason in ("locked", "disabled", "throttled")
                else audit.Severity.NORMAL,
                details={"reason": reason},
            )
        else:
            expiry = passwords.effective_expiry(services().password_profile, user, clock.now())
            if expiry.expired:
                # our profile's maximum age (R-PW-1) ends before AD's: the change is forced here
                return _require_change(username, "expired")
            if expiry.warn and expiry.expires_at is not None:
                session["pw_expiry_warning"] = expiry.expires_at.isoformat()
            return _complete_login(user, amr=["pwd"])
    elif request.method == "POST":
        error = _("Enter your username and password.")
    status = 401 if error and request.method == "POST" else 200
    if reason == "directory_unavailable":
        status = 503  # not the person's fault: try again (issue 17)
    resp = make_response(
        render_template("sso/login.html", form=form, error=error, client_name=_flow_client_name()), status
    )
    if status == 503:
        resp.headers["Retry-After"] = str(services().settings.server.retry_after)
    return resp


REFUSED = _l(
    "Wrong username or password, or too many failed attempts. Try again later or contact the help desk."
)
"""The one answer to a refused password check (see :func:`_login_error`)."""


class LockedOut(dir_errors.DirectoryError):
    """The provider's own lockout (R-PW-6): the directory is not even asked."""


def _require_change(username: str, reason: str) -> Any:
    _record("login.password_change_required", outcome="failure", actor=username, details={"reason": reason})
    session["pwchange"] = {"username": username, "reason": reason}
    return redirect(url_for("sso.change_password"))


@contextmanager
def _attempt(username: str) -> Iterator[None]:
    """One password check against the directory, counted by the provider's lockout (R-PW-6).

    The attempt is registered (and committed) before the directory is asked, so parallel
    attempts never reach AD more often than our threshold allows; its outcome is counted after.
    The counter is the account's, whichever of its names was typed (issue 20): the name is
    resolved once, with the directory's service account (a search, never a bind).
    Raises LockedOut without asking for the password while the account or address is locked."""
    settings = services().settings.lockout
    account = lockout.account_names(services()).account(username)
    with services().transaction() as s:
        if lockout.begin_attempt(s, settings, account=account, ip=g.client_ip).locked:
            raise LockedOut("locked by the provider")
    outcome = lockout.Outcome.OTHER
    try:
        yield
        outcome = lockout.Outcome.SUCCESS
    except (dir_errors.PasswordExpired, dir_errors.MustChangePassword):
        outcome = lockout.Outcome.SUCCESS  # the password was right
        raise
    except dir_errors.InvalidCredentials:
        outcome = lockout.Outcome.FAILURE
        raise
    finally:
        # at once, like the start: the count stands whatever the request does next, and on
        # SQLite the write lock is not held through the rest of the sign-in
        with write_now() as s:
            lockout.finish_attempt(
                s, settings, account=account, ip=g.client_ip, user_agent=g.user_agent, outcome=outcome
            )


def _login_error(exc: Exception) -> tuple[str, str]:
    """The words for the person, and the precise reason for the audit trail only.

    A wrong password, a name that is no account, our lock and the directory's own lock (AD
    775, which AD answers whether or not the password is right) get the same words — and the
    pages the same status — so nothing tells which names exist or are locked."""
    if isinstance(exc, LockedOut):
        return str(REFUSED), "throttled"
    if isinstance(exc, dir_errors.AccountLocked):
        return str(REFUSED), "locked"
    if isinstance(exc, dir_errors.AccountDisabled):
        return _("Your account is disabled. Contact the help desk."), "disabled"
    if isinstance(exc, dir_errors.AccountExpired):
        return _("Your account has expired. Contact the help desk."), "account_expired"
    if isinstance(exc, dir_errors.LogonNotPermitted):
        return _("You may not sign in at this time or from this place."), "not_permitted"
    if isinstance(exc, dir_errors.DirectoryUnavailable):
        return _(
            "Sign-in is unavailable right now: the directory cannot be reached. Please try again in a moment."
        ), "directory_unavailable"
    return str(REFUSED), "bad_credentials"


def _complete_login(user: Any, *, amr: list[str]) -> Any:
    """The password was right: a second factor if the user has one, else the session. A
    password is a first factor: it starts a new session (fresh ``auth_time``), never a step-up."""
    session.pop(STEP_UP_KEY, None)
    return complete_authentication(user, amr=amr, method="password")


PENDING_KEY = "mfa_pending"
"""Flask-session key: a first factor proven, the second awaited ({sub, amr, at, method})."""
STEP_UP_KEY = "mfa_step_up"
"""Flask-session key: the browser is raising its own SSO session's level ({sid, at})."""


def complete_authentication(user: DirectoryUser, *, amr: Sequence[str], method: str = "") -> Any:
    """Finish a sign-in of ``user`` that the caller has verified, with RFC 8176 ``amr`` values
    (``("pwd",)``, ``("otp",)``, ``("sc", "hwk")`` …); return the Flask response to send.

    - Step-up: if this browser's SSO session belongs to ``user`` and the step-up page started a
      step-up for it, the session is raised in place (same ``sid``): its ``amr`` are merged
      with these and its ``acr`` recomputed.
    - Second factor: if a first factor of ``user`` awaits its second (``PENDING_KEY``), the
      ``amr`` are merged with the first factor's and a new SSO session starts.
    - Otherwise a new SSO session starts with these ``amr`` (this browser's previous session,
      of whatever user, ends). A password-only sign-in of a user who has a confirmed second
      factor is held back until the second factor is given (``mfa.require_enrolled``).

    The achieved level (ID token ``acr``) follows from the ``amr`` and ``mfa.levels``. Then
    the pending authorization request continues exactly as after a password sign-in, where
    a level the request, the client or the user's groups still demand leads to the step-up
    page. ``method`` names the sign-in method in the audit trail.
    """
    settings = _settings()
    now_ts = clock.timestamp()
    sso = current_sso()
    step_up = session.pop(STEP_UP_KEY, None)
    if (
        sso is not None
        and sso.sub == user.id
        and step_up
        and step_up.get("sid") == sso.sid
        and now_ts - int(step_up.get("at", 0)) <= settings.mfa.reauth_seconds
    ):
        before = list(sso.amr)
        sso.amr = levels.normalise_amr(sso.amr, amr)
        sso.acr = levels.achieved_level(settings.mfa, sso.amr)
        _record(
            "login.step_up",
            severity=audit.Severity.SIGNIFICANT,
            actor=user.id,
            subject=user.id,
            details={"method": method, "amr_before": before, "amr": sso.amr, "acr": sso.acr, "sid": sso.sid},
        )
        session.pop(PENDING_KEY, None)
        required = session.get(REQUIRED_KEY) or {}
        if required.get("key") == "devices":
            session.pop(REQUIRED_KEY, None)  # asked for by "my security devices" or the console
            return redirect(local_path(str(required.get("next") or "")) or url_for("mfa.devices"))
        return _resume()
    pending = session.pop(PENDING_KEY, None)
    first: list[str] = []
    if (
        pending
        and pending.get("sub") == user.id
        and now_ts - int(pending.get("at", 0)) <= settings.mfa.reauth_seconds
    ):
        first = list(pending.get("amr") or [])
    achieved = levels.normalise_amr(first, amr)
    if mfa_flow.second_factor_due(read_session(), settings, user.id, achieved):
        session[PENDING_KEY] = {"sub": user.id, "amr": achieved, "at": now_ts, "method": method}
        _record(
            "login.first_factor",
            actor=user.id,
            subject=user.id,
            details={"method": method, "amr": achieved},
        )
        return redirect(url_for("mfa.choose"))
    return _start_session(user, achieved, method=method)


def _start_session(user: DirectoryUser, amr: list[str], *, method: str) -> Any:
    s = db()
    settings = _settings()
    identity = upsert_identity(s, user, kind=services().directory.kind)
    identity.last_login_at = clock.now()
    old = current_sso()
    if old is not None:
        service.end_sso_session(s, old, reason="new_login", actor=user.id)
    acr = levels.achieved_level(settings.mfa, amr)
    cookie, row = service.create_sso_session(
        s,
        settings,
        sub=user.id,
        acr=acr,
        amr=amr,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )
    audit.record(
        s,
        "login.succeeded",
        actor=user.id,
        subject=user.id,
        ip=g.client_ip,
        user_agent=g.user_agent,
        details={"username": user.username, "amr": amr, "acr": acr, "method": method, "sid": row.sid},
    )
    g.sso_session = row
    expires = session.pop("pw_expiry_warning", None)
    if expires:
        # warn before going on (R-PW-1 warning period); the flow waits for "continue"
        at = dt.datetime.fromisoformat(expires)
        resp = make_response(
            render_template("sso/password_expiring.html", expires_at=at, days=max(0, (at - clock.now()).days))
        )
        session["pwchange"] = {"username": user.username, "reason": "expiring"}
    else:
        resp = make_response(_resume())
    _set_session_cookie(resp, cookie)
    return resp


@bp.get("/login/continue")
def login_continue() -> Any:
    """Go on with the pending authorization after the expiry warning."""
    if current_sso() is None:
        return redirect(url_for("sso.login"))
    session.pop("pwchange", None)
    return _resume()
