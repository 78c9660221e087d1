"""OpenAPI paths of the administrators' MFA API (added to ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

ADMIN_SCOPE = "mfa:admin"

_USER = {
    "name": "user",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The user's username, userPrincipalName or sub (the directory's stable id).",
}
_AUTH = (
    "Bearer access token issued by this provider whose scope includes "
    f"`{ADMIN_SCOPE}` (e.g. client credentials of a client registered with "
    f"`iam client add --grant-type client_credentials --scope {ADMIN_SCOPE}`)."
)
_ERRORS = {
    "401": {"description": "No valid access token: {error: invalid_token}"},
    "403": {"description": f"The token lacks the {ADMIN_SCOPE} scope: {{error: insufficient_scope}}"},
    "404": {"description": "There is no such user: {error: not_found}"},
}
_STATUS = {
    "type": "object",
    "properties": {
        "sub": {"type": "string"},
        "totp": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": "string"},
                "label": {"type": "string"},
                "confirmed_at": {"type": "string", "format": "date-time"},
                "last_used_at": {"type": ["string", "null"], "format": "date-time"},
                "algorithm": {"type": "string"},
                "digits": {"type": "integer"},
                "period": {"type": "integer"},
            },
        },
        "recovery_codes_left": {"type": "integer"},
        "throttled_until": {"type": ["string", "null"], "format": "date-time"},
    },
}


def paths() -> dict[str, Any]:
    return {
        "/api/v1/mfa/users/{user}": {
            "get": {
                "summary": "A user's second factors (never a secret)",
                "description": _AUTH,
                "parameters": [_USER],
                "responses": {
                    "200": {"description": "Status", "content": {"application/json": {"schema": _STATUS}}},
                    **_ERRORS,
                },
            }
        },
        "/api/v1/mfa/users/{user}/reset": {
            "post": {
                "summary": "Administrator reset: remove the user's authenticator app and recovery codes, "
                "lift the code throttle (critical audit event)",
                "description": _AUTH,
                "parameters": [_USER],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "reason": {
                                        "type": "string",
                                        "maxLength": 500,
                                        "description": "Why (a help-desk ticket); kept in the audit trail",
                                    },
                                    "end_sessions": {
                                        "type": "boolean",
                                        "default": False,
                                        "description": "Also end the user's sessions and refresh tokens",
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Done",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "sub": {"type": "string"},
                                        "had_totp": {"type": "boolean"},
                                        "recovery_codes_removed": {"type": "integer"},
                                        "sessions_ended": {"type": "integer"},
                                    },
                                }
                            }
                        },
                    },
                    "400": {"description": "Invalid body: {error: invalid_request}"},
                    **_ERRORS,
                },
            }
        },
    }
