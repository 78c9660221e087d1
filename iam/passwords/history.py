"""Password history, count-based and time-based at once (R-PW-2; CACAK Član 20, PABIANICE §16.5
and §20.2).

Each password set through us is kept as an argon2id hash with the time it was set. A password
counts as "used" from its ``set_at`` until the next password's ``set_at`` (the newest one is
still in use). A candidate is refused when it matches

* one of the last ``history_count`` passwords (the current one included), or
* any password that was in use at some moment within the last ``history_days`` days.

Rows are kept exactly as long as one of the two rules still needs them (:func:`prune`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from iam.models.passwords import PasswordHistory
from iam.passwords import hashing
from iam.passwords.profiles import PasswordProfile

__all__ = ["add", "entries", "needed", "prune", "reused"]


@dataclass(frozen=True, slots=True)
class _Entry:
    row: PasswordHistory
    used_until: dt.datetime | None
    """When the next password replaced this one; None = still in use."""


def entries(session: Session, sub: str) -> list[PasswordHistory]:
    """The account's history, newest first."""
    stmt = (
        select(PasswordHistory)
        .where(PasswordHistory.sub == sub)
        .order_by(PasswordHistory.set_at.desc(), PasswordHistory.id.desc())
    )
    return list(session.scalars(stmt))


def _with_end(rows: list[PasswordHistory]) -> list[_Entry]:
    out: list[_Entry] = []
    newer: PasswordHistory | None = None
    for row in rows:  # newest first
        out.append(_Entry(row, newer.set_at if newer is not None else None))
        newer = row
    return out


def needed(profile: PasswordProfile, rows: list[PasswordHistory], now: dt.datetime) -> list[PasswordHistory]:
    """The rows (newest first) that the profile's history rules still look at."""
    window_start = now - dt.timedelta(days=profile.history_days) if profile.history_days else None
    keep: list[PasswordHistory] = []
    for index, entry in enumerate(_with_end(rows)):
        by_count = index < profile.history_count
        by_time = window_start is not None and (entry.used_until is None or entry.used_until > window_start)
        if by_count or by_time:
            keep.append(entry.row)
    return keep


def reused(session: Session, profile: PasswordProfile, *, sub: str, password: str, now: dt.datetime) -> bool:
    """Whether ``password`` is one the history rules forbid for this account.

    Each relevant stored hash is verified (argon2), so the cost grows with the history kept.
    """
    if not profile.history_count and not profile.history_days:
        return False
    return any(
        hashing.verify_password(row.password_hash, password)
        for row in needed(profile, entries(session, sub), now)
    )


def add(
    session: Session,
    *,
    sub: str,
    password: str,
    now: dt.datetime,
    by_admin: bool = False,
    password_hash: str | None = None,
) -> PasswordHistory:
    """Remember that ``sub`` now has ``password`` (as an argon2id hash; ``password_hash`` when
    the caller hashed it already, outside its transaction)."""
    if password_hash is None:
        password_hash = hashing.hash_password(password)
    row = PasswordHistory(sub=sub, password_hash=password_hash, set_at=now, by_admin=by_admin)
    session.add(row)
    session.flush()
    return row


def prune(session: Session, profile: PasswordProfile, *, sub: str, now: dt.datetime) -> int:
    """Delete the rows neither history rule needs any more; return how many."""
    rows = entries(session, sub)
    keep = {r.id for r in needed(profile, rows, now)}
    drop = [r.id for r in rows if r.id not in keep]
    if drop:
        session.execute(delete(PasswordHistory).where(PasswordHistory.id.in_(drop)))
    return len(drop)
