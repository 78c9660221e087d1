"""The directory protocol. Everything above ``iam/directory`` talks to this, never to ldap3."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user as the directory knows it.

    ``id`` is the stable, never-reassigned identifier: the AD ``objectGUID`` (as a lowercase
    UUID string) or the built-in directory's UUID. It becomes the OIDC ``sub``.
    """

    id: str
    username: str  # sAMAccountName
    dn: str = ""
    upn: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    employee_number: str | None = None
    phone: str | None = None
    enabled: bool = True
    locked: bool = False
    must_change_password: bool = False
    password_expires_at: dt.datetime | None = None
    password_last_set: dt.datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Full display name, falling back to given + family name or the username."""
        if self.display_name:
            return self.display_name
        parts = [p for p in (self.given_name, self.family_name) if p]
        return " ".join(parts) if parts else self.username


@dataclass(frozen=True, slots=True)
class NewUser:
    """What is needed to create a user (joiners, demo data, tests)."""

    username: str
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    employee_number: str | None = None
    phone: str | None = None
    upn: str | None = None
    ou: str | None = None  # AD: DN of the OU to create in; None = configured default
    enabled: bool = False
    password: str | None = None
    """Initial password, set in the same write as the account (AD: unicodePwd in the add)."""
    must_change: bool = True
    """With ``password``: the user must change it at the first sign-in."""
    groups: tuple[str, ...] = ()
    """Groups (by name, they must exist) the new account is made a member of."""
    name_checked: bool = False
    """The caller has just searched the directory for ``username`` and found it free: AD skips
    its own clash search before the add (a name taken meanwhile still fails the add with
    :class:`EntryExists`)."""


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    id: str
    name: str  # sAMAccountName / cn
    dn: str = ""


@dataclass(frozen=True, slots=True)
class GroupNode:
    """A group in the membership graph."""

    dn: str
    name: str
    parents: tuple[str, ...] = ()
    """DNs of the groups this group is itself a direct member of."""
    owner: str | None = None
    """DN of the group's owner (AD ``managedBy``), if any."""


@dataclass(frozen=True)
class MembershipGraph:
    """Users under a base with their direct groups, and every group with its parents: enough to
    derive every membership, nested ones with their path, without one query per person."""

    users: list[tuple[DirectoryUser, tuple[str, ...]]]
    """Each user with the DNs of the groups they are a direct member of."""
    groups: dict[str, GroupNode]
    """Every group, by DN case-folded."""

    def group(self, dn: str) -> GroupNode | None:
        return self.groups.get(dn.casefold())

    def memberships(self, direct: Sequence[str]) -> list[tuple[GroupNode, tuple[str, ...]]]:
        """Every group reached from the ``direct`` group DNs: ``(group, via)`` where ``via`` is
        the shortest chain of group names it is reached through (empty for a direct one)."""
        seen: dict[str, tuple[GroupNode, tuple[str, ...]]] = {}
        frontier: list[tuple[GroupNode, tuple[str, ...]]] = []
        for dn in direct:
            node = self.group(dn)
            if node is not None and node.dn.casefold() not in seen:
                seen[node.dn.casefold()] = (node, ())
                frontier.append((node, ()))
        while frontier:
            nxt: list[tuple[GroupNode, tuple[str, ...]]] = []
            for node, via in frontier:
                for parent_dn in node.parents:
                    parent = self.group(parent_dn)
                    if parent is None or parent.dn.casefold() in seen:
                        continue
                    item = (parent, (*via, node.name))
                    seen[parent.dn.casefold()] = item
                    nxt.append(item)
            frontier = nxt
        return list(seen.values())


