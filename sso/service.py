"""The provider's domain operations: SSO sessions, codes, refresh tokens, logout.

Functions take a :class:`~sqlalchemy.orm.Session`, flush but never commit, and write their own
audit rows. Nothing here imports Flask: views pass actor, address and user agent in.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from iam import audit, clock, events, jobs
from iam.config import Settings
from iam.crypto import random_token, token_hash
from iam.db import insert_if_absent
from sso.mfa.models import TotpCredential
from sso.models import (
    AuthorizationCode,
    Client,
    RefreshToken,
    RevokedAccessToken,
    SessionClient,
    SsoSession,
    UsedAssertion,
)

REFRESH_PREFIX = "iam_rt_"
CODE_PREFIX = "iam_ac_"
SESSION_PREFIX = "iam_ss_"
_TOUCH_EVERY = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class AuthContext:
    """How and when the user signed in (carried by codes, refresh tokens, sessions)."""

    sub: str
    auth_time: dt.datetime
    acr: str
    amr: tuple[str, ...]
    session_id: str | None = None
    sid: str | None = None

    @classmethod
    def of(cls, row: AuthorizationCode | RefreshToken | SsoSession | Row[Any]) -> AuthContext:
        """The sign-in facts carried by a code, a refresh token or the SSO session itself."""
        if isinstance(row, SsoSession):
            return cls(row.sub, row.auth_time, row.acr, tuple(row.amr), row.id, row.sid)
        return cls(row.sub, row.auth_time, row.acr, tuple(row.amr), row.session_id)


# -- SSO sessions ---------------------------------------------------------------------------
def create_sso_session(
    session: Session,
    settings: Settings,
    *,
    sub: str,
    acr: str,
    amr: list[str],
    ip: str | None,
    user_agent: str | None,
) -> tuple[str, SsoSession]:
    """Start an SSO session; return the cookie value (shown once) and the row."""
    cookie = random_token(SESSION_PREFIX)
    now = clock.now()
    row = SsoSession(
        id=token_hash(cookie),
        sid=secrets.token_urlsafe(16),
        sub=sub,
        auth_time=now,
        acr=acr,
        amr=amr,
        created_at=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(seconds=settings.session.absolute_timeout),
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
    )
    session.add(row)
    session.flush()
    return cookie, row


def _ended_by_time(row: SsoSession, settings: Settings, now: dt.datetime) -> str | None:
    """Why a session that was live has ended by now ("absolute_timeout", "idle_timeout"), or None."""
    if row.expires_at <= now:
        return "absolute_timeout"
    if row.last_seen_at + dt.timedelta(seconds=settings.session.idle_timeout) <= now:
        return "idle_timeout"
    return None


def _unended(session: Session, cookie: str | None) -> SsoSession | None:
    """The session row a cookie names, unless there is none or it has ended."""
    if not cookie or not cookie.startswith(SESSION_PREFIX):
        return None
    row = session.get(SsoSession, token_hash(cookie))
    return None if row is None or row.ended_at is not None else row


def load_sso_session(session: Session, settings: Settings, cookie: str | None) -> SsoSession | None:
    """The live session for a cookie, touched; None when absent, ended or timed out."""
    row = _unended(session, cookie)
    if row is None:
        return None
    now = clock.now()
    reason = _ended_by_time(row, settings, now)
    if reason:
        end_sso_session(session, row, reason=reason, actor="system")
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        row.last_seen_at = now
    return row


def find_sso_session(
    reader: Session, session: Session, settings: Settings, cookie: str | None
) -> SsoSession | None:
    """As :func:`load_sso_session`, but read through ``reader`` (on SQLite: without the write
    lock, issue 18). The live row is then taken over by ``session`` without reading it again,
    so changes to it are written there — unless it must be written now (touched, or ended by
    time): then it is loaded by ``session`` itself."""
    row = _unended(reader, cookie)
    if row is None:
        return None
    now = clock.now()
    if _ended_by_time(row, settings, now) or now - row.last_seen_at >= _TOUCH_EVERY:
        return load_sso_session(session, settings, cookie)
    return session.merge(row, load=False)


def peek_sso_session(session: Session, settings: Settings, cookie: str | None) -> SsoSession | None:
    """The live session for a cookie, read only: neither touched nor ended (for a request that
    must not hold a write before its own separate transaction)."""
    row = _unended(session, cookie)
    return None if row is None or _ended_by_time(row, settings, clock.now()) else row


_SS = cast(Table, SsoSession.__table__)
_SSO_LIVE = select(_SS.c.id).where(_SS.c.id == bindparam("id"), _SS.c.ended_at.is_(None))


def link_client(session: Session, sso: SsoSession, client_id: str) -> bool:
    """Remember that ``sso`` signed in to ``client_id`` (for logout) — if it is still live, read
    in ``session``, the transaction the code will be written in: ``sso`` may have been read
    (without SQLite's write lock, :func:`find_sso_session`) before a logout elsewhere ended it.
    False, and nothing linked, when it has ended."""
    if session.connection().execute(_SSO_LIVE, {"id": sso.id}).first() is None:
        return False
    insert_if_absent(session, SessionClient, {"session_id": sso.id, "client_id": client_id})
    return True


def user_sessions(session: Session, sub: str) -> list[SsoSession]:
    now = clock.now()
    return list(
        session.scalars(
            select(SsoSession)
            .where(SsoSession.sub == sub, SsoSession.ended_at.is_(None), SsoSession.expires_at > now)
            .order_by(SsoSession.created_at.desc())
        )
    )


def end_sso_session(
    session: Session,
    row: SsoSession,
    *,
    reason: str,
    actor: str,
    ip: str | None = None,
    user_agent: str | None = None,
    skip_client: str | None = None,
) -> None:
    """End one SSO session: revoke its refresh tokens, queue back-channel logouts — once: of
    two requests ending it at the same time (or one that read it before the other ended it),
    only the first does anything (a conditional UPDATE)."""
    if row.ended_at is not None:
        return
    now = clock.now()
    ended = session.execute(
        update(SsoSession)
        .where(SsoSession.id == row.id, SsoSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if getattr(ended, "rowcount", 0) != 1:
        session.refresh(row, ["ended_at", "end_reason"])
        return
    set_committed_value(row, "ended_at", now)
    set_committed_value(row, "end_reason", reason)
    revoke_refresh_tokens(session, session_id=row.id)
    client_ids = session.scalars(
        select(SessionClient.client_id).where(SessionClient.session_id == row.id)
    ).all()
    for client_id in client_ids:
        if client_id != skip_client:
            queue_backchannel_logout(session, client_id=client_id, sub=row.sub, sid=row.sid)
    audit.record(
        session,
        "logout",
        actor=actor,
        subject=row.sub,
        ip=ip,
        user_agent=user_agent,
        details={"reason": reason, "sid": row.sid, "clients": sorted(client_ids)},
    )
    events.identity_signed_out.send(row.sub, session=session, sso_session_id=row.id)


def end_all_sessions(session: Session, sub: str, *, reason: str, actor: str) -> int:
    rows = user_sessions(session, sub)
    for row in rows:
        end_sso_session(session, row, reason=reason, actor=actor)
    revoke_refresh_tokens(session, sub=sub)
    return len(rows)


def sweep_inactive_accounts(session: Session, directory: Any) -> list[str]:
    """Sign out everywhere the accounts that the directory no longer lets sign in.

    Looks at every account holding a live SSO session or a usable refresh token; an account
    that is disabled, locked or gone in the directory loses its sessions and refresh tokens and
    its applications get back-channel logouts. Stops quietly while the directory is down.
    """
    from iam.directory.errors import DirectoryUnavailable

    now = clock.now()
    subs = set(
        session.scalars(
            select(SsoSession.sub).where(SsoSession.ended_at.is_(None), SsoSession.expires_at > now)
        )
    ) | set(
        session.scalars(
            select(RefreshToken.sub).where(
                RefreshToken.revoked_at.is_(None),
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > now,
            )
        )
    )
    ended: list[str] = []
    for sub in sorted(subs):
        try:
            user = directory.get_user(sub)
        except DirectoryUnavailable:
            break
        if user is not None and user.enabled and not user.locked:
            continue
        state = "missing" if user is None else ("disabled" if not user.enabled else "locked")
        end_all_sessions(session, sub, reason=f"directory_account_{state}", actor="system")
        audit.record(
            session,
            "identity.inactive_in_directory",
            severity=audit.Severity.SIGNIFICANT,
            actor="system",
            subject=sub,
            details={"state": state},
        )
        ended.append(sub)
    return ended


def queue_backchannel_logout(session: Session, *, client_id: str, sub: str, sid: str | None) -> None:
    client = session.get(Client, client_id)
    if client is None or not client.backchannel_logout_uri:
        return
    jobs.enqueue(
        session,
        "sso.backchannel_logout",
        {"client_id": client_id, "sub": sub, "sid": sid},
        dedup_key=f"bcl:{client_id}:{sid or sub}",
        priority=jobs.URGENT,
    )


def _on_identity_disabled(sub: str, *, session: Session, reason: str, **_: Any) -> None:
    end_all_sessions(session, sub, reason=f"identity_disabled: {reason}", actor="system")


events.identity_disabled.connect(_on_identity_disabled)


# -- authorization codes --------------------------------------------------------------------
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


# -- refresh tokens -------------------------------------------------------------------------
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


def purge_expired(session: Session) -> dict[str, int]:
    """Housekeeping: drop rows nothing can use any more."""
    now = clock.now()
    out: dict[str, int] = {}
    for name, stmt in (
        (
            "codes",
            delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - dt.timedelta(days=1)),
        ),
        (
            "refresh_tokens",
            delete(RefreshToken).where(RefreshToken.expires_at < now - dt.timedelta(days=1)),
        ),
        (
            "revoked_access_tokens",
            delete(RevokedAccessToken).where(RevokedAccessToken.expires_at < now),
        ),
        ("assertions", delete(UsedAssertion).where(UsedAssertion.expires_at < now)),
        (
            "abandoned_totp_enrollments",
            delete(TotpCredential).where(
                TotpCredential.confirmed_at.is_(None), TotpCredential.created_at < now - dt.timedelta(days=1)
            ),
        ),
    ):
        out[name] = int(getattr(session.execute(stmt), "rowcount", 0))
    return out


def mint_refresh_tokens_for_benchmark(services: Any, *, client_id: str, count: int) -> list[str]:
    """Benchmarks only: ``count`` independent refresh tokens for a local demo user."""
    from iam.directory.base import NewUser

    directory = services.directory
    user = directory.find_user(username="bench-user")
    if user is None:
        user = directory.create_user(NewUser(username="bench-user", given_name="Bench", enabled=True))
        directory.set_password(user.id, secrets.token_urlsafe(24), must_change=False)
    out: list[str] = []
    with services.transaction() as session:
        from iam.identities import upsert_identity

        upsert_identity(session, user, kind=directory.kind)
        ctx = AuthContext(sub=user.id, auth_time=clock.now(), acr="password", amr=("pwd",))
        for _ in range(count):
            value, _row = issue_refresh_token(
                session, services.settings, client_id=client_id, ctx=ctx, scope="openid profile"
            )
            out.append(value)
    return out
