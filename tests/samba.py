"""Pytest plugin: a real Samba Active Directory domain controller for the AD tests.

Registered with ``pytest_plugins = ["tests.samba"]``. The DC is started (or a running one from
the same directory reused) once per session by ``deploy/samba-up.sh``; it runs under libfaketime
so a test can move the DC's clock (password expiry).

Fixtures
    ``samba_dc``         (session)  the running DC: directory, admin connection, clock file
    ``samba_turn``       (function) the test's turn on the DC shared with other sessions (taken by
                                    ``ad_ou``; a test talking to the DC without it should use it)
    ``samba_ad``         (session)  :class:`DirectorySettings` pointing at it (service account =
                                    Administrator)
    ``ad_ou``            (function) DN of a fresh OU ``OU=t-<random>,DC=example,DC=test``,
                                    deleted with everything in it after the test
    ``ad_directory``     (function) an :class:`ActiveDirectory` that creates users and groups in
                                    ``ad_ou``
    ``ad_user_policy``   (function) ``ad_user_policy(user.dn, lockout_threshold=3)``: a fine-grained
                                    password policy (PSO) for just these users or groups, removed
                                    after the test. Prefer it: it cannot disturb other sessions.
    ``ad_password_policy`` (function) ``ad_password_policy(lockoutThreshold=3, ...)`` changes the
                                    *domain's* password settings; the old values come back after
                                    the test (meanwhile every user of the DC is affected)
    ``samba_clock``      (function) ``samba_clock("+2d")`` moves the DC's clock; reset afterwards

Environment: ``IAM_TEST_SAMBA_DIR`` (default ``/tmp/iam-test-samba``), ``SAMBA_ADMINPASS``.
When the DC cannot be started the tests are skipped, or fail when ``CI=true``.

Several test sessions may share the DC at the same time: everything a test creates lives in its
own OU or PSO, and only leftovers older than two hours are swept at session start. Moving the
clock (``samba_clock``) and changing the domain's settings (``ad_password_policy``) are visible to
every session while the test runs, so such a test has the DC to itself (``samba_turn``: a
shared/exclusive lock file in the DC's directory).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import secrets
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from ldap3 import BASE, LEVEL, MODIFY_REPLACE, NONE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPCommunicationError
from pydantic import SecretStr

from iam.config import DirectorySettings
from iam.directory.ad import ActiveDirectory

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "samba-up.sh"
SAMBA_DIR = Path(os.environ.get("IAM_TEST_SAMBA_DIR", "/tmp/iam-test-samba"))
ADMIN_PASSWORD = os.environ.get("SAMBA_ADMINPASS", "Adm1n-Passw0rd!")
ADMIN_UPN = "Administrator@example.test"
BASE_DN = "DC=example,DC=test"
TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)
PSO_CONTAINER = f"CN=Password Settings Container,CN=System,{BASE_DN}"
LEFTOVER_AGE = dt.timedelta(hours=2)
CI = os.environ.get("CI", "").lower() == "true"

#: Domain password settings a test may change (values as stored on the domain object).
POLICY_ATTRIBUTES = (
    "lockoutThreshold",
    "lockoutDuration",
    "lockOutObservationWindow",
    "maxPwdAge",
    "minPwdAge",
    "minPwdLength",
    "pwdHistoryLength",
    "pwdProperties",
)


@contextmanager
def _locked(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold a shared or exclusive lock on ``path`` (seen by every test session using the DC)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: Fixtures whose effect is domain-wide: a test using one runs alone on the DC.
EXCLUSIVE_FIXTURES = ("samba_clock", "ad_password_policy")


def _missing(reason: str) -> NoReturn:
    if CI:
        pytest.fail(f"Samba AD is required on CI: {reason}")
    pytest.skip(reason)


def interval(value: dt.timedelta | int) -> str:
    """A duration as AD stores it in password settings: negative 100-ns units (an int is taken
    as already in that form)."""
    if isinstance(value, int):
        return str(value)
    return str(-round(value.total_seconds() * 10_000_000))


#: Fine-grained policy settings (``ad_user_policy`` keywords) → msDS-PasswordSettings attribute,
#: with the domain defaults of a fresh Samba DC (except minimum age 0, as samba-up.sh sets).
PSO_SETTINGS: dict[str, tuple[str, object]] = {
    "precedence": ("msDS-PasswordSettingsPrecedence", 1),
    "reversible": ("msDS-PasswordReversibleEncryptionEnabled", "FALSE"),
    "history": ("msDS-PasswordHistoryLength", 24),
    "complexity": ("msDS-PasswordComplexityEnabled", "TRUE"),
    "min_length": ("msDS-MinimumPasswordLength", 7),
    "min_age": ("msDS-MinimumPasswordAge", dt.timedelta(0)),
    "max_age": ("msDS-MaximumPasswordAge", dt.timedelta(days=42)),
    "lockout_threshold": ("msDS-LockoutThreshold", 0),
    "lockout_window": ("msDS-LockoutObservationWindow", dt.timedelta(minutes=30)),
    "lockout_duration": ("msDS-LockoutDuration", dt.timedelta(minutes=30)),
}


@dataclass
class SambaDC:
    directory: Path
    ca_file: str
    faketime_file: Path | None
    _admin: Connection | None = field(default=None, repr=False)

    @property
    def settings(self) -> DirectorySettings:
        return DirectorySettings(
            kind="ad",
            url="ldaps://127.0.0.1:636",
            bind_dn=ADMIN_UPN,
            bind_password=SecretStr(ADMIN_PASSWORD),
            base_dn=BASE_DN,
            ca_file=self.ca_file,
            connect_timeout=5.0,
            receive_timeout=15.0,
            pool_size=2,
        )

    def connect(self, user: str = ADMIN_UPN, password: str = ADMIN_PASSWORD) -> Connection:
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
        server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=NONE, connect_timeout=5)
        return Connection(
            server,
            user,
            password,
            auto_bind=True,
            auto_referrals=False,
            receive_timeout=15,
            check_names=False,
        )

    def admin(self, op: Callable[[Connection], T]) -> T:
        """Run ``op`` on the admin connection (reopened if the DC dropped it)."""
        for attempt in (1, 2):
            if self._admin is None or self._admin.closed:
                self._admin = self.connect()
            try:
                return op(self._admin)
            except LDAPCommunicationError:
                self._admin = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def modify(self, dn: str, changes: dict[str, Any]) -> None:
        def op(conn: Connection) -> None:
            assert conn.modify(dn, changes), conn.result  # type: ignore[no-untyped-call]

        self.admin(op)

    def read(self, dn: str, attributes: list[str]) -> dict[str, list[str]]:
        def op(conn: Connection) -> dict[str, list[str]]:
            assert conn.search(dn, "(objectClass=*)", BASE, attributes=attributes), conn.result
            raw = (conn.response or [{}])[0]["raw_attributes"]
            return {k: [v.decode() for v in raw.get(k, [])] for k in attributes}

        return self.admin(op)

    def delete_tree(self, dn: str) -> None:
        def op(conn: Connection) -> None:
            conn.delete(dn, controls=[TREE_DELETE])  # type: ignore[no-untyped-call]
            assert conn.result["result"] in (0, 32), conn.result

        self.admin(op)

    def set_clock(self, offset: str) -> None:
        if self.faketime_file is None:
            pytest.skip("the DC does not run under faketime")
        self.faketime_file.write_text(offset + "\n")


def _start() -> SambaDC:
    if not SCRIPT.is_file():
        _missing(f"{SCRIPT} is missing")
    if os.geteuid() != 0:
        _missing("Samba AD needs root (fixed ports below 1024)")
    env = dict(os.environ, SAMBA_FAKETIME="1", SAMBA_ADMINPASS=ADMIN_PASSWORD)
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), str(SAMBA_DIR)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _missing(f"deploy/samba-up.sh did not run: {exc}")
    if done.returncode != 0:
        _missing(f"deploy/samba-up.sh failed: {done.stderr.strip()[-800:]}")
    line = done.stdout.strip().splitlines()[-1]
    facts = dict(part.split("=", 1) for part in line.split() if "=" in part)
    faketime = facts.get("faketime", "-")
    return SambaDC(
        directory=SAMBA_DIR,
        ca_file=facts["ca"],
        faketime_file=None if faketime == "-" else Path(faketime),
    )


@pytest.fixture(scope="session")
def samba_dc() -> Iterator[SambaDC]:
    dc = _start()
    if dc.faketime_file is not None:
        dc.set_clock("+0")

    def leftovers(conn: Connection) -> list[str]:  # of interrupted sessions, not running ones
        old = (dt.datetime.now(dt.UTC) - LEFTOVER_AGE).strftime("%Y%m%d%H%M%S.0Z")
        found = []
        for base, flt in (
            (BASE_DN, "(&(objectClass=organizationalUnit)(ou=t-*))"),
            (PSO_CONTAINER, "(&(objectClass=msDS-PasswordSettings)(cn=pso-t-*))"),
        ):
            conn.search(base, f"(&{flt}(whenCreated<={old}))", LEVEL, attributes=[])
            found += [e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"]
        return found

    for dn in dc.admin(leftovers):
        dc.delete_tree(dn)
    yield dc
    if dc._admin is not None:
        dc._admin.unbind()


@pytest.fixture(scope="session")
def samba_ad(samba_dc: SambaDC) -> DirectorySettings:
    return samba_dc.settings


@pytest.fixture
def samba_turn(samba_dc: SambaDC, request: pytest.FixtureRequest) -> Iterator[None]:
    """The test's turn on the shared DC: most tests share it; a test that moves the DC's clock or
    changes the domain's settings waits until no test of any session uses the DC, and keeps
    the others waiting until it is done (a clock jump makes Samba refuse a concurrent password
    change as "too recent" or fail a search with timeLimitExceeded)."""
    exclusive = any(name in request.fixturenames for name in EXCLUSIVE_FIXTURES)
    with _locked(samba_dc.directory / "turn.lock", exclusive=exclusive):
        yield


@pytest.fixture
def ad_ou(samba_dc: SambaDC, samba_turn: None) -> Iterator[str]:
    dn = f"OU=t-{secrets.token_hex(4)},{BASE_DN}"

    def add(conn: Connection) -> None:
        assert conn.add(dn, ["top", "organizationalUnit"]), conn.result  # type: ignore[no-untyped-call]

    samba_dc.admin(add)
    yield dn
    samba_dc.delete_tree(dn)


@pytest.fixture
def ad_directory(samba_ad: DirectorySettings, ad_ou: str) -> Iterator[ActiveDirectory]:
    directory = ActiveDirectory(samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou}))
    yield directory
    directory.close()


@pytest.fixture
def ad_password_policy(samba_dc: SambaDC, samba_turn: None) -> Iterator[Callable[..., None]]:
    """``ad_password_policy(lockoutThreshold=3, maxPwdAge=timedelta(days=1))``; restored after.

    The test has the DC to itself (see ``samba_turn``).
    """
    saved: dict[str, list[str]] = {}

    def apply(**values: int | str | dt.timedelta) -> None:
        unknown = set(values) - set(POLICY_ATTRIBUTES)
        assert not unknown, f"not a password setting: {unknown}"
        if not saved:
            saved.update(samba_dc.read(BASE_DN, list(POLICY_ATTRIBUTES)))
        changes = {
            name: [(MODIFY_REPLACE, [interval(v) if isinstance(v, dt.timedelta) else str(v)])]
            for name, v in values.items()
        }
        samba_dc.modify(BASE_DN, changes)

    try:
        yield apply
    finally:
        if saved:
            samba_dc.modify(BASE_DN, {k: [(MODIFY_REPLACE, v)] for k, v in saved.items() if v})


@pytest.fixture
def ad_user_policy(samba_dc: SambaDC) -> Iterator[Callable[..., str]]:
    """``ad_user_policy(user.dn, lockout_threshold=3, max_age=timedelta(days=1))`` → PSO DN.

    A fine-grained password policy for the given users/groups (keywords: see PSO_SETTINGS;
    durations as timedelta or raw negative 100-ns ints); deleted after the test.
    """
    made: list[str] = []

    def apply(*applies_to: str, **settings: object) -> str:
        unknown = set(settings) - set(PSO_SETTINGS)
        assert not unknown, f"not a PSO setting: {unknown}"
        dn = f"CN=pso-t-{secrets.token_hex(4)},{PSO_CONTAINER}"
        attributes: dict[str, object] = {"msDS-PSOAppliesTo": list(applies_to)}
        for key, (attribute, default) in PSO_SETTINGS.items():
            value = settings.get(key, default)
            if isinstance(value, dt.timedelta | int) and attribute.endswith(("Age", "Window", "Duration")):
                value = interval(value)
            attributes[attribute] = str(value)

        def add(conn: Connection) -> None:
            ok = conn.add(dn, ["msDS-PasswordSettings"], attributes)  # type: ignore[no-untyped-call]
            assert ok, conn.result

        samba_dc.admin(add)
        made.append(dn)
        return dn

    yield apply
    for dn in made:
        samba_dc.delete_tree(dn)


@pytest.fixture
def samba_clock(samba_dc: SambaDC, samba_turn: None) -> Iterator[Callable[[str], None]]:
    """``samba_clock("+2d")`` moves the DC's clock (libfaketime offset); back to +0 after.

    The test has the DC to itself (see ``samba_turn``).
    """
    if samba_dc.faketime_file is None:
        pytest.skip("the DC does not run under faketime")
    try:
        yield samba_dc.set_clock
    finally:
        samba_dc.set_clock("+0")


__all__ = [
    "SambaDC",
    "ad_directory",
    "ad_ou",
    "ad_password_policy",
    "ad_user_policy",
    "interval",
    "samba_ad",
    "samba_clock",
    "samba_dc",
    "samba_turn",
]
