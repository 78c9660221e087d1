"""Bearer access tokens for resource endpoints of other feature packages (e.g. the HR API and
SCIM): verified exactly as ``/userinfo`` and ``/introspect`` verify them."""

from __future__ import annotations

from typing import Any

from flask import request


def bearer_claims(scope: str) -> dict[str, Any] | None:
    """The claims of the request's ``Authorization: Bearer`` access token if it is ours, valid,
    not revoked, its client still enabled, and it carries ``scope``; otherwise None."""
    from sso.views.endpoints import _bearer_claims_from

    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return None
    claims = _bearer_claims_from(value.strip())
    if claims is None or scope not in str(claims.get("scope", "")).split():
        return None
    return claims
