"""Throttling of code entry, on the provider's lockout counters (``iam.lockout``'s table),
one counter per account (``mfa:<sub>``): a wrong TOTP or recovery code counts; at the threshold
code entry is blocked for a while and the security officer hears of it (critical event)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import MfaSettings
from iam.db import insert_if_absent, is_postgres
from iam.models.lockout import LockoutCounter


class Throttled(Exception):
    """Too many wrong codes for this account: code entry is blocked until ``until``."""

    def __init__(self, until: dt.datetime) -> None:
        super().__init__("too many wrong codes")
        self.until = until


def _throttle_key(sub: str) -> str:
    return "mfa:" + sub


def throttled_until(session: Session, sub: str) -> dt.datetime | None:
    row = session.get(LockoutCounter, _throttle_key(sub))
    if row is not None and row.locked_until is not None and row.locked_until > clock.now():
        return row.locked_until
    return None


def check_throttle(session: Session, sub: str) -> None:
    until = throttled_until(session, sub)
    if until is not None:
        raise Throttled(until)


def count_failure(
    session: Session, settings: MfaSettings, sub: str, ip: str | None, user_agent: str | None
) -> None:
    now = clock.now()
    key = _throttle_key(sub)
    insert_if_absent(session, LockoutCounter, {"key": key, "failures": 0, "window_start": now})
    stmt = select(LockoutCounter).where(LockoutCounter.key == key).execution_options(populate_existing=True)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    assert row is not None
    if row.window_start + dt.timedelta(seconds=settings.throttle_window) <= now or (
        row.locked_until is not None and row.locked_until <= now
    ):
        row.failures, row.window_start, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= settings.throttle_threshold and row.locked_until is None:
        row.locked_until = now + dt.timedelta(seconds=settings.throttle_duration)
        audit.record(
            session,
            "mfa.throttled",
            severity=audit.Severity.CRITICAL,  # someone holds the password and is guessing codes
            outcome="failure",
            actor=sub,
            subject=sub,
            ip=ip,
            user_agent=user_agent,
            details={"failures": row.failures, "minutes": settings.throttle_duration // 60},
        )
    session.flush()


def clear_throttle(session: Session, sub: str) -> None:
    session.execute(delete(LockoutCounter).where(LockoutCounter.key == _throttle_key(sub)))
