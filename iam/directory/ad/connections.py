"""Active Directory: connecting (LDAPS or StartTLS), the pooled service and bind connections,
paged searches and the entry helpers."""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from ldap3 import (
    BASE,
    NONE,
    SIMPLE,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from iam.config import DirectorySettings
from iam.directory.ad.common import (
    _A,
    _BUSY,
    _ENTRY_EXISTS,
    _GROUP_ATTRIBUTES,
    _GROUPS,
    _INSUFFICIENT_ACCESS,
    _NO_SUCH_OBJECT,
    _SUCCESS,
    _UNAVAILABLE,
    _USER_ATTRIBUTES,
    _USERS,
    UF_ACCOUNTDISABLE,
    UF_LOCKOUT,
    T,
    _close,
    _Entry,
    _eq,
    _filetime,
    _guid_filter_value,
    _is_network,
    _is_timeout,
    _ldap_modify,
    _Pool,
    _unavailable,
    log,
)
from iam.directory.base import (
    DirectoryGroup,
    DirectoryUser,
)
from iam.directory.errors import (
    DirectoryError,
    DirectoryUnavailable,
    EntryExists,
    NoSuchEntry,
)
from iam.errors import ConfigError

if TYPE_CHECKING:
    from iam.directory.ad_changes import WriteLedger


class ADConnections:
    """Settings, the pooled connections, and the search and entry helpers every operation uses."""

    kind = "ad"

    def __init__(self, settings: DirectorySettings) -> None:
        self.settings = settings
        if not settings.base_dn:
            raise ConfigError("directory.base_dn is required for Active Directory.")
        self.base_dn = settings.base_dn
        self.users_ou = settings.users_ou or f"CN=Users,{self.base_dn}"
        self.groups_ou = settings.groups_ou or f"CN=Users,{self.base_dn}"
        self._dns_domain = self._dotted_domain(self.base_dn)
        self.upn_suffix = settings.upn_suffix or self._dns_domain
        self._server, self._start_tls = self._make_server(settings)
        self._pool = _Pool(self._open_service, settings.pool_size)
        self._binds = _Pool(self._open_for_binds, settings.pool_size)
        """Connections that only ever carry users' binds (password checks at sign-in)."""
        self._group_dns: dict[str, str] = {}
        """Group name (casefolded) → DN, for memberships of new accounts; a stale DN is noticed
        (noSuchObject) and looked up again."""
        self.ledger: WriteLedger | None = None
        """Where the service account's writes are noted (set by iam.services)."""

    # ----------------------------------------------------------------- connections

    @staticmethod
    def _dotted_domain(base_dn: str) -> str:
        try:
            parts = parse_dn(base_dn)
        except (LDAPException, OSError) as exc:
            raise ConfigError(f"directory.base_dn {base_dn!r} is not a DN.") from exc
        return ".".join(value for attr, value, _sep in parts if attr.lower() == "dc")

    @staticmethod
    def _make_server(settings: DirectorySettings) -> tuple[Server, bool]:
        url = urlsplit(settings.url)
        scheme = url.scheme.lower()
        if scheme not in ("ldaps", "ldap") or not url.hostname:
            raise ConfigError(f"directory.url {settings.url!r} is not an ldaps:// or ldap:// URL.")
        start_tls = scheme == "ldap" and settings.start_tls
        if scheme == "ldap" and not start_tls and not settings.allow_plain:
            raise ConfigError(
                "directory.url is plain ldap:// without StartTLS; set directory.start_tls = true"
            )
        if scheme == "ldap" and not start_tls:
            log.warning("directory connections are NOT encrypted (directory.allow_plain)")
        host = url.hostname
        try:
            ipaddress.ip_address(host)
            sni: str | None = None
        except ValueError:
            sni = host
        try:
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=settings.ca_file or None,
                sni=sni,
            )
        except (LDAPException, OSError) as exc:
            raise ConfigError(f"directory.ca_file {settings.ca_file!r} cannot be read.") from exc
        server = Server(
            host,
            port=url.port or (636 if scheme == "ldaps" else 389),
            use_ssl=scheme == "ldaps",
            tls=tls,
            get_info=NONE,
            connect_timeout=settings.connect_timeout,
        )
        return server, start_tls

    def _connect(self, user: str, password: str) -> Connection:
        """Open (and secure) a connection; raises ldap3 exceptions. Not bound yet."""
        self._forget_outage()
        conn = Connection(
            self._server,
            user=user,
            password=password,
            authentication=SIMPLE,
            auto_bind=False,
            auto_referrals=False,
            raise_exceptions=False,
            # ldap3 packs SO_RCVTIMEO as whole seconds on POSIX
            receive_timeout=max(1, math.ceil(self.settings.receive_timeout)),
            return_empty_attributes=True,
            check_names=False,
        )
        try:
            conn.open(read_server_info=False)
            secured = not self._start_tls or bool(conn.start_tls(read_server_info=False))
        except BaseException:
            _close(conn)
            raise
        if not secured:
            _close(conn)
            log.error("the directory refused StartTLS: %s", (conn.result or {}).get("message"))
            raise DirectoryUnavailable("The directory refused StartTLS.")
        return conn

    def _open_for_binds(self) -> Connection:
        """A secured connection, not bound yet, for :meth:`_verify_bind`."""
        try:
            return self._connect("", "")
        except (LDAPException, OSError) as exc:
            raise _unavailable(exc) from exc

    def _forget_outage(self) -> None:
        """ldap3 marks an address it could not connect to as unavailable and does not try it
        again for about five seconds, so the first sign-ins after an outage would fail although
        the directory is back. Addresses that failed are still skipped while another address
        of the name answers, but once every address has failed each new connection tries them
        all again: the first request after the outage reconnects."""
        addresses = self._server.address_info
        if addresses and all(address[5] is False for address in addresses):
            self._server.reset_availability()

    def _open_service(self) -> Connection:
        password = self.settings.bind_password.get_secret_value()
        if not password:
            raise DirectoryUnavailable("No password is configured for the directory service account.")
        conn: Connection | None = None
        try:
            conn = self._connect(self.settings.bind_dn, password)
            bound = conn.bind(read_server_info=False)
        except (LDAPException, OSError) as exc:
            if conn is not None:
                _close(conn)
            raise _unavailable(exc) from exc
        if not bound:
            result = dict(conn.result or {})
            _close(conn)
            log.error(
                "the directory refused the service account %s: %s %s",
                self.settings.bind_dn,
                result.get("description"),
                result.get("message"),
            )
            raise DirectoryUnavailable("The directory refused the service account.")
        conn.iam_ledger = self.ledger  # type: ignore[attr-defined]  # our writes go on it
        log.debug("opened a service connection to %s", self._server.host)
        return conn

    def _checkout(self, op: Callable[[Connection], T], pool: _Pool | None = None) -> tuple[Connection, T]:
        """Run ``op`` on a connection of ``pool`` (the service connections unless told) and
        return it still checked out.

        A socket failure on a reused connection means the server dropped it (idle timeout,
        restart): the other idle connections are most likely gone too, so they are discarded
        and ``op`` runs once more on a new connection. Other failures are not retried.
        """
        pool = pool or self._pool
        fresh = False
        while True:
            conn, reused = pool.get(fresh=fresh)
            try:
                return conn, op(conn)
            except DirectoryUnavailable:
                _close(conn)
                raise
            except DirectoryError:
                pool.put(conn)
                raise
            except (LDAPException, OSError) as exc:
                _close(conn)
                if reused and _is_network(exc) and not _is_timeout(exc):
                    log.info("pooled connection was dropped (%s); reconnecting", type(exc).__name__)
                    pool.close()
                    fresh = True
                    continue
                raise _unavailable(exc) from exc
            except BaseException:
                _close(conn)
                raise

    def _run(self, op: Callable[[Connection], T]) -> T:
        conn, value = self._checkout(op)
        self._pool.put(conn)
        return value

    def close(self) -> None:
        """Close the pooled connections (they are reopened on demand)."""
        self._pool.close()
        self._binds.close()

    # ----------------------------------------------------------------- LDAP helpers

    @staticmethod
    def _fail(conn: Connection, what: str) -> DirectoryError:
        """The exception for a failed operation whose result is in ``conn.result``."""
        result = conn.result or {}
        code = result.get("result")
        text = f"{result.get('description')}: {result.get('message')}"
        log.info("%s failed: %s", what, text)
        if code == _NO_SUCH_OBJECT:
            return NoSuchEntry(f"{what}: no such entry in the directory.")
        if code == _ENTRY_EXISTS:
            return EntryExists(f"{what}: an entry with this name already exists.")
        if code in (_BUSY, _UNAVAILABLE):
            log.warning("%s: directory busy: %s", what, text)
            return DirectoryUnavailable("The directory is busy or unavailable; retry later.")
        if code == _INSUFFICIENT_ACCESS:
            log.error("%s: the service account lacks the right: %s", what, text)
            return DirectoryUnavailable(f"{what}: the service account is not allowed to do this.")
        log.warning("%s failed: %s", what, text)
        return DirectoryError(f"{what} failed: {result.get('description')}.")

    def _search(
        self,
        conn: Connection,
        base: str,
        flt: str,
        attributes: Sequence[str],
        *,
        scope: Literal["BASE", "SUBTREE", "LEVEL"] = "SUBTREE",
        what: str = "Directory search",
        controls: list[Any] | None = None,
    ) -> list[_Entry]:
        """All entries (paged, 500 per page); ``noSuchObject`` on a base lookup → []."""
        entries: list[_Entry] = []
        cookie: bytes | None = None
        while True:
            conn.search(
                base,
                flt,
                search_scope=scope,
                attributes=list(attributes),
                paged_size=500 if scope != BASE else None,
                paged_cookie=cookie,
                controls=controls,
            )
            code = (conn.result or {}).get("result")
            if code == _NO_SUCH_OBJECT and scope == BASE:
                return []
            if code != _SUCCESS:
                raise self._fail(conn, what)
            entries.extend(
                _Entry(item["dn"], item["raw_attributes"])
                for item in conn.response or []
                if item.get("type") == "searchResEntry"
            )
            cookie = self._cookie(conn)
            if not cookie:
                return entries

    @staticmethod
    def _cookie(conn: Connection) -> bytes | None:
        try:
            cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
        except (KeyError, TypeError):
            return None
        return cookie if isinstance(cookie, bytes) and cookie else None

    def _modify(self, conn: Connection, dn: str, changes: dict[str, Any], what: str) -> None:
        if not _ldap_modify(conn, dn, changes):
            raise self._fail(conn, what)

    def _user_entry(self, conn: Connection, flt: str) -> _Entry | None:
        found = self._search(conn, self.base_dn, f"(&{_USERS}{flt})", _USER_ATTRIBUTES)
        if len(found) > 1:
            raise DirectoryError("More than one user in the directory matches.")
        return found[0] if found else None

    def _user_by_id(self, conn: Connection, user_id: str) -> _Entry:
        value = _guid_filter_value(user_id)
        entry = self._user_entry(conn, f"(objectGUID={value})") if value else None
        if entry is None:
            raise NoSuchEntry("No such user in the directory.")
        return entry

    def _group_entry(self, conn: Connection, name: str) -> _Entry | None:
        flt = f"(&{_GROUPS}{_eq(_A['username'], name)})"
        found = self._search(conn, self.base_dn, flt, _GROUP_ATTRIBUTES)
        return found[0] if found else None

    def _group_by_name(self, conn: Connection, name: str) -> _Entry:
        entry = self._group_entry(conn, name)
        if entry is None:
            raise NoSuchEntry("No such group in the directory.")
        return entry

    @staticmethod
    def _user(entry: _Entry) -> DirectoryUser:
        uac = entry.number(_A["account_control"]) or 0
        computed = entry.number(_A["account_control_computed"]) or 0
        pwd_last_set = entry.number(_A["password_last_set"])
        return DirectoryUser(
            id=entry.guid(),
            username=entry.text(_A["username"]) or "",
            dn=entry.dn,
            upn=entry.text(_A["upn"]),
            given_name=entry.text(_A["given_name"]),
            family_name=entry.text(_A["family_name"]),
            display_name=entry.text(_A["display_name"]),
            email=entry.text(_A["email"]),
            employee_number=entry.text(_A["employee_number"]),
            phone=entry.text(_A["phone"]),
            enabled=not uac & UF_ACCOUNTDISABLE,
            locked=bool(computed & UF_LOCKOUT),
            must_change_password=pwd_last_set == 0,
            password_expires_at=_filetime(entry.text(_A["password_expires_at"])),
            password_last_set=_filetime(entry.text(_A["password_last_set"])),
        )

    @staticmethod
    def _group(entry: _Entry) -> DirectoryGroup:
        name = entry.text(_A["username"]) or entry.text(_A["common_name"]) or ""
        return DirectoryGroup(id=entry.guid(), name=name, dn=entry.dn)