def lookup_key(*, username: str | None, upn: str | None, employee_number: str | None) -> tuple[str, str]:
    """The one identifier ``find_user`` was given, as (``username|upn|employee_number``, value)."""
    given = [
        (name, value)
        for name, value in (("username", username), ("upn", upn), ("employee_number", employee_number))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError("find_user needs exactly one of username, upn, employee_number")
    return given[0]


@dataclass(frozen=True)
class PasswordPolicy:
    """A password policy the directory itself enforces: the domain's, or a fine-grained one (PSO).

    Durations are ``None`` when the directory says "never"; ``lockout_threshold`` 0 = no lockout."""

    name: str
    """``domain`` for the domain-wide policy, else the PSO's name."""
    min_length: int
    complexity: bool
    """AD complexity: three of four classes, and not the account name or parts of the full name."""
    history_count: int
    max_age: dt.timedelta | None
    min_age: dt.timedelta
    lockout_threshold: int
    lockout_window: dt.timedelta
    lockout_duration: dt.timedelta | None
    """``None``: locked until an administrator unlocks."""
    reversible_encryption: bool = False
    precedence: int | None = None
    """For PSOs: lower wins."""
    applies_to: tuple[str, ...] = ()
    """For PSOs: DNs of the users and groups it applies to."""


@runtime_checkable
class Directory(Protocol):
    """A source of users, groups and passwords (Active Directory or the built-in directory)."""

    kind: str

    def ping(self) -> None:
        """Raise :class:`DirectoryUnavailable` unless the directory answers."""

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """Verify a password. ``username`` may be a sAMAccountName or a UPN.

        Raises InvalidCredentials (also for unknown users), PasswordExpired, MustChangePassword,
        AccountDisabled, AccountLocked, AccountExpired, LogonNotPermitted, DirectoryUnavailable.
        """

    def find_login(self, username: str) -> DirectoryUser | None:
        """The account whose password :meth:`authenticate` would check for ``username``
        (sAMAccountName or UPN, as the directory compares them), found with the service
        account: never a bind, nothing counted against the account. None: no such account."""

    def get_user(self, user_id: str) -> DirectoryUser | None:
        """By stable id (objectGUID / local UUID)."""

    def find_user(
        self,
        *,
        username: str | None = None,
        upn: str | None = None,
        employee_number: str | None = None,
    ) -> DirectoryUser | None:
        """By exactly one of sAMAccountName, userPrincipalName or employeeNumber."""

    def find_users_by(self, attribute: str, values: Sequence[str]) -> list[DirectoryUser]:
        """Users whose directory ``attribute`` (AD name: ``mail``, ``employeeNumber``,
        ``altSecurityIdentities``…) equals one of ``values`` (case-insensitively, as AD compares
        these). The built-in directory knows ``sAMAccountName``, ``userPrincipalName``,
        ``mail`` and ``employeeNumber`` and finds nobody by other attributes."""

    def search_users(self, *, query: str | None = None, page_size: int = 500) -> Iterator[DirectoryUser]:
        """All users (paged), optionally those whose username, UPN, display/given/family name
        or mail contains ``query``, or whose employee number is ``query`` (AD: exactly; the
        built-in directory: contains)."""

    def user_groups(self, user_id: str, *, nested: bool = True) -> list[str]:
        """Names of the groups the user belongs to (transitively when ``nested``), sorted."""

    def group_members(self, group: str, *, nested: bool = True) -> list[DirectoryUser]:
        """Users in the group named ``group`` (transitively when ``nested``)."""

    def get_group(self, group: str) -> DirectoryGroup | None: ...

    def create_group(self, name: str, *, ou: str | None = None) -> DirectoryGroup: ...

    def create_user(self, new: NewUser) -> DirectoryUser: ...

    def set_password(self, user_id: str, password: str, *, must_change: bool) -> None:
        """Administrator reset; ``must_change`` forces a change at the next sign-in."""

    def change_password(self, username: str, old_password: str, new_password: str) -> None:
        """The user's own change; raises PasswordRejected with the directory's reason."""

    def enable(self, user_id: str) -> None: ...

    def disable(self, user_id: str) -> None: ...

    def unlock(self, user_id: str) -> None: ...

    def add_member(self, group: str, user_id: str) -> None: ...

    def add_members(self, group: str, users: Sequence[DirectoryUser]) -> list[str]:
        """Make every one of ``users`` a member of ``group`` in as few writes as the directory
        allows (AD: one modify per 100 members, by the DNs given). Members already in the group
        are fine. A member that no longer exists does not stop the others: the ids of those
        that could not be added because they are gone are returned. Raises NoSuchEntry when
        the group is missing, DirectoryUnavailable as every write does."""

    def remove_member(self, group: str, user_id: str) -> None: ...

    def move_user(self, user_id: str, ou: str) -> DirectoryUser:
        """Move the account into the OU whose DN is ``ou`` (a mover to another department). The
        entry keeps its id, username, groups and password; returns it as it is now (new DN).
        Moving to where it already is changes nothing."""

    def rename_user(
        self, user_id: str, *, given_name: str, family_name: str, display_name: str | None = None
    ) -> DirectoryUser:
        """A change of name (e.g. on marriage): given name, surname and display name, and the
        entry's name in the directory tree (AD: the CN) follow. The username never changes
        (R-JML-3). Returns the account as it is now."""

    def delete_user(self, user_id: str) -> None:
        """Remove the entry (tests and demo only; leavers are disabled, never deleted)."""

    def membership_graph(self, *, base_dn: str | None = None) -> MembershipGraph:
        """Users under ``base_dn`` (default: the whole directory) with their direct groups, and
        every group with its parents and owner — two paged searches for the whole population."""

    def password_policies(self) -> list[PasswordPolicy]:
        """The directory's own password policies: the domain's first, then fine-grained ones by
        precedence. Empty for the built-in directory (our profile is its only policy)."""
