"""The administrators' JSON API for registered applications (``/api/v1/clients``): read the
registrations, and set how the portal shows an application and who may use it (issue 13).
Callers present a Bearer access token of this provider with the ``clients:admin`` scope
(:func:`iam.web.require_scope`); every change is audited with the caller as actor. The OpenAPI
schemas are generated from the pydantic models below."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iam.errors import NotFound, ValidationFailed
from iam.web import db, require_scope, services
from sso import clients as client_service

ADMIN_SCOPE = "clients:admin"
bp = Blueprint("clients_api", __name__)


class PortalUpdate(BaseModel):
    """Fields left out keep their value; ``null`` or ``""`` clears a text field."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2000, description="What the application is for.")
    logo_uri: str | None = Field(default=None, max_length=1024, description="An https URL or /static/… path.")
    launch_uri: str | None = Field(
        default=None, max_length=1024, description="Where the portal opens it; empty: not on the portal."
    )
    allowed_groups: list[str] | None = Field(
        default=None,
        description="Directory groups whose members may use it (nested counts); [] = everyone.",
    )


class ClientOut(BaseModel):
    """A registration as the API shows it (never a secret)."""

    client_id: str
    client_name: str
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    audiences: list[str]
    backchannel_logout_uri: str | None
    allowed_networks: list[str]
    agency_code: str | None
    require_consent: bool
    disabled: bool
    public: bool
    require_acr: str | None
    description: str | None
    logo_uri: str | None
    launch_uri: str | None
    allowed_groups: list[str] = Field(description="Who may use it; empty: everyone. Enforced at /authorize.")
    created_at: str


def _out(row: Any) -> dict[str, Any]:
    data = client_service.client_as_dict(row)
    data.pop("jwks", None)
    return ClientOut.model_validate(data).model_dump()


def _error(status: int, error: str, description: str) -> Any:
    return jsonify(error=error, error_description=description), status


@bp.get("/api/v1/clients")
@require_scope(ADMIN_SCOPE)
def api_list() -> Any:
    return jsonify([_out(c) for c in client_service.list_clients(db())])


@bp.get("/api/v1/clients/<client_id>")
@require_scope(ADMIN_SCOPE)
def api_show(client_id: str) -> Any:
    try:
        return jsonify(_out(client_service.get_client(db(), client_id)))
    except NotFound as exc:
        return _error(404, "not_found", str(exc))


@bp.patch("/api/v1/clients/<client_id>/portal")
@require_scope(ADMIN_SCOPE)
def api_portal(client_id: str) -> Any:
    try:
        body = PortalUpdate.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        return _error(400, "invalid_request", f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    try:
        row = client_service.get_client(db(), client_id)
    except NotFound as exc:
        return _error(404, "not_found", str(exc))
    given = body.model_fields_set
    fields = client_service.PortalFields(
        description=body.description if "description" in given else row.description,
        logo_uri=body.logo_uri if "logo_uri" in given else row.logo_uri,
        launch_uri=body.launch_uri if "launch_uri" in given else row.launch_uri,
        allowed_groups=list(body.allowed_groups or [])
        if "allowed_groups" in given
        else list(row.allowed_groups or []),
    )
    try:
        row = client_service.set_portal_fields(
            db(), client_id, fields, actor=str(g.api_actor), allow_http=services().settings.dev_mode
        )
    except ValidationFailed as exc:
        return _error(400, "invalid_request", str(exc))
    return jsonify(_out(row))


_AUTH = (
    f"Bearer access token issued by this provider whose scope includes `{ADMIN_SCOPE}` (e.g. client "
    f"credentials of a client registered with `iam client add --grant-type client_credentials "
    f"--scope {ADMIN_SCOPE}`)."
)
_ERRORS = {
    "401": {"description": "No valid access token: {error: invalid_token}"},
    "403": {"description": f"The token lacks the {ADMIN_SCOPE} scope: {{error: insufficient_scope}}"},
}
_ID = {"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str = "Success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def paths() -> dict[str, Any]:
    """OpenAPI paths, the schemas generated from :class:`ClientOut` and :class:`PortalUpdate`."""
    client = ClientOut.model_json_schema()
    update = PortalUpdate.model_json_schema()
    not_found = {"404": {"description": "There is no such client: {error: not_found}"}}
    return {
        "/api/v1/clients": {
            "get": {
                "summary": "Registered applications",
                "description": _AUTH,
                "responses": {"200": _json({"type": "array", "items": client}), **_ERRORS},
            }
        },
        "/api/v1/clients/{client_id}": {
            "get": {
                "summary": "One registered application",
                "description": _AUTH,
                "parameters": [_ID],
                "responses": {"200": _json(client), **_ERRORS, **not_found},
            }
        },
        "/api/v1/clients/{client_id}/portal": {
            "patch": {
                "summary": "How the portal shows the application, and who may use it",
                "description": _AUTH + " Audited as client.portal_changed.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": update}}},
                "responses": {
                    "200": _json(client),
                    "400": {"description": "Invalid input: {error: invalid_request}"},
                    **_ERRORS,
                    **not_found,
                },
            }
        },
    }
