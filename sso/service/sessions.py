"""SSO sessions: created at sign-in, read on every authorization request, linked to the
clients they signed in to, ended by logout, idle or absolute timeout, or a disabled account
(back-channel logout queued for each client)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from iam import audit, clock, events, jobs
from iam.config import Settings
from iam.crypto import random_token, token_hash
from iam.db import insert_if_absent
from sso.models import (
    Client,
    RefreshToken,
    SessionClient,
    SsoSession,
)
from sso.service.context import _TOUCH_EVERY, SESSION_PREFIX
from sso.service.tokens import revoke_refresh_tokens


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
