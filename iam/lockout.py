"""Lockout at the provider, before the directory's own (R-PW-6, R-AUD-2).

Failures are counted per **account** and per network address in the database, so every worker
process sees the same numbers; the counter row is locked for the update (PostgreSQL
``FOR UPDATE``; SQLite serialises writers), so parallel wrong attempts lock at exactly the
threshold. A lock is a critical audit event, which mails the security officer.

The account is what the directory would check the password of: every spelling it accepts for
one account (``user``, ``USER``, ``user@example.test``, `` User@Example.Test ``) counts against
the account's one counter (``acct:id:<objectGUID>``), found by :class:`AccountNames` with the
directory's service account — a search, never a bind. A name that is no account keeps a counter
of its own folded spelling (``acct:name:<name>``) and locks the same way, so the answers for
existing and unknown names stay alike.
"""

from __future__ import annotations

import datetime as dt
import enum
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, and_, bindparam, case, delete, null, or_, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import LockoutSettings
from iam.db import insert_if_absent, is_postgres
from iam.models.lockout import LockoutCounter

if TYPE_CHECKING:
    from iam.directory.base import Directory
    from iam.services import Services


def fold(username: str) -> str:
    """A sign-in name as one spelling: surrounding spaces off, case folded."""
    return username.strip().casefold()[:250]


@dataclass(frozen=True)
class Account:
    """Whose password an attempt checks: the directory's stable ``id`` when the name is an
    account's, ``None`` when it is no account; ``name`` as typed (for the audit trail)."""

    name: str
    id: str | None = None

    @property
    def key(self) -> str:
        return f"acct:id:{self.id}" if self.id else "acct:name:" + fold(self.name)


class AccountNames:
    """Sign-in name → account, as the directory would resolve it for a password check
    (:meth:`~iam.directory.base.Directory.find_login`: a search with the service account, never
    a bind), remembered for ``ttl`` seconds.

    Unknown names are remembered exactly like known ones, so looking a name up costs the same
    whether or not it is an account (no timing oracle); ``ttl`` 0 asks the directory every
    time. At most ``size`` names are kept (least recently used go first)."""

    def __init__(self, directory: Directory, *, ttl: float, size: int = 10_000) -> None:
        self._directory = directory
        self._ttl = ttl
        self._size = size
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def account(self, username: str) -> Account:
        """The account ``username`` names; raises DirectoryUnavailable when the directory
        cannot be asked."""
        name = username.strip()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(name)
                return Account(name, hit[1])
        user = self._directory.find_login(name) if name else None
        found = user.id if user is not None else None
        if self._ttl > 0:
            with self._lock:
                self._cache[name] = (now + self._ttl, found)
                self._cache.move_to_end(name)
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return Account(name, found)


def account_names(services: Services) -> AccountNames:
    """This process's :class:`AccountNames` on ``services``' directory."""
    names = services.extensions.get("iam.account_names")
    if not isinstance(names, AccountNames):
        names = AccountNames(services.directory, ttl=services.settings.lockout.name_cache_seconds)
        services.extensions["iam.account_names"] = names
    return names


def address_key(ip: str | None) -> str | None:
    return "addr:" + ip if ip else None


@dataclass(frozen=True)
class LockState:
    locked: bool
    until: dt.datetime | None = None
    by: str | None = None  # "account" or "address"


