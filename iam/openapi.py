"""The OpenAPI document for ``/api/v1`` and the protocol endpoints, for administrators and tools."""

from __future__ import annotations

from typing import Any

from flask import Flask


def _form(props: dict[str, str], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
                    "required": required,
                }
            }
        },
    }


def document(issuer: str, app: Flask, *, api_resource: str) -> dict[str, Any]:
    client_auth = (
        "Client authentication: HTTP Basic (client_secret_basic), form fields client_id and "
        "client_secret (client_secret_post), or client_assertion_type + client_assertion "
        "(client_secret_jwt with HS256, private_key_jwt with RS256/ES256)."
    )
    ok_json = {"description": "Success", "content": {"application/json": {}}}
    err = {"description": "OAuth error: {error, error_description}"}
    from iam.views import Readiness

    ready = Readiness.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    defs = ready.pop("$defs", {})
    extra_paths: dict[str, Any] = {}
    for paths in app.extensions.get("iam.openapi_paths", []):
        extra_paths.update(paths)  # feature packages add theirs (the core imports none of them)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "iam — identity provider API",
            "version": "1",
            "description": (
                "OpenID Connect provider backed by Active Directory. Discovery: "
                f"{issuer}/.well-known/openid-configuration. All times are UTC. "
                f"Every bearer API here (and SCIM under /scim/v2) requires an access token whose "
                f"`aud` is this provider's API identifier `{api_resource}` (announced at "
                f"{issuer}/.well-known/oauth-protected-resource, RFC 9728): ask for it with "
                f"`resource={api_resource}` at the token endpoint (RFC 8707). A token issued for "
                "any other audience is refused with 401 invalid_token, whatever its scopes."
            ),
        },
        "servers": [{"url": issuer}],
        "components": {
            "schemas": {"Readiness": ready, **defs},
            "securitySchemes": {
                "bearer": {
                    "type": "oauth2",
                    "description": (
                        "Access token from the token endpoint (client credentials, or a user's "
                        f"token from the code flow) requested with resource={api_resource}."
                    ),
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{issuer}/token",
                            "scopes": {"users:write": "Administer users (password reset)"},
                        }
                    },
                }
            },
        },
        "paths": {
            "/.well-known/openid-configuration": {
                "get": {
                    "summary": "OpenID Connect discovery document",
                    "responses": {"200": ok_json},
                }
            },
            "/.well-known/oauth-protected-resource": {
                "get": {
                    "summary": "Protected resource metadata (RFC 9728): the API identifier to request",
                    "responses": {"200": ok_json},
                }
            },
            "/jwks": {
                "get": {
                    "summary": "Published signing keys (active, next and recently retired)",
                    "responses": {"200": ok_json},
                }
            },
            "/authorize": {
                "get": {
                    "summary": "Authorization endpoint (code flow; PKCE S256 required for public clients)",
                    "parameters": [
                        {
                            "name": n,
                            "in": "query",
                            "schema": {"type": "string"},
                            "required": n in ("client_id", "response_type", "redirect_uri"),
                        }
                        for n in (
                            "client_id",
                            "response_type",
                            "redirect_uri",
                            "scope",
                            "state",
                            "nonce",
                            "code_challenge",
                            "code_challenge_method",
                            "prompt",
                            "max_age",
                        )
                    ],
                    "responses": {"302": {"description": "Redirect to the client or to the sign-in page"}},
                }
            },
            "/token": {
                "post": {
                    "summary": "Token endpoint: authorization_code, refresh_token (rotated), "
                    "client_credentials",
                    "description": client_auth + " Refused outside the client's allowed networks.",
                    "requestBody": _form(
                        {
                            "grant_type": "authorization_code | refresh_token | client_credentials",
                            "code": "the authorization code",
                            "redirect_uri": "exactly as in the authorization request",
                            "code_verifier": "PKCE verifier",
                            "refresh_token": "the refresh token (single use)",
                            "scope": "requested scopes (subset of the client's)",
                            "resource": "requested audience (RFC 8707), must be registered for the client",
                        },
                        ["grant_type"],
                    ),
                    "responses": {"200": ok_json, "400": err, "401": err},
                }
            },
            "/userinfo": {
                "get": {
                    "summary": "Claims about the signed-in user (Bearer access token)",
                    "responses": {"200": ok_json, "401": err},
                }
            },
            "/introspect": {
                "post": {
                    "summary": "Token introspection (RFC 7662) for authenticated resource servers",
                    "description": client_auth
                    + " A token is reported active only to a client in its audience"
                    " or the client it was issued to.",
                    "requestBody": _form(
                        {"token": "the token", "token_type_hint": "access_token | refresh_token"},
                        ["token"],
                    ),
                    "responses": {"200": ok_json, "401": err},
                }
            },
            "/revoke": {
                "post": {
                    "summary": "Token revocation (RFC 7009)",
                    "description": client_auth,
                    "requestBody": _form(
                        {"token": "the token", "token_type_hint": "access_token | refresh_token"},
                        ["token"],
                    ),
                    "responses": {"200": {"description": "Revoked (or unknown)"}, "401": err},
                }
            },
            "/logout": {
                "get": {
                    "summary": "RP-initiated logout",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")
                    ],
                    "responses": {
                        "302": {"description": "Back to the registered post-logout URI"},
                        "200": {"description": "Signed-out or confirmation page"},
                    },
                }
            },
            "/api/v1/users/{username}/password-reset": {
                "post": {
                    "summary": "Administrator password reset (shows a temporary password once)",
                    "description": (
                        "Sets a random temporary password that satisfies the configured password "
                        "profile and must be changed at the first sign-in; the reset (never the "
                        "password) is recorded in the audit log with the calling client and the "
                        "reason. Needs an access token (client credentials) with scope users:write."
                    ),
                    "security": [{"bearer": ["users:write"]}],
                    "parameters": [
                        {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "reason": {"type": "string", "maxLength": 500},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Reset done",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "username": {"type": "string"},
                                            "temporary_password": {"type": "string"},
                                            "must_change": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": err,
                        "401": err,
                        "403": err,
                        "404": err,
                        "503": {"description": "Directory unavailable; nothing was changed"},
                    },
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": ok_json}}},
            "/readyz": {
                "get": {
                    "summary": (
                        "Readiness for load balancers: the database takes a write, the migrations "
                        "are current, the directory answers"
                    ),
                    "responses": {
                        "200": {
                            "description": "Ready",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}
                            },
                        },
                        "503": {
                            "description": "Not ready: a check failed",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}
                            },
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (allowed networks only)",
                    "responses": {"200": {"description": "text/plain"}},
                }
            },
            **extra_paths,
        },
    }
