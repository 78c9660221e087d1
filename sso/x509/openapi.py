"""OpenAPI paths of the administrators' card API (added to ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

ADMIN_SCOPE = "x509:admin"

_AUTH = (
    "Bearer access token issued by this provider whose scope includes "
    f"`{ADMIN_SCOPE}` (e.g. client credentials of a client registered with "
    f"`iam client add --grant-type client_credentials --scope {ADMIN_SCOPE}`). Every change is audited."
)
_ERRORS = {
    "400": {"description": "Invalid body: {error: invalid_request}"},
    "401": {"description": "No valid access token: {error: invalid_token}"},
    "403": {"description": f"The token lacks the {ADMIN_SCOPE} scope: {{error: insufficient_scope}}"},
    "404": {"description": "No such object: {error: notfound}"},
    "409": {"description": "Already decided / revoked: {error: conflict}"},
}
_BINDING = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "sub": {"type": "string", "description": "the account (directory id)"},
        "subject": {"type": "string"},
        "issuer": {"type": "string"},
        "serial": {"type": "string", "description": "hex"},
        "thumbprint": {"type": "string", "description": "SHA-256 of the certificate, hex"},
        "match": {"type": "string", "enum": ["thumbprint", "issuer_serial"]},
        "not_after": {"type": "string", "format": "date-time"},
        "created_at": {"type": "string", "format": "date-time"},
        "created_by": {"type": "string"},
        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
_REQUEST = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "approved", "denied"]},
        "subject": {"type": "string"},
        "issuer": {"type": "string"},
        "serial": {"type": "string"},
        "thumbprint": {"type": "string"},
        "proposed": {
            "type": "object",
            "description": "account data read from the certificate",
            "properties": {
                k: {"type": "string"}
                for k in (
                    "username",
                    "given_name",
                    "family_name",
                    "display_name",
                    "email",
                    "employee_number",
                    "upn",
                )
            },
        },
        "requested_at": {"type": "string", "format": "date-time"},
        "requested_ip": {"type": ["string", "null"]},
        "decided_at": {"type": ["string", "null"], "format": "date-time"},
        "decided_by": {"type": ["string", "null"]},
        "reason": {"type": ["string", "null"]},
        "sub": {"type": ["string", "null"], "description": "the account, once the worker created it"},
    },
}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _body(props: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": False,
        **_json({"type": "object", "additionalProperties": False, "properties": props}),
    }


def _op(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": _AUTH,
        "tags": ["x509"],
        "responses": {"200": {"description": "Success", **_json(ok)}, **_ERRORS},
        **extra,
    }


def paths() -> dict[str, Any]:
    reason = {"reason": {"type": "string", "maxLength": 500}}
    return {
        "/api/v1/x509/bindings": {
            "get": _op(
                "Card bindings (certificate → account)",
                {"type": "object", "properties": {"bindings": {"type": "array", "items": _BINDING}}},
                parameters=[
                    {"name": "sub", "in": "query", "required": False, "schema": {"type": "string"}},
                    {
                        "name": "include_revoked",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                    },
                ],
            )
        },
        "/api/v1/x509/bindings/{binding_id}/revoke": {
            "post": _op(
                "Revoke a card binding", _BINDING, parameters=[_id("binding_id")], requestBody=_body(reason)
            )
        },
        "/api/v1/x509/requests": {
            "get": _op(
                "Account requests made with a card (R-MFA-2)",
                {"type": "object", "properties": {"requests": {"type": "array", "items": _REQUEST}}},
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["pending", "approved", "denied", "all"]},
                    }
                ],
            )
        },
        "/api/v1/x509/requests/{request_id}/approve": {
            "post": _op(
                "Approve: the worker creates the account in the directory and binds the card",
                _REQUEST,
                parameters=[_id("request_id")],
                requestBody=_body({"username": {"type": "string", "maxLength": 20}}),
            )
        },
        "/api/v1/x509/requests/{request_id}/deny": {
            "post": _op(
                "Deny an account request", _REQUEST, parameters=[_id("request_id")], requestBody=_body(reason)
            )
        },
    }