# Every sign-in runs begin_attempt and finish_attempt while holding SQLite's write lock (or the
# counter row's lock on PostgreSQL): their statements are built once (Core on the table, no ORM
# unit of work; the compiled form is cached on the statement), issue 18.
_LC = cast(Table, LockoutCounter.__table__)
_LOCKED = select(_LC.c.key, _LC.c.locked_until).where(
    _LC.c.key.in_(bindparam("keys", expanding=True)), _LC.c.locked_until > bindparam("now")
)
_READ = select(_LC.c.failures, _LC.c.in_flight, _LC.c.window_start, _LC.c.locked_until).where(
    _LC.c.key == bindparam("k")
)
_READ_FOR_UPDATE = _READ.with_for_update()
_WRITE = (
    update(_LC)
    .where(_LC.c.key == bindparam("k"))
    .values(
        failures=bindparam("f"),
        in_flight=bindparam("n"),
        window_start=bindparam("start"),
        locked_until=bindparam("until"),
    )
)
_OVER = or_(
    _LC.c.window_start <= bindparam("cutoff", type_=_LC.c.window_start.type),
    and_(
        _LC.c.locked_until.is_not(None), _LC.c.locked_until <= bindparam("now", type_=_LC.c.locked_until.type)
    ),
)
_LEFT = {  # an attempt ends: it is no longer in flight (a window that is over starts afresh)
    "in_flight": case((_OVER, 0), (_LC.c.in_flight > 0, _LC.c.in_flight - 1), else_=0),
    "window_start": case(
        (_OVER, bindparam("start", type_=_LC.c.window_start.type)), else_=_LC.c.window_start
    ),
}
_END_SUCCESS = (
    update(_LC).where(_LC.c.key == bindparam("k")).values({**_LEFT, "failures": 0, "locked_until": None})
)
_END_OTHER = (
    update(_LC)
    .where(_LC.c.key == bindparam("k"))
    .values(
        {
            **_LEFT,
            "failures": case((_OVER, 0), else_=_LC.c.failures),
            "locked_until": case((_OVER, null()), else_=_LC.c.locked_until),
        }
    )
)


def state(session: Session, *, account: Account, ip: str | None) -> LockState:
    """Is this account or this address locked now? (read-only)"""
    keys = [k for k in (account.key, address_key(ip)) if k]
    session.flush()  # counters changed through the ORM in this session (record_failure) count
    locked = session.connection().execute(_LOCKED, {"keys": keys, "now": clock.now()}).first()
    if locked is not None:
        return LockState(
            True, locked.locked_until, "account" if locked.key.startswith("acct:") else "address"
        )
    return LockState(False)


def _window_over(
    window_start: dt.datetime, locked_until: dt.datetime | None, settings: LockoutSettings, now: dt.datetime
) -> bool:
    """The counting window has passed, or the lock has ended: the counter starts afresh."""
    return window_start + dt.timedelta(seconds=settings.window) <= now or (
        locked_until is not None and locked_until <= now
    )


def _counter(session: Session, key: str, settings: LockoutSettings, now: dt.datetime) -> LockoutCounter:
    """The counter row for ``key``, locked for this transaction, with an elapsed window or lock
    already reset."""
    insert_if_absent(
        session, LockoutCounter, {"key": key, "failures": 0, "in_flight": 0, "window_start": now}
    )
    stmt = select(LockoutCounter).where(LockoutCounter.key == key).execution_options(populate_existing=True)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    assert row is not None
    if _window_over(row.window_start, row.locked_until, settings, now):
        # in-flight attempts older than the window belong to requests that died half-way
        row.failures, row.in_flight, row.window_start, row.locked_until = 0, 0, now, None
    return row


def _bump(session: Session, key: str, limit: int, settings: LockoutSettings, now: dt.datetime) -> bool:
    row = _counter(session, key, settings, now)
    row.failures += 1
    if row.failures >= limit and row.locked_until is None:
        row.locked_until = now + dt.timedelta(seconds=settings.duration)
        session.flush()
        return True
    session.flush()
    return False


