"""The sign-in flow's questions about second factors and levels (no Flask, no writes).

- :func:`second_factor_due`: after a first factor, must the user give a second one?
- :func:`required_level`: what level does this authorization need (request, client, groups)?
- :func:`step_up_methods`: which of the user's methods would reach that level?
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from iam.config import Settings
from sso.mfa import hooks, levels

_STRONG_KINDS = {"possession", "inherence"}


def _has_strong_factor(amr: Sequence[str]) -> bool:
    return any(levels.FACTOR_KIND.get(v) in _STRONG_KINDS for v in amr)


def second_factor_due(session: Session, settings: Settings, sub: str, amr: Sequence[str]) -> bool:
    """True when ``amr`` holds only knowledge factors (a password), ``mfa.require_enrolled``
    is on and the user has a second factor they can use (a confirmed authenticator, a bound
    card …): a user who has one always gives it."""
    return settings.mfa.require_enrolled and strong_factor_missing(session, sub, amr)


def strong_factor_missing(session: Session, sub: str, amr: Sequence[str]) -> bool:
    """The user has a second factor but ``amr`` does not include one (e.g. a password-only
    session of a user with an authenticator). Changing one's security devices then needs the
    second factor first: the password alone must not remove or replace it."""
    if _has_strong_factor(amr):
        return False
    return any(m.second_factor and m.available(session, sub) for m in hooks.methods())


def required_level(
    settings: Settings,
    *,
    client_level: str | None,
    acr_values: str | None,
    groups: Sequence[str] = (),
) -> str | None:
    """The strongest of: the client's minimum, the request's ``acr_values`` (the lowest known
    value listed) and the user's groups' (``mfa.group_levels``). None: any sign-in will do."""
    m = settings.mfa
    if client_level and levels.rank(m, client_level) < 0:
        return client_level  # a level since removed from the settings: unreachable, not waived
    return levels.strongest(
        m, client_level, levels.requested_level(m, acr_values), levels.group_level(m, groups)
    )


def step_up_methods(
    session: Session, settings: Settings, sub: str, have: Sequence[str], required: str
) -> list[hooks.SignInMethod]:
    """The user's usable methods that, added to ``have``, reach ``required``."""
    return [
        m
        for m in hooks.methods()
        if m.second_factor
        and m.available(session, sub)
        and levels.reaches_with(settings.mfa, have, m.amr, required)
    ]


def reachable_by_enrolling(settings: Settings, have: Sequence[str], required: str) -> bool:
    """Would enrolling an authenticator app (``otp``) reach ``required``?"""
    return settings.mfa.self_enrollment and levels.reaches_with(settings.mfa, have, ("otp",), required)
