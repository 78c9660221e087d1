"""Tokens of an elevated admin account never outlive the elevation (R-PIM-4).

Registered into sso's token-claims extension point (:func:`sso.claims.register_token_hook`):
for a token whose ``sub`` is a PIM admin account, ``exp`` is clamped to the earliest end of the
account's live elevations (to "now" when none is live) and ``pim_roles`` names the roles.
Tokens of ordinary accounts are untouched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from iam import clock
from pim.models import LIVE_STATES, AdminAccount, ElevationRequest
from sso.claims import register_token_hook

# asked on every token (refreshes included): built once, Core on the tables
_ADMIN = AdminAccount.__table__
_ELEVATION = ElevationRequest.__table__
_PERSON_OF = select(_ADMIN.c.person_sub).where(_ADMIN.c.account_id == bindparam("sub"))
_LIVE = select(_ELEVATION.c.role, _ELEVATION.c.ends_at).where(
    _ELEVATION.c.requester_sub == bindparam("person"),
    _ELEVATION.c.state.in_([str(s) for s in LIVE_STATES]),
    _ELEVATION.c.ends_at > bindparam("now"),
)


def elevation_claims(session: Session, sub: str, exp: int) -> dict[str, Any]:
    conn = session.connection()
    person = conn.execute(_PERSON_OF, {"sub": sub}).scalar()
    if person is None:
        return {}
    live = conn.execute(_LIVE, {"person": person, "now": clock.now()}).all()
    if not live:
        return {"exp": clock.timestamp(), "pim_roles": []}
    end = min(int(ends.timestamp()) for _, ends in live if ends is not None)
    return {"exp": min(exp, end), "pim_roles": sorted({role for role, _ in live})}


def register() -> None:
    register_token_hook(elevation_claims)
