"""Active Directory: creating, changing, moving and deleting accounts and groups, and memberships."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    Connection,
)
from ldap3.utils.conv import escape_filter_chars

from iam.directory.ad.common import (
    _A,
    _CONSTRAINT_VIOLATION,
    _ENTRY_EXISTS,
    _NO_SUCH_ATTRIBUTE,
    _NO_SUCH_OBJECT,
    _NOT_ALLOWED_ON_NON_LEAF,
    _TREE_DELETE,
    _UNWILLING,
    _USER_ATTRIBUTES,
    _VALUE_EXISTS,
    GLOBAL_SECURITY_GROUP,
    UF_ACCOUNTDISABLE,
    UF_NORMAL_ACCOUNT,
    _Entry,
    _eq,
    _ldap_add,
    _ldap_delete,
    _ldap_modify,
    _ldap_modify_dn,
    _rdn,
    _same_dn,
    _split_dn,
    log,
)
from iam.directory.ad.passwords import ADPasswords
from iam.directory.base import (
    DirectoryGroup,
    DirectoryUser,
    NewUser,
)
from iam.directory.errors import (
    DirectoryError,
    EntryExists,
    NoSuchEntry,
)


class ADWrites(ADPasswords):
    """Accounts, groups and memberships."""

    def create_group(self, name: str, *, ou: str | None = None) -> DirectoryGroup:
        dn = f"CN={_rdn(name)},{ou or self.groups_ou}"

        def op(conn: Connection) -> _Entry:
            if self._group_entry(conn, name) is not None:
                raise EntryExists(f"A group named {name!r} already exists.")
            attributes = {_A["username"]: name, _A["group_type"]: str(GLOBAL_SECURITY_GROUP)}
            if not _ldap_add(conn, dn, ["top", "group"], attributes):
                if (conn.result or {}).get("result") == _ENTRY_EXISTS:
                    raise EntryExists(f"A group or user named {name!r} already exists.")
                raise self._fail(conn, "Creating the group")
            return self._group_by_name(conn, name)

        group = self._group(self._run(op))
        log.info("created group %s", group.dn)
        return group

    def create_user(self, new: NewUser) -> DirectoryUser:
        if not new.username:
            raise ValueError("a user name is required")
        upn = new.upn or f"{new.username}@{self.upn_suffix}"
        ou = new.ou or self.users_ou
        attributes: dict[str, Any] = {
            _A["username"]: new.username,
            _A["upn"]: upn,
            _A["account_control"]: str(UF_NORMAL_ACCOUNT | UF_ACCOUNTDISABLE),
        }
        if new.password is not None:
            # AD takes the password (over TLS), must-change and the account state in the add
            # itself: one round trip instead of add, password, flag and enable.
            attributes[_A["password"]] = self._encode_password(new.password)
            if new.must_change:
                attributes[_A["password_last_set"]] = "0"
            if new.enabled:
                attributes[_A["account_control"]] = str(UF_NORMAL_ACCOUNT)
        for field, value in (
            ("given_name", new.given_name),
            ("family_name", new.family_name),
            ("display_name", new.display_name),
            ("email", new.email),
            ("employee_number", new.employee_number),
            ("phone", new.phone),
        ):
            if value:
                attributes[_A[field]] = value
        names = [new.display_name or new.username]
        if new.display_name and new.display_name != new.username:
            names.append(f"{new.display_name} ({new.username})")
        object_classes = ["top", "person", "organizationalPerson", "user"]

        def op(conn: Connection) -> _Entry:
            # sAMAccountName is unique among users, groups and computers; the UPN among all
            # (skipped when the caller has just found the name free: the add itself refuses a
            # sAMAccountName taken meanwhile, which ends as EntryExists below)
            clash = f"(|{_eq(_A['username'], new.username)}{_eq(_A['upn'], upn)})"
            if not new.name_checked and self._search(conn, self.base_dn, clash, [_A["common_name"]]):
                raise EntryExists(f"A user named {new.username!r} already exists.")
            for cn in names:
                dn = f"CN={_rdn(cn)},{ou}"
                if _ldap_add(conn, dn, object_classes, attributes):
                    break
                code = (conn.result or {}).get("result")
                if code == _ENTRY_EXISTS and cn != names[-1]:
                    continue  # the CN is taken in this OU by someone else: qualify it
                if new.password is not None and self._is_password_refusal(conn):
                    raise self._password_error(conn, "Setting the initial password")
                if code in (_ENTRY_EXISTS, _CONSTRAINT_VIOLATION):
                    raise EntryExists(f"A user named {new.username!r} already exists.")
                raise self._fail(conn, "Creating the user")
            else:  # pragma: no cover - the last name either breaks or raises
                raise AssertionError("unreachable")
            for group in new.groups:
                self._add_new_member(conn, group, dn)
            if new.enabled and new.password is None:
                filler = self._random_password()
                self._modify(
                    conn,
                    dn,
                    {_A["password"]: [(MODIFY_REPLACE, [self._encode_password(filler)])]},
                    "Setting the initial password",
                )
                self._modify(
                    conn,
                    dn,
                    {
                        _A["password_last_set"]: [(MODIFY_REPLACE, ["0"])],
                        _A["account_control"]: [(MODIFY_REPLACE, [str(UF_NORMAL_ACCOUNT)])],
                    },
                    "Enabling the user",
                )
            found = self._search(conn, dn, "(objectClass=*)", _USER_ATTRIBUTES, scope=BASE)
            if not found:
                raise NoSuchEntry("The new user vanished.")
            return found[0]

        user = self._user(self._run(op))
        log.info("created user %s (%s)", user.username, user.dn)
        return user

    def _add_new_member(self, conn: Connection, group: str, user_dn: str) -> None:
        """Make the just-created ``user_dn`` a member of ``group``: one modify when the group's
        DN is known from an earlier account (no search for the group, none for the user)."""
        key = group.casefold()
        for attempt in (1, 2):
            group_dn = self._group_dns.get(key)
            if group_dn is None:
                group_dn = self._group_by_name(conn, group).dn
                self._group_dns[key] = group_dn
            if _ldap_modify(conn, group_dn, {_A["member"]: [(MODIFY_ADD, [user_dn])]}):
                return
            code = (conn.result or {}).get("result")
            if code in (_ENTRY_EXISTS, _VALUE_EXISTS):
                return
            self._group_dns.pop(key, None)
            if code != _NO_SUCH_OBJECT or attempt == 2:
                raise self._fail(conn, "Changing the group membership")

    def _set_account_control(self, user_id: str, *, disable: bool) -> None:
        def op(conn: Connection) -> str:
            user = self._user_by_id(conn, user_id)
            uac = user.number(_A["account_control"]) or UF_NORMAL_ACCOUNT
            new = uac | UF_ACCOUNTDISABLE if disable else uac & ~UF_ACCOUNTDISABLE
            if new != uac:
                changes = {_A["account_control"]: [(MODIFY_REPLACE, [str(new)])]}
                if not _ldap_modify(conn, user.dn, changes):
                    if (conn.result or {}).get("result") in (_CONSTRAINT_VIOLATION, _UNWILLING):
                        raise DirectoryError(
                            "The directory refused to enable the account; it needs a password "
                            "that meets the policy first."
                        )
                    raise self._fail(conn, "Changing the account state")
            return user.text(_A["username"]) or user.dn

        name = self._run(op)
        log.info("%s user %s", "disabled" if disable else "enabled", name)

    def enable(self, user_id: str) -> None:
        self._set_account_control(user_id, disable=False)

    def disable(self, user_id: str) -> None:
        self._set_account_control(user_id, disable=True)

    def unlock(self, user_id: str) -> None:
        def op(conn: Connection) -> str:
            user = self._user_by_id(conn, user_id)
            changes = {_A["lockout_time"]: [(MODIFY_REPLACE, ["0"])]}
            self._modify(conn, user.dn, changes, "Unlocking the user")
            return user.text(_A["username"]) or user.dn

        log.info("unlocked user %s", self._run(op))

    def _membership(self, group: str, user_id: str, *, add: bool) -> None:
        def op(conn: Connection) -> tuple[str, str]:
            entry = self._group_by_name(conn, group)
            user = self._user_by_id(conn, user_id)
            change = MODIFY_ADD if add else MODIFY_DELETE
            if not _ldap_modify(conn, entry.dn, {_A["member"]: [(change, [user.dn])]}):
                code = (conn.result or {}).get("result")
                harmless = (
                    (_ENTRY_EXISTS, _VALUE_EXISTS, _UNWILLING) if add else (_NO_SUCH_ATTRIBUTE, _UNWILLING)
                )
                # Already a member / not a member: fine, if that is really the state now.
                if code not in harmless or self._is_member(conn, entry.dn, user.dn) != add:
                    raise self._fail(conn, "Changing the group membership")
            return entry.dn, user.dn

        group_dn, user_dn = self._run(op)
        log.info("%s %s %s %s", "added" if add else "removed", user_dn, "to" if add else "from", group_dn)

    def _is_member(self, conn: Connection, group_dn: str, user_dn: str) -> bool:
        flt = f"({_A['member']}={escape_filter_chars(user_dn)})"
        return bool(self._search(conn, group_dn, flt, [_A["common_name"]], scope=BASE))

    def add_member(self, group: str, user_id: str) -> None:
        self._membership(group, user_id, add=True)

    def remove_member(self, group: str, user_id: str) -> None:
        self._membership(group, user_id, add=False)

    #: Members per modify in :meth:`add_members` (AD refuses the whole modify when one of them
    #: cannot be added; a smaller chunk keeps the one-by-one fallback short).
    MEMBERS_PER_MODIFY = 100

    def add_members(self, group: str, users: Sequence[DirectoryUser]) -> list[str]:
        """One modify per :attr:`MEMBERS_PER_MODIFY` members, by the DNs given (no search for
        any user). AD refuses such a modify whole if one member is already in the group or is
        gone: that chunk is then written one member at a time, each checked on its own."""
        todo = list({u.id: u for u in users}.values())
        if not todo:
            return []

        def op(conn: Connection) -> tuple[str, list[str], int]:
            group_dn = self._known_group_dn(conn, group)
            gone: list[str] = []
            singles = 0
            for start in range(0, len(todo), self.MEMBERS_PER_MODIFY):
                chunk = todo[start : start + self.MEMBERS_PER_MODIFY]
                dns = [u.dn for u in chunk]
                if _ldap_modify(conn, group_dn, {_A["member"]: [(MODIFY_ADD, dns)]}):
                    continue
                code = (conn.result or {}).get("result")
                if code not in (
                    _ENTRY_EXISTS,
                    _VALUE_EXISTS,
                    _UNWILLING,
                    _NO_SUCH_OBJECT,
                    _CONSTRAINT_VIOLATION,
                ):
                    raise self._fail(conn, "Changing the group membership")
                if code == _NO_SUCH_OBJECT:  # the group itself may be gone or moved
                    self._group_dns.pop(group.casefold(), None)
                    group_dn = self._known_group_dn(conn, group)
                for user in chunk:
                    singles += 1
                    if not self._add_one(conn, group_dn, user):
                        gone.append(user.id)
            return group_dn, gone, singles

        group_dn, gone, singles = self._run(op)
        log.info(
            "added %d member(s) to %s%s%s",
            len(todo) - len(gone),
            group_dn,
            f" ({singles} one by one)" if singles else "",
            f"; {len(gone)} no longer exist" if gone else "",
        )
        return gone

    def _known_group_dn(self, conn: Connection, group: str) -> str:
        key = group.casefold()
        group_dn = self._group_dns.get(key)
        if group_dn is None:
            group_dn = self._group_by_name(conn, group).dn
            self._group_dns[key] = group_dn
        return group_dn

    def _add_one(self, conn: Connection, group_dn: str, user: DirectoryUser) -> bool:
        """Add one member of a refused batch; False when the user no longer exists."""
        user_dn = user.dn
        for attempt in (1, 2):
            if _ldap_modify(conn, group_dn, {_A["member"]: [(MODIFY_ADD, [user_dn])]}):
                return True
            code = (conn.result or {}).get("result")
            if code in (_ENTRY_EXISTS, _VALUE_EXISTS, _UNWILLING) and self._is_member(
                conn, group_dn, user_dn
            ):
                return True  # already a member
            if code not in (_NO_SUCH_OBJECT, _UNWILLING, _CONSTRAINT_VIOLATION) or attempt == 2:
                raise self._fail(conn, "Changing the group membership")
            # the DN is stale (moved or renamed since) or the user is gone: find it by its id
            try:
                user_dn = self._user_by_id(conn, user.id).dn
            except NoSuchEntry:
                log.info("user %s no longer exists; not added to %s", user.id, group_dn)
                return False
        raise AssertionError("unreachable")  # pragma: no cover

    def _place(self, conn: Connection, entry: _Entry, rdns: list[str], ou: str) -> str:
        """modify DN: the entry gets the first of ``rdns`` free in ``ou``; returns its new DN."""
        for rdn in rdns:
            if _ldap_modify_dn(conn, entry.dn, rdn, new_superior=ou):
                return f"{rdn},{ou}"
            result = conn.result or {}
            if result.get("result") == _ENTRY_EXISTS and rdn != rdns[-1]:
                continue  # the name is taken there by someone else: qualify it with the username
            if result.get("result") == _NO_SUCH_OBJECT or "parent does not exist" in str(
                result.get("message")
            ):
                raise NoSuchEntry("Moving the user: there is no such OU in the directory.")
            raise self._fail(conn, "Moving or renaming the user")
        raise AssertionError("unreachable")  # pragma: no cover - the last name returns or raises

    def _read_back(self, conn: Connection, dn: str) -> _Entry:
        found = self._search(conn, dn, "(objectClass=*)", _USER_ATTRIBUTES, scope=BASE)
        if not found:
            raise NoSuchEntry("The user is not where it was moved to.")
        return found[0]

    @staticmethod
    def _qualified(entry: _Entry, name: str) -> str:
        username = entry.text(_A["username"]) or ""
        return f"CN={_rdn(f'{name} ({username})' if username else name)}"

    def move_user(self, user_id: str, ou: str) -> DirectoryUser:
        if not ou.strip():
            raise ValueError("an OU is required")

        def op(conn: Connection) -> _Entry:
            entry = self._user_by_id(conn, user_id)
            first, parent = _split_dn(entry.dn)
            if _same_dn(parent, ou):
                return entry  # already there (a retry)
            name = entry.text(_A["display_name"]) or entry.text(_A["username"]) or ""
            rdns = [first] + [r for r in [self._qualified(entry, name)] if r.casefold() != first.casefold()]
            return self._read_back(conn, self._place(conn, entry, rdns, ou))

        user = self._user(self._run(op))
        log.info("moved user %s to %s", user.username, user.dn)
        return user

    def rename_user(
        self, user_id: str, *, given_name: str, family_name: str, display_name: str | None = None
    ) -> DirectoryUser:
        display = display_name or f"{given_name} {family_name}"

        def op(conn: Connection) -> _Entry:
            entry = self._user_by_id(conn, user_id)
            changes = {
                _A["given_name"]: [(MODIFY_REPLACE, [given_name])],
                _A["family_name"]: [(MODIFY_REPLACE, [family_name])],
                _A["display_name"]: [(MODIFY_REPLACE, [display])],
            }
            self._modify(conn, entry.dn, changes, "Renaming the user")
            first, parent = _split_dn(entry.dn)
            rdns = [f"CN={_rdn(display)}", self._qualified(entry, display)]
            if any(_same_dn(first, r) for r in rdns):
                return self._read_back(conn, entry.dn)  # the entry already has the name
            return self._read_back(conn, self._place(conn, entry, rdns, parent))

        user = self._user(self._run(op))
        log.info("renamed user %s (%s)", user.username, user.dn)
        return user

    def delete_user(self, user_id: str) -> None:
        def op(conn: Connection) -> str:
            user = self._user_by_id(conn, user_id)
            if not _ldap_delete(conn, user.dn):
                if (conn.result or {}).get("result") != _NOT_ALLOWED_ON_NON_LEAF:
                    raise self._fail(conn, "Deleting the user")
                if not _ldap_delete(conn, user.dn, controls=[_TREE_DELETE]):
                    raise self._fail(conn, "Deleting the user")
            return user.dn

        log.info("deleted user %s", self._run(op))
