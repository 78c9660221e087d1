"""Active Directory: password resets and a user's own change, and the password policies (the
domain's and every PSO)."""

from __future__ import annotations

import datetime as dt
import secrets
import string

from ldap3 import (
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    Connection,
)
from ldap3.core.exceptions import LDAPException

from iam.directory.ad.common import (
    _A,
    _BAD_CREDENTIALS,
    _CONSTRAINT_VIOLATION,
    _DOMAIN_POLICY,
    _INSUFFICIENT_ACCESS,
    _PSO,
    _PWD_CLEARTEXT,
    _PWD_COMPLEX,
    _UNWILLING,
    _close,
    _Entry,
    _interval,
    _ldap_modify,
    _password_refusal,
    _unavailable,
    log,
)
from iam.directory.ad.reads import ADReads
from iam.directory.base import PasswordPolicy
from iam.directory.errors import (
    DirectoryError,
    InvalidCredentials,
    MustChangePassword,
    PasswordExpired,
    PasswordRejected,
)
from iam.i18n import N_


class ADPasswords(ADReads):
    """Passwords and password policies."""

    @staticmethod
    def _is_password_refusal(conn: Connection) -> bool:
        """An add refused for its password (policy), not for its name."""
        result = conn.result or {}
        message = str(result.get("message") or "")
        return result.get("result") in (_CONSTRAINT_VIOLATION, _UNWILLING) and (
            message.startswith("0000052D") or "password" in message.lower()
        )

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
