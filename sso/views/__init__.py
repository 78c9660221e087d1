"""The provider's HTTP surface, split by concern: ``endpoints`` (OAuth/OIDC protocol),
``signin`` (authorization and the sign-in pages), ``password`` (the change page), ``consent``,
``logout``, ``account`` (the user's own sessions).
Thin: the rules live in ``sso.service``, ``sso.clients`` and the directory."""

from __future__ import annotations

from typing import Any

from sso.views import (  # noqa: F401 — importing registers the routes
    account,
    consent,
    endpoints,
    logout,
    mfa,
    mfa_devices,
    password,
    policy,
    portal,
    signin,
)
from sso.views.common import bp

__all__ = ["bp", "exempt_from_csrf", "mfa"]


def exempt_from_csrf(csrf: Any) -> None:
    """Client-authenticated endpoints carry no browser session; /logout validates its own form."""
    for view in (endpoints.token, endpoints.introspect, endpoints.revoke, endpoints.userinfo, logout.logout):
        csrf.exempt(view)
