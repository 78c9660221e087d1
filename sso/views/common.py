"""Shared plumbing of the provider's views: blueprint, SSO-session cookie, audit helper."""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    request,
)

from iam import audit
from iam.pages import error_page
from iam.web import SignedIn, db, reader, services
from sso import service
from sso.models import SsoSession
from sso.server import IamAuthorizationServer

log = logging.getLogger("sso.views")
bp = Blueprint("sso", __name__)

ACR_PASSWORD = "password"  # noqa: S105 — the name of an assurance level
CLIENT_ENDPOINTS = ("sso.token", "sso.introspect", "sso.revoke")


def server() -> IamAuthorizationServer:
    return current_app.extensions["sso.server"]  # type: ignore[no-any-return]


def _settings() -> Any:
    return services().settings


def _cookie_name() -> str:
    return str(_settings().session.cookie_name)


def local_path(value: str | None) -> str | None:
    """``value`` when it is a path on this site (``/admin/…``), else None: never another site
    (``//host``, ``/\\host``, whitespace or control characters a browser would strip)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return None
    if any(c == "\\" or c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    return value


def current_sso() -> SsoSession | None:
    if "sso_session" not in g:
        cookie = request.cookies.get(_cookie_name())
        row = service.find_sso_session(reader(), db(), _settings(), cookie)
        if row is not None and not server().user_is_active(row.sub):
            service.end_sso_session(db(), row, reason="account_inactive", actor="system")
            row = None
        g.sso_session = row
    return g.sso_session  # type: ignore[no-any-return]


def _set_session_cookie(response: Response, value: str) -> None:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    response.set_cookie(_cookie_name(), value, httponly=True, secure=secure, samesite="Lax", path="/")


def _clear_session_cookie(response: Response) -> None:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    response.delete_cookie(_cookie_name(), path="/", secure=secure, httponly=True, samesite="Lax")


def _record(event: str, **kw: Any) -> int:
    """An audit event of this request: caller's address and user agent filled in (R-AUD-1)."""
    kw.setdefault("ip", g.client_ip)
    kw.setdefault("user_agent", g.user_agent)
    return audit.record(db(), event, **kw)


def _error_page(title: str, message: str, status: int = 400) -> Any:
    return error_page(status, title=title, message=message)


# -- discovery and keys -----------------------------------------------------------------------


def signed_in_person() -> SignedIn | None:
    """The person signed in to this browser, with the level their sign-in reached, for the
    core (``iam.web.signed_in``: its pages, the page language, the console); None when nobody
    is, or the account is disabled."""
    from iam.models.identity import Identity
    from sso.mfa import levels

    sso = current_sso()
    if sso is None:
        return None
    identity = db().get(Identity, sso.sub)
    if identity is None or identity.disabled:
        return None
    level = levels.achieved_level(services().settings.mfa, sso.amr)
    return SignedIn(sub=sso.sub, username=identity.username, level=level)
