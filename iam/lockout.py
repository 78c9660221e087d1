"""Lockout at the provider, before the directory's own (R-PW-6, R-AUD-2).

Failures are counted per account name and per network address in the database, so every
worker process sees the same numbers; the counter row is locked for the update (PostgreSQL
``FOR UPDATE``; SQLite serialises writers), so parallel wrong attempts lock at exactly the
threshold. A lock is a critical audit event, which mails the security officer.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import LockoutSettings
from iam.db import insert_if_absent, is_postgres
from iam.models.lockout import LockoutCounter


def account_key(username: str) -> str:
    return "acct:" + username.strip().lower()[:250]


def address_key(ip: str | None) -> str | None:
    return "addr:" + ip if ip else None


@dataclass(frozen=True)
class LockState:
    locked: bool
    until: dt.datetime | None = None
    by: str | None = None  # "account" or "address"


def state(session: Session, *, username: str, ip: str | None) -> LockState:
    """Is this account name or this address locked now? (read-only)"""
    now = clock.now()
    keys = [k for k in (account_key(username), address_key(ip)) if k]
    rows = session.scalars(select(LockoutCounter).where(LockoutCounter.key.in_(keys))).all()
    for row in rows:
        if row.locked_until is not None and row.locked_until > now:
            return LockState(True, row.locked_until, "account" if row.key.startswith("acct:") else "address")
    return LockState(False)


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
    if row.window_start + dt.timedelta(seconds=settings.window) <= now or (
        row.locked_until is not None and row.locked_until <= now
    ):
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
    session: Session, settings: LockoutSettings, *, username: str, ip: str | None, user_agent: str | None
) -> LockState:
    """Count one failed sign-in; lock the account name / address when a threshold is reached."""
    now = clock.now()
    newly: list[str] = []
    if _bump(session, account_key(username), settings.threshold, settings, now):
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
            actor=username[:256],
            ip=ip,
            user_agent=user_agent,
            details={"locked": what, "minutes": settings.duration // 60},
        )
    return state(session, username=username, ip=ip)


class Outcome(enum.Enum):
    """How an attempt let through by :func:`begin_attempt` ended."""

    SUCCESS = "success"
    """The password was right (even if it must now be changed): the account's failures reset."""
    FAILURE = "failure"
    """Wrong password: one more failure, which may lock."""
    OTHER = "other"
    """The directory could not judge (unavailable, account disabled …): nothing is counted."""


def begin_attempt(session: Session, settings: LockoutSettings, *, username: str, ip: str | None) -> LockState:
    """Let one password check for ``username`` through to the directory, or refuse it.

    Commit this before asking the directory. The attempt counts against the threshold while it
    is in flight, so however many attempts run in parallel, the directory sees at most
    ``threshold`` wrong passwords per window (and AD, whose own threshold is higher, never locks
    the account first). Refused while locked, or while failures + attempts in flight have
    reached the threshold."""
    now = clock.now()
    current = state(session, username=username, ip=ip)
    if current.locked:
        return current
    row = _counter(session, account_key(username), settings, now)
    if row.locked_until is not None:
        return LockState(True, row.locked_until, "account")
    if row.failures + row.in_flight >= settings.threshold:
        session.flush()
        return LockState(True, None, "account")
    row.in_flight += 1
    session.flush()
    return LockState(False)


def finish_attempt(
    session: Session,
    settings: LockoutSettings,
    *,
    username: str,
    ip: str | None,
    user_agent: str | None,
    outcome: Outcome,
) -> None:
    """End an attempt started with :func:`begin_attempt` and count its outcome."""
    now = clock.now()
    row = _counter(session, account_key(username), settings, now)
    row.in_flight = max(0, row.in_flight - 1)
    if outcome is Outcome.SUCCESS:
        row.failures, row.locked_until = 0, None
    session.flush()
    if outcome is Outcome.FAILURE:
        record_failure(session, settings, username=username, ip=ip, user_agent=user_agent)


def unlock(session: Session, *, username: str, actor: str) -> bool:
    """Administrator unlock of an account name; True if it was locked."""
    was = state(session, username=username, ip=None).locked
    session.execute(delete(LockoutCounter).where(LockoutCounter.key == account_key(username)))
    audit.record(
        session,
        "login.unlocked",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        details={"username": username[:256], "was_locked": was},
    )
    return was
