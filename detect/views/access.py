"""Who may see detection's pages: security officers (as every feature that knows them says,
``iam.privileged.is_security_officer``) and members of ``detect.officers_group``."""

from __future__ import annotations

from flask import abort, g, redirect, request, url_for

from iam.directory.errors import DirectoryError
from iam.models.identity import Identity
from iam.privileged import is_security_officer
from iam.web import db, services
from sso.views.common import current_sso


def _officer_sub() -> str | None:
    if "detect_officer" in g:
        return g.detect_officer  # type: ignore[no-any-return]
    sso = current_sso()
    allowed: str | None = None
    if sso is not None:
        if is_security_officer(services(), sso.sub):
            allowed = sso.sub
        else:
            group = services().settings.detect.officers_group
            identity = db().get(Identity, sso.sub) if group else None
            try:
                if identity is not None and group in services().directory.user_groups(sso.sub):
                    allowed = sso.sub
            except DirectoryError:
                allowed = None
    g.detect_officer = allowed
    return allowed


def may_see() -> bool:
    """For the navigation: the same check the pages apply."""
    return _officer_sub() is not None


def officer() -> str:
    """The signed-in security officer's ``sub`` (sign-in first; anyone else: 403)."""
    if current_sso() is None:
        abort(redirect(url_for("sso.login", next=request.full_path)))
    sub = _officer_sub()
    if sub is None:
        abort(403)
    return sub
