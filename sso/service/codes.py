"""Authorization codes: stored hashed, read without the write lock, claimed once; a replay
revokes what the code gave."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import Settings
from iam.crypto import random_token, token_hash
from sso.models import (
    AuthorizationCode,
)
from sso.service.context import CODE_PREFIX, AuthContext
from sso.service.tokens import revoke_access_token, revoke_family


def save_code(
    session: Session,
    settings: Settings,
    *,
    client_id: str,
    ctx: AuthContext,
    redirect_uri: str,
    scope: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
) -> str:
    code = random_token(CODE_PREFIX)
    session.add(
        AuthorizationCode(
            code_hash=token_hash(code),
            client_id=client_id,
            sub=ctx.sub,
            session_id=ctx.session_id,
            redirect_uri=redirect_uri,
            scope=scope,
            nonce=nonce,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            auth_time=ctx.auth_time,
            acr=ctx.acr,
            amr=list(ctx.amr),
            expires_at=clock.now() + dt.timedelta(seconds=settings.tokens.code_lifetime),
        )
    )
    session.flush()
    return code


# A code is redeemed on every sign-in: read and claimed with statements built once (Core).
_AC = cast(Table, AuthorizationCode.__table__)
_AC_BY_HASH = select(_AC).where(_AC.c.code_hash == bindparam("h"))
_AC_CLAIM = (
    update(_AC)
    .where(_AC.c.code_hash == bindparam("h"), _AC.c.used_at.is_(None), _AC.c.expires_at > bindparam("now"))
    .values(
        used_at=bindparam("now"),
        access_jti=bindparam("jti"),
        access_expires_at=bindparam("exp"),
        family_id=bindparam("family"),
    )
)


def find_code(reader: Session, session: Session, code: str, client_id: str) -> Row[Any] | None:
    """The code ``client_id`` may redeem now, read without taking any write lock; the caller
    signs the tokens, then :func:`claim_code`. A code used before is a replay: what its first
    use issued is revoked (in ``session``, RFC 6749 §4.1.2) and None is returned."""
    row = reader.connection().execute(_AC_BY_HASH, {"h": token_hash(code)}).first()
    if row is None or row.client_id != client_id:
        return None
    if row.used_at is not None:
        _code_replayed(session, row)
        return None
    if row.expires_at <= clock.now():
        return None
    return row


def claim_code(
    session: Session, row: Row[Any], *, jti: str | None, exp: dt.datetime | None, family_id: str | None
) -> bool:
    """Mark the code used — atomically, so of two concurrent redemptions exactly one wins, and
    only while it has not expired — and record what it issued (the access token's ``jti`` and
    expiry, the refresh token family), so that a replay can revoke them. The loser is a replay:
    the winner's tokens are revoked."""
    claimed = session.connection().execute(
        _AC_CLAIM, {"h": row.code_hash, "now": clock.now(), "jti": jti, "exp": exp, "family": family_id}
    )
    if claimed.rowcount == 1:
        return True
    winner = session.connection().execute(_AC_BY_HASH, {"h": row.code_hash}).first()
    if winner is not None and winner.used_at is not None:
        _code_replayed(session, winner)
    return False  # used by a concurrent redemption, or expired while the tokens were made


def _code_replayed(session: Session, row: Row[Any]) -> None:
    if row.family_id:
        revoke_family(session, row.family_id)
    if row.access_jti and row.access_expires_at is not None:
        revoke_access_token(session, row.access_jti, int(row.access_expires_at.timestamp()))
    audit.record(
        session,
        "token.code_replay",
        severity=audit.Severity.SIGNIFICANT,
        outcome="failure",
        subject=row.sub,
        client_id=row.client_id,
        details={"family_revoked": bool(row.family_id), "access_revoked": bool(row.access_jti)},
    )
