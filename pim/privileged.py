"""What PIM knows about privileged accounts, given to the core's registry
(:mod:`iam.privileged`) so the help desk cannot take them over (issue 11):

- a password reset through the help desk is refused for PIM admin accounts (registered, or
  named like ``pim.admin_account_format``), registered shared accounts and security officers;
- resetting the second factor of a security officer or of a role's approver needs a security
  officer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from iam import privileged
from iam.directory.base import DirectoryUser
from pim import roles
from pim.models import AdminAccount, SharedAccount
from pim.service.common import Actor, _groups_of, _same_name, is_security_officer

if TYPE_CHECKING:
    from iam.services import Services


def _named_like_admin(services: Services, username: str) -> bool:
    prefix, _, suffix = services.settings.pim.admin_account_format.partition("{username}")
    name = username.casefold()
    return (
        len(name) > len(prefix) + len(suffix)
        and name.startswith(prefix.casefold())
        and name.endswith(suffix.casefold())
    )


def _officer(services: Services, user: DirectoryUser) -> bool:
    return is_security_officer(services, Actor(sub=user.id, username=user.username))


def privileged_account(services: Services, user: DirectoryUser) -> str | None:
    if _named_like_admin(services, user.username):
        return "a PIM admin account"
    with services.reader() as session:
        admin = session.scalar(
            select(AdminAccount.username).where(
                or_(AdminAccount.account_id == user.id, AdminAccount.username == user.username)
            )
        )
        shared = session.get(SharedAccount, user.username)
    if admin is not None:
        return "a PIM admin account"
    if shared is not None:
        return "a shared administrator account kept by PIM"
    if _officer(services, user):
        return "a security officer"
    return None


def officer_only(services: Services, user: DirectoryUser) -> str | None:
    if _officer(services, user):
        return "a security officer"
    with services.reader() as session:
        every = roles.all_roles(session, services)
    groups: list[str] | None = None
    for role in every.values():
        if any(_same_name(user.username, u) for u in role.approvers):
            return f"an approver of the role {role.name}"
        if role.approver_group:
            groups = groups if groups is not None else _groups_of(services, user.id)
            if any(_same_name(g, role.approver_group) for g in groups):
                return f"an approver of the role {role.name}"
    return None


def officer_test(services: Services, sub: str) -> bool:
    user = services.directory.get_user(sub)
    return user is not None and _officer(services, user)


def register() -> None:
    privileged.register("pim", privileged_account)
    privileged.register_officer_only("pim", officer_only)
    privileged.register_officer_test("pim", officer_test)
