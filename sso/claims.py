"""Claims about a user, by scope (ID token and userinfo)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iam.directory.base import DirectoryUser


def user_claims(user: DirectoryUser, groups: list[str], scopes: set[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user.id}
    if "profile" in scopes:
        claims.update(
            {
                "preferred_username": user.username,
                "name": user.name,
                "given_name": user.given_name,
                "family_name": user.family_name,
            }
        )
        if user.employee_number:
            claims["employee_number"] = user.employee_number
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = True  # the directory is the organisation's record
    if "groups" in scopes:
        claims["groups"] = groups
    return {k: v for k, v in claims.items() if v is not None}


SCOPE_CLAIMS = {
    "openid": ["sub"],
    "profile": ["preferred_username", "name", "given_name", "family_name", "employee_number"],
    "email": ["email", "email_verified"],
    "groups": ["groups"],
}


# -- extension point: claims added by other packages to tokens issued for a user ---------------
TokenHook = Callable[[Any, str, int], dict[str, Any]]
"""``hook(session, sub, exp) -> claims``: extra claims for a token about ``sub`` that would
expire at ``exp``; an ``exp`` in the result can only shorten the token (e.g. PIM clamps tokens
of an elevated admin account to the end of the elevation). ``session`` is read-only."""

_token_hooks: list[TokenHook] = []


def register_token_hook(hook: TokenHook) -> None:
    """Add a hook (idempotent). Packages register at ``init_app``; sso knows nothing of them."""
    if hook not in _token_hooks:
        _token_hooks.append(hook)


def token_extras(session: Any, sub: str, exp: int) -> dict[str, Any]:
    """Claims of every registered hook; ``exp`` present only when a hook shortened it."""
    extra: dict[str, Any] = {}
    for hook in _token_hooks:
        more = dict(hook(session, sub, exp))
        if "exp" in more:
            exp = min(exp, int(more.pop("exp")))
            extra["exp"] = exp
        extra.update(more)
    return extra
