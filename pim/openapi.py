"""OpenAPI description of ``/api/v1/pim`` (contributed to the core's document)."""

from __future__ import annotations

from typing import Any

AUTH = (
    "Bearer access token issued by this provider with the `pim` scope (setting pim.api_scope). "
    "The token's acr/amr is the sign-in level; too low a level answers 401 with "
    'WWW-Authenticate: Bearer error="insufficient_user_authentication", acr_values="…" (RFC 9470).'
)
ERR = {"description": "{error, error_description}", "content": {"application/json": {}}}
OK = {"description": "Success", "content": {"application/json": {}}}


def _body(props: dict[str, tuple[str, str]], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {k: {"type": t, "description": d} for k, (t, d) in props.items()},
                    "required": required,
                }
            }
        },
    }


def _op(
    summary: str, *, body: dict[str, Any] | None = None, ok: str = "200", rid: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": AUTH,
        "tags": ["pim"],
        "security": [{"bearer": []}],
        "responses": {ok: OK, "400": ERR, "401": ERR, "403": ERR, "404": ERR, "409": ERR},
    }
    if body is not None:
        op["requestBody"] = body
    if rid:
        op["parameters"] = [
            {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
    return op


def paths() -> dict[str, Any]:
    reason = _body({"reason": ("string", "why (required to revoke)")}, [])
    comment = _body({"comment": ("string", "the approver's comment")}, [])
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    role_put = _op("Create or replace a role in the database (security officers); overrides a file role")
    role_put["parameters"] = name
    role_put["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    role_get = _op("One role (eligible people and security officers)")
    role_get["parameters"] = name
    role_del = _op("Delete the database definition (the file role, if any, applies again)", ok="204")
    role_del["parameters"] = name
    elig = _body(
        {
            "role": ("string", "role name"),
            "username": ("string", "the person's username"),
            "permanent": ("boolean", "standing member never reported as out of band"),
        },
        ["role", "username"],
    )
    return {
        "/api/v1/pim/roles": {"get": _op("Roles: eligible ones, or all for security officers (with source)")},
        "/api/v1/pim/roles/{name}": {"get": role_get, "put": role_put, "delete": role_del},
        "/api/v1/pim/me": {"get": _op("My eligible roles, active elevations with remaining time, history")},
        "/api/v1/pim/requests": {
            "post": _op(
                "Request an elevation",
                body=_body(
                    {
                        "role": ("string", "role name"),
                        "minutes": ("integer", "duration (default: the role's default)"),
                        "justification": ("string", "why"),
                        "ticket": ("string", "ticket number"),
                    },
                    ["role"],
                ),
                ok="201",
            )
        },
        "/api/v1/pim/break-glass": {
            "post": _op(
                "Emergency activation: no approval, strongest level, fixed duration, officers alerted",
                body=_body(
                    {"role": ("string", "break-glass role"), "justification": ("string", "why")},
                    ["role", "justification"],
                ),
                ok="201",
            )
        },
        "/api/v1/pim/requests/{request_id}": {
            "get": _op("One request (requester, its approvers, officers)", rid=True)
        },
        "/api/v1/pim/requests/{request_id}/approve": {
            "post": _op(
                "Approve: never your own request, through none of your accounts; needs the role's "
                "sign-in level (else 401 insufficient_user_authentication); one person counts once",
                body=comment,
                rid=True,
            )
        },
        "/api/v1/pim/requests/{request_id}/deny": {
            "post": _op("Deny (the same rules as approving)", body=comment, rid=True)
        },
        "/api/v1/pim/requests/{request_id}/cancel": {
            "post": _op("Requester: withdraw, or end an elevation early", body=reason, rid=True)
        },
        "/api/v1/pim/requests/{request_id}/revoke": {
            "post": _op("Approver or officer: end an elevation early", body=reason, rid=True)
        },
        "/api/v1/pim/requests/{request_id}/password": {
            "post": _op(
                "The admin account's password, shown once to the requester once the elevation is "
                "active (read back from the directory; 409 before, and for a failed one)",
                rid=True,
            )
        },
        "/api/v1/pim/requests/{request_id}/review": {
            "post": _op(
                "Officer: close the review of a break-glass use",
                body=_body({"note": ("string", "findings")}, ["note"]),
                rid=True,
            )
        },
        "/api/v1/pim/shared/{username}/checkout": {
            "post": {
                **_op(
                    "A shared admin account's password (eligible people; recorded; rotated when they leave)"
                ),
                "parameters": [
                    {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            }
        },
        "/api/v1/pim/approvals": {"get": _op("Requests waiting for my decision")},
        "/api/v1/pim/overview": {"get": _op("Officer: active, pending, reviews due, out-of-band alerts")},
        "/api/v1/pim/eligibility": {
            "post": _op(
                "Officer: make a person eligible (their admin account is created)", body=elig, ok="201"
            ),
            "delete": _op(
                "Officer: remove eligibility (live elevations end, shared accounts rotate)",
                body=elig,
                ok="204",
            ),
        },
    }
