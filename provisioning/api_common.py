"""What the HTTP APIs of access requests and access reviews share: who a token acts for, and
the ``{error, error_description}`` answers (a feature module: the core never imports it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, g, jsonify

from iam.errors import Conflict, Forbidden, NotFound
from iam.models.identity import Identity
from iam.web import db

P = TypeVar("P")


def problem(status: int, error: str, description: str) -> Response:
    """An error answer: ``{"error": ERROR, "error_description": DESCRIPTION}`` with STATUS."""
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    return resp


def problem_of(exc: Exception) -> Response:
    """The answer to a refused operation: 404, 403, 409, else 400 ``invalid_request``."""
    if isinstance(exc, NotFound):
        return problem(404, "not_found", str(exc))
    if isinstance(exc, Forbidden):
        return problem(403, "forbidden", str(exc))
    if isinstance(exc, Conflict):
        return problem(409, "conflict", str(exc))
    return problem(400, "invalid_request", str(exc))


def token_person(make: Callable[..., P]) -> P | None:
    """The person a token acts for, built by MAKE (``username``, ``sub``, ``ip``); None for a
    registered client's token (automation), which has no person."""
    claims: dict[str, Any] = g.api_claims
    sub = claims.get("sub")
    if not sub or sub == claims.get("client_id"):
        return None
    identity = db().get(Identity, str(sub))
    return make(username=identity.username if identity else str(sub), sub=str(sub), ip=g.client_ip)
