"""How a person signed in, as codes, refresh tokens and SSO sessions carry it, and the
prefixes of the values we hand out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from sso.models import (
    AuthorizationCode,
    RefreshToken,
    SsoSession,
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
