"""Active Directory: attribute names, LDAP result codes, filters and DNs, result entries,
the connection bag, and the mapping of ldap3 failures to our errors."""

from __future__ import annotations

import datetime as dt
import logging
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from ldap3 import Connection
from ldap3.core.exceptions import (
    LDAPCommunicationError,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from iam.directory.errors import (
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    DirectoryError,
    DirectoryUnavailable,
    InvalidCredentials,
    LogonNotPermitted,
    MustChangePassword,
    PasswordExpired,
)
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
