"""Bearer APIs check the audience (issue 11 item 5): ``/api/v1/*`` and ``/scim/v2`` accept only
access tokens issued for the provider's own API (``aud`` = ``settings.api_resource``, asked for
with RFC 8707 ``resource``). A token minted for a business application — whatever its scopes —
is refused with 401 ``invalid_token`` on every bearer API, found by walking the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from iam.services import Services
from tests.sso.helpers import API_RESOURCE, basic, make_client, make_user

BUSINESS_APP = "https://payroll.example.test"
EVERY_SCOPE = "openid users:write mfa:admin x509:admin hr pim"
SCIM = [("get", "/scim/v2/Users"), ("post", "/scim/v2/Users"), ("get", "/scim/v2/Users/x")]
"""SCIM resources (answered in SCIM's own error format; its discovery documents are public)."""


def _bearer_operations(client: FlaskClient) -> list[tuple[str, str]]:
    doc = client.get("/api/v1/openapi.json").get_json()
    ops = [
        (method, re.sub(r"\{[^}]+\}", "x", path))
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/") and path != "/api/v1/openapi.json"
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(ops) >= 25  # users, mfa, x509, pim, hr: the walk really covers them
    return ops + SCIM


def _token(app: Flask, services: Services, audience: str) -> str:
    """A valid access token of ours, for a user, with every admin scope — for ``audience``."""
    user = make_user(services)
    cid, _ = make_client(services, name="Payroll", scopes=EVERY_SCOPE.split(), audiences=[BUSINESS_APP])
    token, _ = app.extensions["sso.signer"].access_token(
        client_id=cid,
        sub=user.id,
        scope=EVERY_SCOPE,
        audience=[audience],
        lifetime=600,
        extra={"acr": "mfa", "amr": ["pwd", "otp"]},
    )
    return str(token)


def _call(client: FlaskClient, method: str, path: str, token: str) -> Any:
    kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}}
    if method != "get":
        kw["json"] = {}
    return getattr(client, method)(path, **kw)


def test_token_for_a_business_app_is_refused_on_every_bearer_api(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    business = _token(app, services, BUSINESS_APP)
    refused = []
    for method, path in _bearer_operations(client):
        resp = _call(client, method, path, business)
        body = resp.get_json(silent=True) or {}
        error = "invalid_token" if path.startswith("/scim/") else body.get("error")  # SCIM: its format
        if resp.status_code != 401 or error != "invalid_token":
            refused.append((method, path, resp.status_code, body.get("error")))
        elif not path.startswith("/scim/"):
            assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"], path
    assert refused == [], "accepted a token for another audience"


def test_the_same_token_for_our_api_passes_the_check(
    app: Flask, client: FlaskClient, services: Services
) -> None:
    """The control: with ``aud`` = the provider's API the same token is not refused as invalid."""
    ours = _token(app, services, API_RESOURCE)
    for method, path in _bearer_operations(client):
        resp = _call(client, method, path, ours)
        assert resp.status_code != 401, (method, path, resp.get_data(as_text=True)[:200])


@pytest.mark.parametrize("with_resource", [False, True])
def test_client_gets_an_api_token_by_asking_for_the_resource(
    client: FlaskClient, services: Services, with_resource: bool
) -> None:
    """RFC 8707: a client registered for a business audience gets a token for our API only by
    asking for ``resource=<api identifier>``; without it the token is for its own audience."""
    cid, secret = make_client(
        services,
        grant_types=["client_credentials"],
        redirect_uris=[],
        scopes=["users:write"],
        audiences=[BUSINESS_APP],
    )
    assert secret is not None
    data = {"grant_type": "client_credentials", "scope": "users:write"}
    if with_resource:
        data["resource"] = API_RESOURCE
    token = client.post("/token", data=data, headers=basic(cid, secret)).get_json()["access_token"]
    resp = client.post(
        "/api/v1/users/nobody/password-reset", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    if with_resource:
        assert resp.status_code == 404  # past the token check: the user does not exist
    else:
        assert resp.status_code == 401 and resp.get_json()["error"] == "invalid_token"
        assert f"resource={API_RESOURCE}" in resp.get_json()["error_description"]


def test_api_identifier_is_announced(client: FlaskClient) -> None:
    meta = client.get("/.well-known/oauth-protected-resource").get_json()
    assert meta["resource"] == API_RESOURCE
    assert meta["authorization_servers"] == ["http://localhost"]
    assert API_RESOURCE in client.get("/api/v1/openapi.json").get_json()["info"]["description"]
