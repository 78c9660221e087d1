"""Active Directory: password checks at sign-in and every read (users, groups, memberships)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ldap3 import (
    BASE,
    SUBTREE,
    Connection,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from iam.directory.ad.common import (
    _A,
    _BAD_CREDENTIALS,
    _BIND_ERRORS,
    _BIND_SUBCODE,
    _GROUP_ATTRIBUTES,
    _GROUPS,
    _IN_CHAIN,
    _INVALID_CREDENTIALS,
    _SUCCESS,
    _USER_ATTRIBUTES,
    _USERS,
    _close,
    _Entry,
    _eq,
    _filetime,
    _guid_filter_value,
    _unavailable,
    log,
)
from iam.directory.ad.connections import ADConnections
from iam.directory.base import (
    DirectoryGroup,
    DirectoryUser,
    GroupNode,
    MembershipGraph,
    lookup_key,
)
from iam.directory.errors import (
    DirectoryError,
    DirectoryUnavailable,
    InvalidCredentials,
)


class ADReads(ADConnections):
    """Sign-in binds and reads."""

    def ping(self) -> None:
        def op(conn: Connection) -> None:
            if not conn.search("", "(objectClass=*)", BASE, attributes=["defaultNamingContext"]):
                raise DirectoryUnavailable("The directory did not answer a rootDSE search.")

        self._run(op)

    def server_facts(self) -> dict[str, Any]:
        """For ``iam doctor``: the DC's clock, the transport, and what the service account may
        do where we write (AD's constructed ``allowed*Effective`` attributes)."""

        def op(conn: Connection) -> dict[str, Any]:
            facts: dict[str, Any] = {"tls": bool(conn.tls_started or conn.server.ssl)}
            if conn.search("", "(objectClass=*)", BASE, attributes=["currentTime"]):
                facts["current_time"] = str(conn.entries[0]["currentTime"].value)
            ou = self.settings.users_ou or self.settings.base_dn
            if conn.search(ou, "(objectClass=*)", BASE, attributes=["allowedChildClassesEffective"]):
                facts["may_create"] = [str(v) for v in conn.entries[0]["allowedChildClassesEffective"].values]
            if conn.search(
                ou,
                "(objectCategory=person)",
                "SUBTREE",
                attributes=["allowedAttributesEffective"],
                size_limit=1,
            ):
                if conn.entries:
                    facts["may_write_user"] = [
                        str(v) for v in conn.entries[0]["allowedAttributesEffective"].values
                    ]
            return facts

        return self._run(op)

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        # An empty simple-bind password is an anonymous bind that "succeeds": never send one.
        if not username or not password:
            raise InvalidCredentials(_BAD_CREDENTIALS)
        user = self.find_login(username)
        if user is None:
            log.info("sign-in refused: unknown user")
            raise InvalidCredentials(_BAD_CREDENTIALS)
        self._verify_bind(user, password)
        log.info("password verified for %s", user.username)
        return user

    def find_login(self, username: str) -> DirectoryUser | None:
        """By sAMAccountName, or by UPN when the name has an ``@``; like AD itself, also accept
        the implicit UPN ``sAMAccountName@<DNS domain>``. AD compares both without case."""

        def op(conn: Connection) -> _Entry | None:
            if "@" not in username:
                return self._user_entry(conn, _eq(_A["username"], username))
            entry = self._user_entry(conn, _eq(_A["upn"], username))
            local, _, domain = username.rpartition("@")
            if entry is None and local and domain.casefold() == self._dns_domain.casefold():
                entry = self._user_entry(conn, _eq(_A["username"], local))
            return entry

        entry = self._run(op)
        return self._user(entry) if entry else None

    def _user_bind(self, user: DirectoryUser, password: str) -> Connection:
        """A connection of its own bound as ``user`` (a password change is made on it); raises
        the mapped bind error otherwise."""
        conn: Connection | None = None
        try:
            conn = self._connect(user.dn, password)
            bound = conn.bind(read_server_info=False)
        except (LDAPException, OSError) as exc:
            if conn is not None:
                _close(conn)
            raise _unavailable(exc) from exc
        if bound:
            return conn
        result = dict(conn.result or {})
        _close(conn)
        raise self._bind_error(user, result)

    def _verify_bind(self, user: DirectoryUser, password: str) -> None:
        """Check ``password`` with one simple bind as ``user`` on a pooled connection kept for
        binds only (never searched or written on).

        Each sign-in opening its own LDAPS connection cost a TCP and TLS handshake on both sides
        — on the test DC 14 verifications/s against 86/s rebinding an open connection, and
        3.5 ms against 0.5 ms of our CPU (``bench/ldap_limit.py``, ``bind``). The bind is the
        same one AD counts (bad-password count, lockout, last logon); the user's password is
        not kept on the connection afterwards. Through :meth:`_checkout`: a socket failure on a
        reused connection (the DC dropped it when idle) retries once on a new one; a timeout is
        not retried (the DC may have counted the attempt); a connection whose bind ended in an
        unexpected result is not kept.
        """

        def bind(conn: Connection) -> None:
            conn.user, conn.password = user.dn, password
            try:
                bound = conn.bind(read_server_info=False)
            finally:
                conn.password = None
            if not bound:
                raise self._bind_error(user, dict(conn.result or {}))

        conn, _ = self._checkout(bind, self._binds)
        self._binds.put(conn)

    @staticmethod
    def _bind_error(user: DirectoryUser, result: Mapping[str, Any]) -> DirectoryError:
        """The exception for a refused user bind, from AD's sub-code (52e, 775, ...)."""
        if result.get("result") != _INVALID_CREDENTIALS:
            log.warning(
                "user bind for %s failed: %s %s",
                user.username,
                result.get("description"),
                result.get("message"),
            )
            return DirectoryUnavailable("The directory could not verify the password.")
        found = _BIND_SUBCODE.search(str(result.get("message") or ""))
        subcode = found.group(1).lower().lstrip("0") if found else ""
        exc_type, message = _BIND_ERRORS.get(subcode, (InvalidCredentials, _BAD_CREDENTIALS))
        log.info("sign-in refused for %s: AD %s (%s)", user.username, subcode or "?", exc_type.__name__)
        return exc_type(message)

    def get_user(self, user_id: str) -> DirectoryUser | None:
        value = _guid_filter_value(user_id)
        if value is None:
            return None
        entry = self._run(lambda conn: self._user_entry(conn, f"(objectGUID={value})"))
        return self._user(entry) if entry else None

    def find_user(
        self,
        *,
        username: str | None = None,
        upn: str | None = None,
        employee_number: str | None = None,
    ) -> DirectoryUser | None:
        name, value = lookup_key(username=username, upn=upn, employee_number=employee_number)
        attr = _A[name]
        if not value:
            return None
        entry = self._run(lambda conn: self._user_entry(conn, _eq(attr, value)))
        return self._user(entry) if entry else None

    def find_users_by(self, attribute: str, values: Sequence[str]) -> list[DirectoryUser]:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", attribute):
            raise ValueError("not an attribute name")
        wanted = [v for v in values if v]
        if not wanted:
            return []
        flt = "(|" + "".join(_eq(attribute, v) for v in wanted) + ")"
        entries = self._run(
            lambda conn: self._search(conn, self.base_dn, f"(&{_USERS}{flt})", _USER_ATTRIBUTES)
        )
        return [self._user(e) for e in entries[:10]]

    def search_users(self, *, query: str | None = None, page_size: int = 500) -> Iterator[DirectoryUser]:
        flt = _USERS
        if query:
            q = escape_filter_chars(query)
            wanted = ("username", "display_name", "email", "given_name", "family_name", "upn")
            terms = "".join(f"({_A[k]}=*{q}*)" for k in wanted)
            # employeeNumber exactly: it is not indexed for substrings in a default AD schema
            flt = f"(&{_USERS}(|{terms}({_A['employee_number']}={q})))"
        page_size = max(1, page_size)

        def page(conn: Connection, cookie: bytes | None) -> tuple[list[_Entry], bytes | None]:
            conn.search(
                self.base_dn,
                flt,
                SUBTREE,
                attributes=_USER_ATTRIBUTES,
                paged_size=page_size,
                paged_cookie=cookie,
            )
            if (conn.result or {}).get("result") != _SUCCESS:
                raise self._fail(conn, "User search")
            entries = [
                _Entry(item["dn"], item["raw_attributes"])
                for item in conn.response or []
                if item.get("type") == "searchResEntry"
            ]
            return entries, self._cookie(conn)

        # The paging cookie belongs to the connection: keep it checked out until the last page.
        conn, (entries, cookie) = self._checkout(lambda c: page(c, None))
        healthy = False
        try:
            while True:
                for entry in entries:
                    yield self._user(entry)
                if not cookie:
                    break
                try:
                    entries, cookie = page(conn, cookie)
                except (LDAPException, OSError) as exc:
                    raise _unavailable(exc) from exc
            healthy = True
        finally:
            # Abandoned half-way (or failed): close it, which also frees the server's paging state.
            if healthy:
                self._pool.put(conn)
            else:
                _close(conn)

    def membership_graph(self, *, base_dn: str | None = None) -> MembershipGraph:
        # Two paged searches for any population: users under the base with their memberOf
        # (a back-link: no ranged retrieval), and every group with its own memberOf and owner.
        user_attributes = [*_USER_ATTRIBUTES, _A["member_of"], "lastLogonTimestamp"]
        group_attributes = [*_GROUP_ATTRIBUTES, _A["member_of"], _A["managed_by"]]

        def op(conn: Connection) -> tuple[list[_Entry], list[_Entry]]:
            users = self._search(conn, base_dn or self.base_dn, _USERS, user_attributes, what="User search")
            groups = self._search(conn, self.base_dn, _GROUPS, group_attributes, what="Group search")
            return users, groups

        user_entries, group_entries = self._run(op)
        groups: dict[str, GroupNode] = {}
        for entry in group_entries:
            group = self._group(entry)
            groups[entry.dn.casefold()] = GroupNode(
                dn=entry.dn,
                name=group.name,
                parents=tuple(entry.texts(_A["member_of"])),
                owner=entry.text(_A["managed_by"]),
            )
        users = []
        for e in user_entries:
            user = self._user(e)
            last = _filetime(e.text("lastLogonTimestamp"))  # replicated, up to ~14 days behind
            if last is not None:
                user = dataclasses.replace(user, extra={**user.extra, "last_logon": last.isoformat()})
            users.append((user, tuple(e.texts(_A["member_of"]))))
        return MembershipGraph(users=users, groups=groups)

    def user_groups(self, user_id: str, *, nested: bool = True) -> list[str]:
        def op(conn: Connection) -> list[str]:
            user = self._user_by_id(conn, user_id)
            rule = f":{_IN_CHAIN}:" if nested else ""
            flt = f"(&{_GROUPS}({_A['member']}{rule}={escape_filter_chars(user.dn)}))"
            groups = self._search(conn, self.base_dn, flt, _GROUP_ATTRIBUTES)
            return [self._group(g).name for g in groups]

        return sorted(self._run(op), key=lambda name: (name.casefold(), name))

    def group_members(self, group: str, *, nested: bool = True) -> list[DirectoryUser]:
        # Users whose memberOf (a back-link, so no ranged retrieval of ``member`` is needed)
        # names the group, directly or through nested groups.
        def op(conn: Connection) -> list[_Entry]:
            entry = self._group_by_name(conn, group)
            rule = f":{_IN_CHAIN}:" if nested else ""
            flt = f"(&{_USERS}({_A['member_of']}{rule}={escape_filter_chars(entry.dn)}))"
            return self._search(conn, self.base_dn, flt, _USER_ATTRIBUTES)

        users = [self._user(e) for e in self._run(op)]
        return sorted(users, key=lambda u: (u.username.casefold(), u.username))

    def get_group(self, group: str) -> DirectoryGroup | None:
        if not group:
            return None
        entry = self._run(lambda conn: self._group_entry(conn, group))
        return self._group(entry) if entry else None
