"""What the core's administration console asks of the sign-in package (``iam.admin.AdminAuth``):
a step-up of this browser's session that comes back to the console page, and the sign-in page
that comes back to it. Who is signed in the package says once for the whole core
(``sso.views.common.signed_in_person``)."""

from __future__ import annotations

from typing import Any

from flask import Flask, redirect, session, url_for

from iam.admin import AdminAuth, register_auth
from sso.views import signin
from sso.views.common import current_sso, local_path
from sso.views.mfa import DEVICES_KEY

RETURN_KEY = "return_to"
"""Flask-session key: a page of ours to go back to after signing in (a local path)."""


def _step_up(level: str, next_url: str) -> Any:
    sso = current_sso()
    if sso is None:
        return _sign_in(next_url)
    session[signin.REQUIRED_KEY] = {
        "level": level,
        "key": DEVICES_KEY,
        "sid": sso.sid,
        "next": local_path(next_url) or url_for("admin.home"),
    }
    return redirect(url_for("mfa.choose"))


def _sign_in(next_url: str) -> Any:
    path = local_path(next_url)
    if path:
        session[RETURN_KEY] = path
    return redirect(url_for("sso.login"))


def init_app(app: Flask) -> None:
    register_auth(app, AdminAuth(step_up=_step_up, sign_in=_sign_in))
