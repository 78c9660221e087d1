"""Privileged accounts: out of the help desk's reach (issue 11, R-PIM-2).

A help-desk password reset hands whoever holds ``users:write`` (or a shell with ``iam``) a
working password for the account. For a privileged account that is a takeover of the domain,
so :func:`why_privileged` names why an account is privileged, and the help-desk paths
(``iam user reset-password``, ``POST /api/v1/users/{u}/password-reset``) refuse such accounts:
their passwords change only through PIM's rotation.

What is privileged:
- members of a protected group, nested membership included (``passwords.protected_groups``,
  default Active Directory's protected groups) — checked here, in the core;
- whatever a feature package registers with :func:`register` (PIM: its admin accounts, the
  shared accounts it keeps, security officers). The core imports no feature: like the bearer
  verifier, the feature fills the registry when it is loaded.

Second factors: resetting the MFA of a security officer or an approver needs a security
officer, never the help-desk scope (``mfa:admin``). Features register who those people are
(:func:`register_officer_only`) and who is a security officer (:func:`register_officer_test`).

A directory that cannot answer denies (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from iam.directory.base import DirectoryUser

if TYPE_CHECKING:
    from iam.services import Services

PrivilegeCheck = Callable[["Services", DirectoryUser], "str | None"]
"""``check(services, user)`` → why the account is privileged (one phrase), or None."""

OfficerTest = Callable[["Services", str], bool]
"""``test(services, sub)`` → whether the person ``sub`` is a security officer."""

_checks: dict[str, PrivilegeCheck] = {}
_officer_only: dict[str, PrivilegeCheck] = {}
_officer_tests: dict[str, OfficerTest] = {}


def register(name: str, check: PrivilegeCheck) -> None:
    """Add (or replace, by ``name``) a predicate that marks accounts as privileged."""
    _checks[name] = check


def in_protected_group(services: Services, user: DirectoryUser) -> str | None:
    protected = {g.casefold(): g for g in services.settings.passwords.protected_groups}
    if not protected:
        return None
    for group in services.directory.user_groups(user.id, nested=True):  # DirectoryError: deny
        if group.casefold() in protected:
            return f"member of the protected group {group}"
    return None


def why_privileged(services: Services, user: DirectoryUser) -> str | None:
    """Why ``user`` is a privileged account, or None for an ordinary one."""
    for check in (in_protected_group, *_checks.values()):
        reason = check(services, user)
        if reason:
            return reason
    return None


def register_officer_only(name: str, check: PrivilegeCheck) -> None:
    """Add a predicate naming accounts whose second factor only a security officer may reset."""
    _officer_only[name] = check


def register_officer_test(name: str, test: OfficerTest) -> None:
    """Add a test of whether a person (``sub``) is a security officer."""
    _officer_tests[name] = test


def needs_security_officer(services: Services, user: DirectoryUser) -> str | None:
    """Why only a security officer may reset ``user``'s second factor, or None."""
    for check in _officer_only.values():
        reason = check(services, user)
        if reason:
            return reason
    return None


def is_security_officer(services: Services, sub: str | None) -> bool:
    return bool(sub) and any(test(services, str(sub)) for test in _officer_tests.values())
