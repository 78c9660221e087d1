"""Sign in to the console through the test client like a browser: a person in a role's group,
at a sign-in level (the second factor is stood in for by raising the session's ``amr``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from iam.admin import Role
from iam.directory.base import DirectoryUser
from iam.services import Services
from sso.models import SsoSession
from tests.sso.helpers import PASSWORD, login, make_user

ROLE_GROUPS = {
    Role.IT_ADMIN: "iam-it-admins",
    Role.HELPDESK: "iam-helpdesk",
    Role.SECURITY_OFFICER: "iam-security-officers",
    Role.HR_OPERATOR: "iam-hr-operators",
    Role.AUDITOR: "iam-auditors",
}


def person(services: Services, *roles: Role, username: str | None = None, **kw: Any) -> DirectoryUser:
    """A built-in user in the groups of ``roles`` (groups created when missing)."""
    d = services.directory
    user = make_user(services, username or f"u{uuid.uuid4().hex[:8]}", **kw)
    for role in roles:
        group = ROLE_GROUPS[role]
        if d.get_group(group) is None:
            d.create_group(group)
        d.add_member(group, user.id)
    return user


def sign_in(client: Any, services: Services, user: DirectoryUser, *, level: str = "mfa") -> None:
    """Sign ``user`` in with the password; ``level="mfa"`` raises the session as a second
    factor would (``amr`` pwd+otp)."""
    resp = login(client, user.username, PASSWORD)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    if level != "password":
        with services.transaction() as s:
            for row in s.scalars(select(SsoSession).where(SsoSession.sub == user.id)):
                row.amr = ["pwd", "otp", "mfa"] if level == "mfa" else ["sc", "hwk", "pwd"]
                row.acr = level
