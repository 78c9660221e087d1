"""Tokens of an elevated admin account never outlive the elevation (R-PIM-4).

Registered into sso's token-claims extension point (:func:`sso.claims.register_token_hook`):
for a token whose ``sub`` is a PIM admin account, ``exp`` is clamped to the earliest end of the
account's live elevations (to "now" when none is live) and ``pim_roles`` names the roles.
Tokens of ordinary accounts are untouched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import clock
from pim.models import LIVE_STATES, AdminAccount, ElevationRequest


def elevation_claims(session: Session, sub: str, exp: int) -> dict[str, Any]:
    person = session.scalar(select(AdminAccount.person_sub).where(AdminAccount.account_id == sub))
    if person is None:
        return {}
    now = clock.now()
    live = session.execute(
        select(ElevationRequest.role, ElevationRequest.ends_at).where(
            ElevationRequest.requester_sub == person,
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
            ElevationRequest.ends_at > now,
        )
    ).all()
    if not live:
        return {"exp": clock.timestamp(), "pim_roles": []}
    end = min(int(ends.timestamp()) for _, ends in live if ends is not None)
    return {"exp": min(exp, end), "pim_roles": sorted({role for role, _ in live})}


def register() -> None:
    from sso.claims import register_token_hook

    register_token_hook(elevation_claims)
