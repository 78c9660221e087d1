"""Housekeeping (rows nothing can use any more) and refresh tokens minted for the benchmark."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from iam import clock
from sso.mfa.models import TotpCredential
from sso.models import (
    AuthorizationCode,
    RefreshToken,
    RevokedAccessToken,
    UsedAssertion,
)
from sso.service.context import AuthContext
from sso.service.tokens import issue_refresh_token


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
