"""Who may see detection's pages: security officers (as every feature that knows them says,
``iam.privileged.is_security_officer``) and members of ``detect.officers_group``."""

from __future__ import annotations

from flask import g

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
    """The pages' own check (beside the console's roles) and the console's navigation."""
    return _officer_sub() is not None
