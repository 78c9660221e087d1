"""Bad JSON never becomes a 500 (issue 11 item 7): every JSON API (``/api/v1/*`` walked from
the OpenAPI document, and SCIM) answers a malformed body with a precise 400 — also ``[`` ×
100,000, which used to raise RecursionError — and another content type with 415; nothing runs."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from iam.services import Services
from tests.sso.helpers import API_RESOURCE, make_client, make_user

MALFORMED = {
    "deeply nested": (b"[" * 100_000, "The body is not valid JSON: it is nested deeper than 32 levels."),
    "deep but closed": (
        b"[" * 40 + b"]" * 40,
        "The body is not valid JSON: it is nested deeper than 32 levels.",
    ),
    "truncated": (b'{"reason": ', "The body is not valid JSON: Expecting value: line 1 column 12 (char 11)."),
    "not utf-8": (b'{"reason": "\xff\xfe"}', "The body is not valid JSON: "),
}


def _operations(client: FlaskClient) -> list[tuple[str, str]]:
    doc = client.get("/api/v1/openapi.json").get_json()
    ops = [
        (method, re.sub(r"\{[^}]+\}", "x", path))
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
        if method in ("post", "put", "patch", "delete")
    ]
    assert len(ops) >= 15
    return [*ops, ("post", "/scim/v2/Users"), ("put", "/scim/v2/Users/x")]


@pytest.fixture
def token(app, services: Services) -> str:  # type: ignore[no-untyped-def]
    user = make_user(services)
    cid, _ = make_client(
        services, name="Admin tool", scopes=["users:write", "mfa:admin", "x509:admin", "hr", "pim"]
    )
    value, _ = app.extensions["sso.signer"].access_token(
        client_id=cid,
        sub=user.id,
        scope="users:write mfa:admin x509:admin hr pim",
        audience=[API_RESOURCE],
        lifetime=600,
        extra={"acr": "mfa", "amr": ["pwd", "otp"]},
    )
    return str(value)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_is_a_precise_400_on_every_json_api(
    client: FlaskClient, token: str, case: str
) -> None:
    body, message = MALFORMED[case]
    for method, path in _operations(client):
        resp = getattr(client, method)(
            path, data=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        assert resp.status_code == 400, (method, path, resp.status_code, resp.get_data(as_text=True)[:200])
        answer = resp.get_json()
        text = answer["detail"] if path.startswith("/scim/") else answer["error_description"]
        assert text.startswith(message), (method, path, text)
        if not path.startswith("/scim/"):
            assert answer["error"] == "invalid_request"


def test_a_body_of_another_type_is_415(client: FlaskClient, token: str) -> None:
    for method, path in _operations(client):
        resp = getattr(client, method)(
            path, data=b"reason=x", headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}
        )
        assert resp.status_code == 415, (method, path, resp.status_code)
