"""The user's own account: sessions."""

from __future__ import annotations

from typing import Any

from flask import (
    Flask,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from iam.models.identity import Identity
from iam.pages import NavLink, register_nav
from iam.web import db
from sso import service
from sso.forms import ConfirmForm
from sso.views.common import _clear_session_cookie, bp, current_sso


def _signed_in() -> bool:
    return current_sso() is not None


def register_navigation(app: Flask) -> None:
    """The person's own pages in the header, shown to a signed-in person (as the views check)."""
    register_nav(
        app,
        NavLink("sso.account", _l("Your account"), _signed_in, order=10),
        NavLink("mfa.devices", _l("Security devices"), _signed_in, order=20),
        NavLink("sso.change_password", _l("Change password"), _signed_in, order=30),
        NavLink("sso.logout", _l("Sign out"), _signed_in, order=1000),
    )


@bp.route("/account", methods=["GET"])
def account() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    identity = db().get(Identity, sso.sub)
    sessions = service.user_sessions(db(), sso.sub)
    return render_template(
        "sso/account.html", identity=identity, sessions=sessions, current=sso, form=ConfirmForm()
    )


@bp.post("/account/sessions/<sid>/end")
def end_session(sid: str) -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    target = next((s for s in service.user_sessions(db(), sso.sub) if s.sid == sid), None)
    if target is None:
        abort(404)
    service.end_sso_session(
        db(), target, reason="ended_by_user", actor=sso.sub, ip=g.client_ip, user_agent=g.user_agent
    )
    if target.id == sso.id:
        resp = make_response(redirect(url_for("sso.login")))
        _clear_session_cookie(resp)
        return resp
    flash(_("The session was ended."))
    return redirect(url_for("sso.account"))