def record_failure(
    session: Session, settings: LockoutSettings, *, account: Account, ip: str | None, user_agent: str | None
) -> LockState:
    """Count one failed sign-in; lock the account / address when a threshold is reached."""
    now = clock.now()
    newly: list[str] = []
    if _bump(session, account.key, settings.threshold, settings, now):
        newly.append("account")
    addr = address_key(ip)
    if addr and _bump(session, addr, settings.address_threshold, settings, now):
        newly.append("address")
    for what in newly:
        audit.record(
            session,
            "login.locked_out",
            severity=audit.Severity.CRITICAL,  # intrusion attempt: reported at once (CACAK Član 28)
            outcome="failure",
            actor=account.name[:256],
            subject=account.id,
            ip=ip,
            user_agent=user_agent,
            details={"locked": what, "minutes": settings.duration // 60},
        )
    return state(session, account=account, ip=ip)


class Outcome(enum.Enum):
    """How an attempt let through by :func:`begin_attempt` ended."""

    SUCCESS = "success"
    """The password was right (even if it must now be changed): the account's failures reset."""
    FAILURE = "failure"
    """Wrong password: one more failure, which may lock."""
    OTHER = "other"
    """The directory could not judge (unavailable, account disabled …): nothing is counted."""


def begin_attempt(
    session: Session, settings: LockoutSettings, *, account: Account, ip: str | None
) -> LockState:
    """Let one password check for ``account`` through to the directory, or refuse it.

    Commit this before asking the directory. The attempt counts against the threshold while it
    is in flight, so however many attempts run in parallel, the directory sees at most
    ``threshold`` wrong passwords per window (and AD, whose own threshold is higher, never locks
    the account first). Refused while locked, or while failures + attempts in flight have
    reached the threshold.

    Four statements, built once (see ``_READ``)."""
    now = clock.now()
    current = state(session, account=account, ip=ip)
    if current.locked:
        return current
    insert_if_absent(
        session, LockoutCounter, {"key": account.key, "failures": 0, "in_flight": 0, "window_start": now}
    )
    conn = session.connection()
    read = _READ_FOR_UPDATE if is_postgres(session) else _READ
    failures, in_flight, window_start, locked_until = conn.execute(read, {"k": account.key}).one()
    if _window_over(window_start, locked_until, settings, now):
        # in-flight attempts older than the window belong to requests that died half-way
        failures, in_flight, window_start, locked_until = 0, 0, now, None
    refused = locked_until is not None or failures + in_flight >= settings.threshold
    n = in_flight + (0 if refused else 1)
    conn.execute(
        _WRITE, {"k": account.key, "f": failures, "n": n, "start": window_start, "until": locked_until}
    )
    if locked_until is not None:
        return LockState(True, locked_until, "account")
    return LockState(True, None, "account") if refused else LockState(False)


def finish_attempt(
    session: Session,
    settings: LockoutSettings,
    *,
    account: Account,
    ip: str | None,
    user_agent: str | None,
    outcome: Outcome,
) -> None:
    """End an attempt started with :func:`begin_attempt` and count its outcome.

    A success (or an attempt the directory could not judge) is one UPDATE; a counter that is
    gone (an administrator's unlock deleted it) needs nothing: absent means no failures."""
    now = clock.now()
    if outcome is Outcome.FAILURE:
        row = _counter(session, account.key, settings, now)
        row.in_flight = max(0, row.in_flight - 1)
        session.flush()
        record_failure(session, settings, account=account, ip=ip, user_agent=user_agent)
        return
    params = {
        "k": account.key,
        "now": now,
        "start": now,
        "cutoff": now - dt.timedelta(seconds=settings.window),
    }
    session.flush()
    session.connection().execute(_END_SUCCESS if outcome is Outcome.SUCCESS else _END_OTHER, params)


def unlock(session: Session, *, account: Account, actor: str) -> bool:
    """Administrator unlock of an account (and of the name as typed, if it had its own counter,
    e.g. while it was no account); True if either was locked."""
    keys = {account.key, Account(account.name).key}
    now = clock.now()
    rows = session.scalars(select(LockoutCounter).where(LockoutCounter.key.in_(keys))).all()
    was = any(r.locked_until is not None and r.locked_until > now for r in rows)
    session.execute(delete(LockoutCounter).where(LockoutCounter.key.in_(keys)))
    audit.record(
        session,
        "login.unlocked",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=account.id,
        details={"username": account.name[:256], "was_locked": was},
    )
    return was
