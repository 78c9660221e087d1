"""Second-factor pages (``/mfa/…``) and the administrators' JSON API (``/api/v1/mfa/…``).

- ``/mfa/``: choose a method (after the password, or to raise the level of the SSO session
  when an application needs more: step-up); ``/mfa/code`` and ``/mfa/recovery``: code entry;
- ``/mfa/enroll`` and ``/mfa/devices`` (enrollment, "my security devices"): in
  :mod:`sso.views.mfa_devices`, on the same blueprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam import clock
from iam.web import db, services
from sso.mfa import api as mfa_api
from sso.mfa import flow as mfa_flow
from sso.mfa import hooks, levels
from sso.mfa import service as mfa
from sso.mfa.forms import CodeForm
from sso.models import Client
from sso.views import signin
from sso.views.common import _error_page, _record, _settings, current_sso

bp = Blueprint("mfa", __name__)

_REAUTH_KEY = "mfa_reauth"
DEVICES_KEY = _DEVICES = "devices"
"""REQUIRED_KEY "key" of a step-up of this browser's own session (the devices pages, the admin
console): it comes back to REQUIRED_KEY "next" (default: the devices page)."""
_ENROLL_KEY = "mfa_enroll"


# -- this package's methods and devices --------------------------------------------------------
def _totp_devices(s: Any, sub: str) -> list[hooks.Device]:
    row = mfa.confirmed_totp(s, sub)
    if row is None:
        return []
    left = mfa.recovery_codes_left(s, sub)
    return [
        hooks.Device(
            kind="totp",
            label=str(_l("Authenticator app")),
            created_at=row.confirmed_at,
            last_used_at=row.last_used_at,
            detail=str(_l("%(left)s recovery codes left", left=left)),
            remove_endpoint="mfa.remove_totp",
        )
    ]


hooks.register_method(
    hooks.SignInMethod(
        key="totp",
        label=_l("Code from your authenticator app"),
        endpoint="mfa.code",
        amr=("otp",),
        available=mfa.has_totp,
        order=20,
    )
)
hooks.register_method(
    hooks.SignInMethod(
        key="recovery",
        label=_l("One of your recovery codes"),
        endpoint="mfa.recovery",
        amr=("otp",),
        available=mfa.has_recovery_codes,
        order=90,
    )
)
hooks.register_device_source(_totp_devices)


# -- where the browser is in the flow ----------------------------------------------------------
@dataclass(frozen=True)
class _Ctx:
    sub: str
    mode: str  # "pending": after the first factor; "step_up": raising an SSO session
    required: str | None
    have: list[str]


def _context() -> _Ctx | None:
    """The user this second factor is for, or None (nothing is awaiting one)."""
    now = clock.timestamp()
    pending = session.get(signin.PENDING_KEY)
    if pending and now - int(pending.get("at", 0)) <= _settings().mfa.reauth_seconds:
        return _Ctx(str(pending["sub"]), "pending", None, list(pending.get("amr") or []))
    sso = current_sso()
    req = session.get(signin.REQUIRED_KEY)
    flow = session.get("flow")
    for_flow = bool(req and flow and req.get("key") == flow.get("key"))
    for_devices = bool(req and req.get("key") == _DEVICES and req.get("sid") == getattr(sso, "sid", None))
    if sso is not None and req and (for_flow or for_devices):
        # lets any method's page (ours, the card's) raise this session in place
        session[signin.STEP_UP_KEY] = {"sid": sso.sid, "at": now}
        return _Ctx(sso.sub, "step_up", str(req["level"]), list(sso.amr))
    return None


def _methods(ctx: _Ctx) -> list[hooks.SignInMethod]:
    if ctx.mode == "step_up" and ctx.required:
        return mfa_flow.step_up_methods(db(), _settings(), ctx.sub, ctx.have, ctx.required)
    return [m for m in hooks.methods() if m.second_factor and m.available(db(), ctx.sub)]


def _nowhere() -> Any:
    return redirect(url_for("sso.account") if current_sso() else url_for("sso.login"))


def _finish(ctx: _Ctx, *, method: str) -> Any:
    user = services().directory.get_user(ctx.sub)
    if user is None or not user.enabled or user.locked:
        session.pop(signin.PENDING_KEY, None)
        return _error_page(_("Sign-in failed"), _("Your account cannot sign in. Contact the help desk."), 403)
    return signin.complete_authentication(user, amr=("otp",), method=method)


# -- choose a method / step-up -----------------------------------------------------------------
@bp.get("/mfa/")
def choose() -> Any:
    ctx = _context()
    if ctx is None:
        return _nowhere()
    methods = _methods(ctx)
    if not methods:
        return _unreachable(ctx)
    if len(methods) == 1 or not request.args.get("all"):
        return redirect(url_for(methods[0].endpoint))
    return render_template(
        "sso/mfa/choose.html", methods=methods, ctx=ctx, client_name=signin._flow_client_name()
    )


def _unreachable(ctx: _Ctx) -> Any:
    """R-MFA-4: the level cannot be reached with what the user has — say so, never downgrade."""
    settings = _settings()
    can_enroll = (
        ctx.mode == "step_up"
        and ctx.required is not None
        and not mfa.has_totp(db(), ctx.sub)
        and mfa_flow.reachable_by_enrolling(settings, ctx.have, ctx.required)
    )
    _record(
        "login.step_up_unreachable",
        outcome="failure",
        actor=ctx.sub,
        subject=ctx.sub,
        details={"required": ctx.required, "achieved": levels.achieved_level(settings.mfa, ctx.have)},
    )
    return render_template(
        "sso/mfa/unreachable.html",
        level=ctx.required,
        can_enroll=can_enroll,
        client_name=signin._flow_client_name(),
    ), 403


@bp.get("/mfa/cancel")
def cancel() -> Any:
    """Give up the step-up: back to the application with ``access_denied``."""
    flow = session.pop("flow", None)
    session.pop(signin.REQUIRED_KEY, None)
    session.pop(signin.STEP_UP_KEY, None)
    if not flow:
        return _nowhere()
    row = db().get(Client, flow.get("client", ""))
    query = parse_qs(flow["query"])
    uri = query.get("redirect_uri", [""])[0]
    if row is None or uri not in row.redirect_uris:
        return _nowhere()
    state = query.get("state", [None])[0]
    params = [
        ("error", "access_denied"),
        ("error_description", "The required level of assurance was not reached."),
    ] + ([("state", state)] if state else [])
    return redirect(add_params_to_uri(uri, params))


# -- code entry --------------------------------------------------------------------------------
def _code_page(kind: str) -> Any:
    ctx = _context()
    if ctx is None:
        return _nowhere()
    method = next((m for m in _methods(ctx) if m.key == kind), None)
    if method is None:
        return redirect(url_for("mfa.choose"))
    form = CodeForm()
    error: str | None = None
    status = 200
    if form.validate_on_submit():
        settings = _settings()
        code = str(form.code.data or "")
        try:
            if kind == "totp":
                ok = mfa.verify_totp(
                    db(),
                    settings.mfa,
                    services().cipher,
                    sub=ctx.sub,
                    code=code,
                    ip=g.client_ip,
                    user_agent=g.user_agent,
                )
            else:
                ok = mfa.use_recovery_code(
                    db(), settings.mfa, sub=ctx.sub, code=code, ip=g.client_ip, user_agent=g.user_agent
                )
        except mfa.Throttled:
            error, status = _("Too many wrong codes. Try again later or contact the help desk."), 429
        except mfa.NoAuthenticator:
            return redirect(url_for("mfa.choose"))
        else:
            if ok:
                if kind == "recovery":
                    left = mfa.recovery_codes_left(db(), ctx.sub)
                    flash(_("Recovery code accepted. You have %(left)s left.", left=left))
                return _finish(ctx, method=kind)
            error, status = _("That code is not valid. Each code can be used only once."), 401
    elif request.method == "POST":
        error, status = _("Enter the code."), 400
    return render_template(
        f"sso/mfa/{'code' if kind == 'totp' else 'recovery'}.html",
        form=form,
        error=error,
        others=len(_methods(ctx)) > 1,
        ctx=ctx,
        client_name=signin._flow_client_name(),
    ), status


@bp.route("/mfa/code", methods=["GET", "POST"])
def code() -> Any:
    return _code_page("totp")


@bp.route("/mfa/recovery", methods=["GET", "POST"])
def recovery() -> Any:
    return _code_page("recovery")


@bp.get("/mfa/continue")
def resume() -> Any:
    """After enrollment or new recovery codes: on with the pending authorization, if any."""
    return signin._resume()


# the administrators' JSON API (/api/v1/mfa/…) is a nested blueprint
bp.register_blueprint(mfa_api.bp)
