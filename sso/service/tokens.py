"""Refresh tokens (rotation with reuse detection and a retry grace), revoked access tokens,
and the client assertions already used (RFC 7523 ``jti``)."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import Settings
from iam.crypto import random_token, token_hash
from sso.models import (
    RefreshToken,
    RevokedAccessToken,
    UsedAssertion,
)
from sso.service.context import REFRESH_PREFIX, AuthContext


@dataclass(frozen=True)
class IssuedRefresh:
    """What the caller needs of a refresh token just stored (its value is returned beside it)."""

    token_hash: str
    family_id: str
    expires_at: dt.datetime


# The refresh path runs on every token refresh: its statements are built once (SQLAlchemy Core on
# the table, no ORM unit of work; the compiled form is cached on the statement).
_RT = cast(Table, RefreshToken.__table__)
_RT_INSERT = insert(_RT)
_RT_BY_HASH = select(_RT).where(_RT.c.token_hash == bindparam("h"))
_RT_CLAIM = (
    update(_RT)
    .where(_RT.c.token_hash == bindparam("h"), _RT.c.used_at.is_(None), _RT.c.revoked_at.is_(None))
    .values(used_at=bindparam("now"), replaced_by=bindparam("successor"))
)


def issue_refresh_token(
    session: Session,
    settings: Settings,
    *,
    client_id: str,
    ctx: AuthContext,
    scope: str,
    family_id: str | None = None,
    family_expires_at: dt.datetime | None = None,
    value: str | None = None,
) -> tuple[str, IssuedRefresh]:
    """Store a new refresh token (one INSERT, written at once) and return its value."""
    value = value or new_refresh_value()
    now = clock.now()
    issued = IssuedRefresh(
        token_hash=token_hash(value),
        family_id=family_id or new_family_id(),
        expires_at=family_expires_at or now + dt.timedelta(seconds=settings.tokens.refresh_token_lifetime),
    )
    session.connection().execute(
        _RT_INSERT,
        {
            "token_hash": issued.token_hash,
            "family_id": issued.family_id,
            "client_id": client_id,
            "sub": ctx.sub,
            "session_id": ctx.session_id,
            "scope": scope,
            "auth_time": ctx.auth_time,
            "acr": ctx.acr,
            "amr": list(ctx.amr),
            "created_at": now,
            "expires_at": issued.expires_at,
        },
    )
    return value, issued


def _refresh_row(session: Session, hashed: str) -> Row[Any] | None:
    """The stored refresh token (a read-only row with the model's attribute names)."""
    return session.connection().execute(_RT_BY_HASH, {"h": hashed}).first()


SUPERSEDED = "superseded"


def find_refresh_token_for(
    reader: Session, session: Session, value: str, client_id: str, *, retry_grace: int = 0
) -> Row[Any] | None:
    """A refresh token the client may use now, read without taking any write lock.

    A token that was already used is a replay: its whole family is revoked (in ``session``) —
    unless it is a retry within ``retry_grace`` seconds whose successor was never used
    (``tokens.refresh_retry_grace_seconds``). A token a retry superseded is a replay too.
    The caller must still :func:`claim_refresh_token` before issuing anything.
    """
    row = _refresh_row(reader, token_hash(value))
    if row is None or row.client_id != client_id or row.expires_at <= clock.now():
        return None
    if row.revoked_at is not None:
        if row.revoked_reason == SUPERSEDED:
            _reused(session, row)
        return None
    if row.used_at is not None and not _retry_allowed(reader, row, retry_grace):
        _reused(session, row)
        return None
    return row


def _retry_allowed(reader: Session, row: Row[Any], grace: int) -> bool:
    if grace <= 0 or row.used_at is None or row.replaced_by is None:
        return False
    if clock.now() - row.used_at > dt.timedelta(seconds=grace):
        return False
    successor = _refresh_row(reader, row.replaced_by)
    return successor is not None and successor.used_at is None and successor.revoked_at is None


def new_family_id() -> str:
    """The id of a new refresh token family (a sign-in's chain of rotated tokens)."""
    return secrets.token_urlsafe(16)


def new_refresh_value() -> str:
    return random_token(REFRESH_PREFIX)


def claim_refresh_token(session: Session, row: Row[Any], successor: str) -> bool:
    """Mark the token used and record the hash of its ``successor``, atomically: exactly one of
    two concurrent uses wins; the loser is treated as a replay and revokes the family (RFC 9700
    §4.14.2). A retry admitted by :func:`find_refresh_token_for` instead revokes the unused
    successor of the first use (it never reached the client) and points at the new one."""
    now = clock.now()
    if row.used_at is None:
        claimed = session.connection().execute(
            _RT_CLAIM, {"h": row.token_hash, "now": now, "successor": successor}
        )
        if claimed.rowcount == 1:
            return True
    elif _supersede(session, row, successor, now):
        audit.record(
            session,
            "token.refresh_retry",
            severity=audit.Severity.SIGNIFICANT,
            subject=row.sub,
            client_id=row.client_id,
            details={"family": row.family_id, "first_used_at": row.used_at.isoformat()},
        )
        return True
    _reused(session, row)
    return False


def _supersede(session: Session, row: Row[Any], successor: str, now: dt.datetime) -> bool:
    lost = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == row.replaced_by,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason=SUPERSEDED)
    )
    if getattr(lost, "rowcount", 0) != 1:
        return False
    moved = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == row.token_hash,
            RefreshToken.replaced_by == row.replaced_by,
            RefreshToken.revoked_at.is_(None),
        )
        .values(replaced_by=successor)
    )
    return getattr(moved, "rowcount", 0) == 1


def _reused(session: Session, row: Row[Any]) -> None:
    revoke_family(session, row.family_id)
    audit.record(
        session,
        "token.refresh_reuse",
        severity=audit.Severity.CRITICAL,
        outcome="failure",
        subject=row.sub,
        client_id=row.client_id,
        details={"family": row.family_id},
    )


def revoke_family(session: Session, family_id: str) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )


def revoke_refresh_tokens(session: Session, *, sub: str | None = None, session_id: str | None = None) -> None:
    stmt = update(RefreshToken).where(RefreshToken.revoked_at.is_(None))
    if sub is not None:
        stmt = stmt.where(RefreshToken.sub == sub)
    if session_id is not None:
        stmt = stmt.where(RefreshToken.session_id == session_id)
    session.execute(stmt.values(revoked_at=clock.now()))


def find_refresh_token(session: Session, value: str) -> RefreshToken | None:
    return session.get(RefreshToken, token_hash(value))


# -- access tokens --------------------------------------------------------------------------
def revoke_access_token(session: Session, jti: str, exp: int) -> None:
    if session.get(RevokedAccessToken, jti) is None:
        session.add(RevokedAccessToken(jti=jti, expires_at=dt.datetime.fromtimestamp(exp, dt.UTC)))


def access_token_revoked(session: Session, jti: str) -> bool:
    return session.get(RevokedAccessToken, jti) is not None


def remember_assertion(session: Session, client_id: str, jti: str, exp: int) -> bool:
    """True the first time a client assertion ``jti`` is seen (no replay)."""
    key = f"{client_id}:{jti}"[:200]
    if session.get(UsedAssertion, key) is not None:
        return False
    session.add(UsedAssertion(key=key, expires_at=dt.datetime.fromtimestamp(exp, dt.UTC)))
    session.flush()
    return True
