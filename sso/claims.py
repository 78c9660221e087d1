"""Claims about a user, by scope (ID token and userinfo)."""

from __future__ import annotations

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
