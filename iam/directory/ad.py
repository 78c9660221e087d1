"""Active Directory over LDAPS (or LDAP + StartTLS) with ldap3.

Connections
    Searches and administrative writes use the service account (``directory.bind_dn``). Up to
    ``pool_size`` bound service connections are kept open and shared between threads (one
    thread at a time per connection); a burst beyond that opens extra connections that are
    closed after use, so callers never wait for each other (and a caller that iterates
    :meth:`ActiveDirectory.search_users` while calling other methods cannot dead-lock). A
    pooled connection the server has dropped (idle timeout, restart) is replaced
    transparently: an operation that fails on a *reused* connection with a socket error is
    retried once on a fresh one. Timeouts never retry. After an outage the very next
    operation connects again (ldap3's own "address unavailable" memory is forgotten once every
    address of the directory has failed).

    Verifying a password opens a separate short-lived connection and binds as the user.
    ``receive_timeout`` is applied in whole seconds (rounded up; ldap3 sets SO_RCVTIMEO so).

Searches
    Every subtree search is paged (Simple Paged Results, 500 per page; ``search_users`` uses the
    caller's ``page_size`` and yields page by page, keeping one connection checked out because
    AD ties the paging cookie to the connection). ``user_groups`` / ``group_members`` use
    ``member`` / ``memberOf`` equality filters, or LDAP_MATCHING_RULE_IN_CHAIN when ``nested``,
    so ``member`` is never read from a group (no ranged ``member;range=`` retrieval needed).
    The primary group (``Domain Users``) is not a ``member``/``memberOf`` link and so is never
    listed.

Identifiers
    ``DirectoryUser.id`` is the ``objectGUID`` as a lowercase UUID string (the binary
    attribute is little-endian in its first three fields, i.e. ``uuid.UUID(bytes_le=...)``, which
    is the same text Windows tools show).

Creating users
    AD (Windows) refuses to enable an account that has no password, and :class:`NewUser` carries
    none. :meth:`ActiveDirectory.create_user` therefore always adds the entry disabled
    (``userAccountControl`` 514); when ``new.enabled`` is true it then sets a long random password
    that nobody ever learns, with "must change at next logon", and only then enables the account.
    Such an account is enabled but unusable until :meth:`~ActiveDirectory.set_password` gives it
    a real password. Callers that want a usable account call ``set_password`` (and ``enable``).

Changing passwords
    :meth:`ActiveDirectory.change_password` is the user's own change (``unicodePwd`` delete
    old value + add new value in one modify): AD checks the old password, the history and the
    minimum age. It binds as the user first; when that bind says the password is right but must
    be changed (773) or has expired (532) the user cannot bind, so the same delete/add modify is
    sent over the service account's connection: AD treats it as a user change all the same
    (it verifies the old password and applies history and minimum age; every principal has the
    "Change Password" right).

    Note: after a change *or reset*, the previous password still passes a simple bind for the
    DC's "old password allowed period" (Samba ``old password allowed period``, default 60
    minutes; Windows ``OldPasswordAllowedPeriod``), so :meth:`~ActiveDirectory.authenticate`
    accepts it during that time. Set the period to 0 on the DCs if that is not acceptable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import logging
import math
import re
import secrets
import ssl
import string
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    NONE,
    SIMPLE,
    SUBTREE,
    Connection,
    Server,
    Tls,
)
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPException,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from iam.config import DirectorySettings
from iam.directory.base import (
    DirectoryGroup,
    DirectoryUser,
    GroupNode,
    MembershipGraph,
    NewUser,
    PasswordPolicy,
    lookup_key,
)
from iam.directory.errors import (
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    DirectoryError,
    DirectoryUnavailable,
    EntryExists,
    InvalidCredentials,
    LogonNotPermitted,
    MustChangePassword,
    NoSuchEntry,
    PasswordExpired,
    PasswordRejected,
)

if TYPE_CHECKING:
    from iam.directory.ad_changes import WriteLedger
from iam.errors import ConfigError
from iam.i18n import N_

log = logging.getLogger("iam.directory.ad")

T = TypeVar("T")

#: The AD attribute behind each :class:`DirectoryUser` field (and the account-state attributes).
ATTRIBUTES: Final[Mapping[str, str]] = {
    "id": "objectGUID",
    "username": "sAMAccountName",
    "upn": "userPrincipalName",
    "given_name": "givenName",
    "family_name": "sn",
    "display_name": "displayName",
    "email": "mail",
    "employee_number": "employeeNumber",
    "phone": "telephoneNumber",
    "account_control": "userAccountControl",
    "account_control_computed": "msDS-User-Account-Control-Computed",
    "password_last_set": "pwdLastSet",
    "password_expires_at": "msDS-UserPasswordExpiryTimeComputed",
    "lockout_time": "lockoutTime",
    "password": "unicodePwd",
    "member": "member",
    "member_of": "memberOf",
    "group_type": "groupType",
    "common_name": "cn",
    "managed_by": "managedBy",
}
_A = ATTRIBUTES
_USER_ATTRIBUTES: Final = [
    _A[k]
    for k in (
        "id",
        "username",
        "upn",
        "given_name",
        "family_name",
        "display_name",
        "email",
        "employee_number",
        "phone",
        "account_control",
        "account_control_computed",
        "password_last_set",
        "password_expires_at",
    )
]
_GROUP_ATTRIBUTES: Final = [_A["id"], _A["username"], _A["common_name"]]

_USERS: Final = "(&(objectCategory=person)(objectClass=user))"
_GROUPS: Final = "(objectClass=group)"
_IN_CHAIN: Final = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN
_TREE_DELETE: Final = ("1.2.840.113556.1.4.805", True, None)

UF_ACCOUNTDISABLE: Final = 0x0002
UF_LOCKOUT: Final = 0x0010
UF_NORMAL_ACCOUNT: Final = 0x0200
GLOBAL_SECURITY_GROUP: Final = -2147483646  # ADS_GROUP_TYPE_GLOBAL_GROUP | SECURITY_ENABLED
_FILETIME_NEVER: Final = 0x7FFFFFFFFFFFFFFF
_FILETIME_EPOCH: Final = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)

# LDAP result codes
_SUCCESS: Final = 0
_NO_SUCH_ATTRIBUTE: Final = 16
_CONSTRAINT_VIOLATION: Final = 19
_VALUE_EXISTS: Final = 20
_NO_SUCH_OBJECT: Final = 32
_INVALID_CREDENTIALS: Final = 49
_INSUFFICIENT_ACCESS: Final = 50
_BUSY: Final = 51
_UNAVAILABLE: Final = 52
_UNWILLING: Final = 53
_NOT_ALLOWED_ON_NON_LEAF: Final = 66
_ENTRY_EXISTS: Final = 68

_BAD_CREDENTIALS: Final = N_("The user name or password is incorrect.")
_BIND_SUBCODE = re.compile(r"\bdata ([0-9a-fA-F]{1,8})\b")
_BIND_ERRORS: Final[Mapping[str, tuple[type[DirectoryError], str]]] = {
    "525": (InvalidCredentials, _BAD_CREDENTIALS),
    "52e": (InvalidCredentials, _BAD_CREDENTIALS),
    "530": (LogonNotPermitted, "Signing in is not permitted at this time."),
    "531": (LogonNotPermitted, "Signing in is not permitted from this workstation."),
    "532": (PasswordExpired, "The password has expired and must be changed."),
    "533": (AccountDisabled, "The account is disabled."),
    "701": (AccountExpired, "The account has expired."),
    "773": (MustChangePassword, "The password must be changed before signing in."),
    "775": (AccountLocked, "The account is locked after too many failed sign-in attempts."),
}

_POLICY_HINT: Final = N_(
    "The new password does not meet the password policy (minimum length, complexity, history or minimum age)."
)


def _password_refusal(message: str) -> tuple[str, dict[str, str]]:
    """Plain words (a translatable template and its parameters) for AD's reason to refuse a new
    password (Samba spells the reason out; Windows only says ``0000052D`` = constraint violation)."""
    text = message.lower()
    if "complexity" in text:
        return N_(
            "The new password is not complex enough: use characters from at least three of "
            "capital letters, small letters, digits and symbols, and do not include the user "
            "name or the full name."
        ), {}
    if "history" in text or "already used" in text:
        return N_("The new password was used before. Choose a password you have not used recently."), {}
    if "too short" in text:
        found = re.search(r"(\d+) characters", text)
        if found:
            return N_("The new password is too short; it must have at least %(count)s characters."), {
                "count": found.group(1)
            }
        return N_("The new password is too short."), {}
    if "too long" in text:
        return N_("The new password is too long."), {}
    if "too young" in text or "too recent" in text or "minimum password age" in text:
        return N_("The password was changed too recently. Try again later."), {}
    return _POLICY_HINT, {}


def _filetime(raw: str | None) -> dt.datetime | None:
    """A FILETIME (100 ns since 1601, UTC) as an aware datetime; 0 and 'never' become None."""
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    if value <= 0 or value >= _FILETIME_NEVER:
        return None
    try:
        return _FILETIME_EPOCH + dt.timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def _interval(raw: str | None) -> dt.timedelta | None:
    """An AD duration (negative 100 ns ticks); 0 and the minimum 64-bit value mean "never"."""
    try:
        value = abs(int(raw or "0"))
    except ValueError:
        return None
    if value == 0 or value >= _FILETIME_NEVER:
        return None
    return dt.timedelta(microseconds=value // 10)


_DOMAIN_POLICY = {
    "min_length": "minPwdLength",
    "properties": "pwdProperties",
    "history_count": "pwdHistoryLength",
    "max_age": "maxPwdAge",
    "min_age": "minPwdAge",
    "lockout_threshold": "lockoutThreshold",
    "lockout_window": "lockOutObservationWindow",
    "lockout_duration": "lockoutDuration",
}
_PSO = {
    "min_length": "msDS-MinimumPasswordLength",
    "complexity": "msDS-PasswordComplexityEnabled",
    "reversible": "msDS-PasswordReversibleEncryptionEnabled",
    "history_count": "msDS-PasswordHistoryLength",
    "max_age": "msDS-MaximumPasswordAge",
    "min_age": "msDS-MinimumPasswordAge",
    "lockout_threshold": "msDS-LockoutThreshold",
    "lockout_window": "msDS-LockoutObservationWindow",
    "lockout_duration": "msDS-LockoutDuration",
    "precedence": "msDS-PasswordSettingsPrecedence",
    "applies_to": "msDS-PSOAppliesTo",
    "name": "cn",
}
_PWD_COMPLEX, _PWD_CLEARTEXT = 0x1, 0x10


def _guid_filter_value(user_id: str) -> str | None:
    """``objectGUID`` assertion value (every byte escaped as ``\\xx``), or None if not a UUID."""
    try:
        guid = uuid.UUID(user_id)
    except (ValueError, AttributeError, TypeError):
        return None
    return "".join(f"\\{byte:02x}" for byte in guid.bytes_le)


def _eq(attribute: str, value: str) -> str:
    return f"({attribute}={escape_filter_chars(value)})"


def _rdn(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a name is required")
    return escape_rdn(value)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (LDAPResponseTimeoutError, TimeoutError)) or "timed out" in str(exc).lower()


def _is_network(exc: BaseException) -> bool:
    return isinstance(exc, (LDAPCommunicationError, OSError))


def _unavailable(exc: BaseException) -> DirectoryError:
    """Our exception for an ldap3 exception (never carries a password: ldap3 does not echo it)."""
    text = str(exc).lower()
    if isinstance(exc, (LDAPStartTLSError, ssl.SSLError)) or "ssl" in text or "certificate" in text:
        log.error("TLS with the directory failed: %s: %s", type(exc).__name__, exc)
        return DirectoryUnavailable(
            "The directory's TLS certificate was not accepted (check directory.ca_file and that "
            "the host name in directory.url is in the certificate)."
        )
    if _is_timeout(exc):
        log.warning("directory timed out: %s: %s", type(exc).__name__, exc)
        return DirectoryUnavailable("The directory did not answer in time.")
    if _is_network(exc):
        log.warning("directory unreachable: %s: %s", type(exc).__name__, exc)
        return DirectoryUnavailable("The directory cannot be reached.")
    log.error("directory operation failed: %s: %s", type(exc).__name__, exc)
    return DirectoryError("The directory operation failed.")


# ldap3's stubs leave add/modify/delete untyped; these are the only calls into them.
def _noted(conn: Connection, ok: bool, dn: str, attributes: Iterable[str] | Mapping[str, Any]) -> bool:
    """After a write the directory accepted, put it on the provider's ledger of its own writes
    (iam.directory.ad_changes): changes we made are then not reported as made behind our back."""
    ledger = getattr(conn, "iam_ledger", None)
    if ok and ledger is not None:
        ledger.note(dn, attributes)
    return ok


def _ldap_add(conn: Connection, dn: str, classes: list[str], attributes: dict[str, Any]) -> bool:
    ok = bool(conn.add(dn, classes, attributes))  # type: ignore[no-untyped-call]
    return _noted(conn, ok, dn, ["*", *attributes])


def _ldap_modify(conn: Connection, dn: str, changes: dict[str, Any]) -> bool:
    ok = bool(conn.modify(dn, changes))  # type: ignore[no-untyped-call]
    return _noted(conn, ok, dn, changes)


def _ldap_delete(conn: Connection, dn: str, controls: list[Any] | None = None) -> bool:
    ok = bool(conn.delete(dn, controls=controls))  # type: ignore[no-untyped-call]
    return _noted(conn, ok, dn, ["-"])


def _ldap_modify_dn(conn: Connection, dn: str, rdn: str, new_superior: str | None = None) -> bool:
    ok = bool(conn.modify_dn(dn, rdn, new_superior=new_superior))
    parent = new_superior or (dn.split(",", 1)[1] if "," in dn else "")
    return _noted(conn, ok, f"{rdn},{parent}" if parent else rdn, ["@"])


def _split_dn(dn: str) -> tuple[str, str]:
    """(first RDN, parent DN) of ``dn``, escapes respected (``CN=Kovač\\, Ana,OU=X`` …)."""
    parts = parse_dn(dn, escape=False, strip=False)
    first = f"{parts[0][0]}={parts[0][1]}"
    parent = ",".join(f"{a}={v}" for a, v, _ in parts[1:])
    return first, parent


def _same_dn(a: str, b: str) -> bool:
    def norm(dn: str) -> str:
        return ",".join(f"{t.strip().casefold()}={v.strip().casefold()}" for t, v, _ in parse_dn(dn))

    return norm(a) == norm(b)


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001,S110 - already broken; nothing to do
        pass


class _Entry:
    """A search result entry: DN plus attribute values (case-insensitive names)."""

    __slots__ = ("dn", "_values")

    def __init__(self, dn: str, raw: Mapping[str, Sequence[bytes]]) -> None:
        self.dn = dn
        self._values = {name.lower(): list(values) for name, values in raw.items()}

    def raw(self, name: str) -> bytes | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        return value.decode("utf-8", "replace") if value is not None else None

    def texts(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self._values.get(name.lower(), [])]

    def number(self, name: str) -> int | None:
        value = self.text(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def guid(self) -> str:
        value = self.raw(_A["id"])
        if value is None or len(value) != 16:
            raise DirectoryError(f"The directory entry {self.dn} has no objectGUID.")
        return str(uuid.UUID(bytes_le=value))


class _Pool:
    """Thread-safe bag of idle connections (at most ``size`` kept)."""

    def __init__(self, opener: Callable[[], Connection], size: int) -> None:
        self._open = opener
        self._size = max(1, size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def get(self, *, fresh: bool = False) -> tuple[Connection, bool]:
        """A connection and whether it was reused (opened earlier) rather than opened now."""
        with self._lock:
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn, True
        return self._open(), False

    def put(self, conn: Connection) -> None:
        if not conn.closed:
            with self._lock:
                if len(self._idle) < self._size:
                    self._idle.append(conn)
                    return
        _close(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


class ActiveDirectory:
    """The :class:`~iam.directory.base.Directory` protocol on Active Directory (or Samba AD)."""

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

    # ----------------------------------------------------------------- protocol

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

    def _open_for_binds(self) -> Connection:
        """A secured connection, not bound yet, for :meth:`_verify_bind`."""
        try:
            return self._connect("", "")
        except (LDAPException, OSError) as exc:
            raise _unavailable(exc) from exc

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

    @staticmethod
    def _is_password_refusal(conn: Connection) -> bool:
        """An add refused for its password (policy), not for its name."""
        result = conn.result or {}
        message = str(result.get("message") or "")
        return result.get("result") in (_CONSTRAINT_VIOLATION, _UNWILLING) and (
            message.startswith("0000052D") or "password" in message.lower()
        )

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

    @staticmethod
    def _random_password() -> str:
        alphabet = string.ascii_letters + string.digits
        core = "".join(secrets.choice(alphabet) for _ in range(40))
        return f"{core}aA1-"

    @staticmethod
    def _encode_password(password: str) -> bytes:
        return f'"{password}"'.encode("utf-16-le")

    def set_password(self, user_id: str, password: str, *, must_change: bool) -> None:
        def op(conn: Connection) -> str:
            user = self._user_by_id(conn, user_id)
            changes = {_A["password"]: [(MODIFY_REPLACE, [self._encode_password(password)])]}
            if not _ldap_modify(conn, user.dn, changes):
                raise self._password_error(conn, "Setting the password")
            flag = "0" if must_change else "-1"
            self._modify(
                conn,
                user.dn,
                {_A["password_last_set"]: [(MODIFY_REPLACE, [flag])]},
                "Setting the password-change flag",
            )
            return user.text(_A["username"]) or user.dn

        name = self._run(op)
        log.info("password reset for %s (must change: %s)", name, must_change)

    def _password_error(self, conn: Connection, what: str, *, own: bool = False) -> DirectoryError:
        result = conn.result or {}
        code = result.get("result")
        message = str(result.get("message") or "")
        if own and code == _INSUFFICIENT_ACCESS:
            return PasswordRejected(N_("This account is not allowed to change its password."))
        if code in (_CONSTRAINT_VIOLATION, _UNWILLING):
            # 00000056 = ERROR_INVALID_PASSWORD: the old password given for a change is wrong
            if message.startswith("00000056") or "old password" in message.lower():
                return InvalidCredentials(_BAD_CREDENTIALS)
            log.info("%s refused: %s", what, message)
            template, params = _password_refusal(message)
            return PasswordRejected(template, **params)
        return self._fail(conn, what)

    def change_password(self, username: str, old_password: str, new_password: str) -> None:
        if not username or not old_password:
            raise InvalidCredentials(_BAD_CREDENTIALS)
        user = self.find_login(username)
        if user is None:
            raise InvalidCredentials(_BAD_CREDENTIALS)
        changes = {
            _A["password"]: [
                (MODIFY_DELETE, [self._encode_password(old_password)]),
                (MODIFY_ADD, [self._encode_password(new_password)]),
            ]
        }

        def change(conn: Connection) -> None:
            if not _ldap_modify(conn, user.dn, changes):
                raise self._password_error(conn, "Changing the password", own=True)

        try:
            own = self._user_bind(user, old_password)
        except (MustChangePassword, PasswordExpired):
            # The password is right but AD will not let the user bind with it. The same
            # delete/add modify over the service connection is still a *user change*: AD checks
            # the old password, the history and the minimum age.
            self._run(change)
        else:
            try:
                change(own)
            except (LDAPException, OSError) as exc:
                raise _unavailable(exc) from exc
            finally:
                _close(own)
        log.info("password changed by %s", user.username)

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

    def password_policies(self) -> list[PasswordPolicy]:
        """The domain policy (attributes of the domain head) and every PSO, by precedence."""

        def op(conn: Connection) -> tuple[list[_Entry], list[_Entry]]:
            domain = self._search(
                conn, self.base_dn, "(objectClass=*)", list(_DOMAIN_POLICY.values()), scope="BASE"
            )
            psos = self._search(
                conn,
                f"CN=Password Settings Container,CN=System,{self.base_dn}",
                "(objectClass=msDS-PasswordSettings)",
                list(_PSO.values()),
                what="Reading the fine-grained password policies",
            )
            return domain, psos

        domain, psos = self._run(op)
        out: list[PasswordPolicy] = []
        for e in domain[:1]:
            props = e.number(_DOMAIN_POLICY["properties"]) or 0
            out.append(
                PasswordPolicy(
                    name="domain",
                    min_length=e.number(_DOMAIN_POLICY["min_length"]) or 0,
                    complexity=bool(props & _PWD_COMPLEX),
                    reversible_encryption=bool(props & _PWD_CLEARTEXT),
                    history_count=e.number(_DOMAIN_POLICY["history_count"]) or 0,
                    max_age=_interval(e.text(_DOMAIN_POLICY["max_age"])),
                    min_age=_interval(e.text(_DOMAIN_POLICY["min_age"])) or dt.timedelta(0),
                    lockout_threshold=e.number(_DOMAIN_POLICY["lockout_threshold"]) or 0,
                    lockout_window=_interval(e.text(_DOMAIN_POLICY["lockout_window"])) or dt.timedelta(0),
                    lockout_duration=_interval(e.text(_DOMAIN_POLICY["lockout_duration"])),
                )
            )
        fine: list[PasswordPolicy] = []
        for e in psos:
            fine.append(
                PasswordPolicy(
                    name=e.text(_PSO["name"]) or e.dn,
                    min_length=e.number(_PSO["min_length"]) or 0,
                    complexity=(e.text(_PSO["complexity"]) or "").upper() == "TRUE",
                    reversible_encryption=(e.text(_PSO["reversible"]) or "").upper() == "TRUE",
                    history_count=e.number(_PSO["history_count"]) or 0,
                    max_age=_interval(e.text(_PSO["max_age"])),
                    min_age=_interval(e.text(_PSO["min_age"])) or dt.timedelta(0),
                    lockout_threshold=e.number(_PSO["lockout_threshold"]) or 0,
                    lockout_window=_interval(e.text(_PSO["lockout_window"])) or dt.timedelta(0),
                    lockout_duration=_interval(e.text(_PSO["lockout_duration"])),
                    precedence=e.number(_PSO["precedence"]),
                    applies_to=tuple(e.texts(_PSO["applies_to"])),
                )
            )
        return out + sorted(fine, key=lambda p: (p.precedence is None, p.precedence or 0, p.name))

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
