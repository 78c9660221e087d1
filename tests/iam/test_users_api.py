"""``POST /api/v1/users/{username}/password-reset``: the administrator reset over the JSON API,
with an access token from our own token endpoint (client credentials, scope users:write)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from iam.models.audit import AuditEvent
from iam.passwords.rules import check
from iam.services import Services
from tests.sso.helpers import PASSWORD, login, make_user, service_token

URL = "/api/v1/users/{}/password-reset"


def token(client: Any, services: Services, scope: str) -> str:
    return service_token(services, client, scope, name="Service desk")


def test_reset_returns_a_temporary_password_once_and_audits(services: Services, client: Any) -> None:
    user = make_user(services)
    at = token(client, services, "users:write")
    r = client.post(
        URL.format("alice"), json={"reason": "ticket HD-4711"}, headers={"Authorization": f"Bearer {at}"}
    )
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    temporary = body["temporary_password"]
    assert body == {"username": "alice", "temporary_password": temporary, "must_change": True}
    assert not check(services.password_profile, temporary)
    # the old password is gone; the temporary one must be changed at first sign-in
    assert login(client, "alice", PASSWORD).status_code == 401
    r = login(client, "alice", temporary)
    assert r.status_code == 302 and r.headers["Location"].endswith("/password/change")
    with services.transaction() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "password.reset")).one()
    assert ev.subject == user.id and ev.actor.startswith("client:")
    assert ev.details["reason"] == "ticket HD-4711" and ev.details["by_admin"] is True
    assert temporary not in str(ev.details)


def test_denied_without_the_scope_or_a_valid_token(services: Services, client: Any) -> None:
    make_user(services)
    other = token(client, services, "api.read")
    for headers, status, error in (
        ({}, 401, "invalid_token"),
        ({"Authorization": "Bearer not-a-token"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {other}"}, 403, "insufficient_scope"),
    ):
        r = client.post(URL.format("alice"), json={}, headers=headers)
        assert r.status_code == status and r.get_json()["error"] == error
        assert "WWW-Authenticate" in r.headers
    assert login(client, "alice", PASSWORD).status_code == 302  # nothing changed


def test_bad_input_and_unknown_user_change_nothing(services: Services, client: Any) -> None:
    make_user(services)
    at = token(client, services, "users:write")
    auth = {"Authorization": f"Bearer {at}"}
    r = client.post(URL.format("alice"), json={"reason": "x", "password": "Chosen-1!"}, headers=auth)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"
    r = client.post(URL.format("nobody"), json={}, headers=auth)
    assert r.status_code == 404
    assert login(client, "alice", PASSWORD).status_code == 302
    with services.transaction() as s:
        assert not s.scalars(select(AuditEvent).where(AuditEvent.event == "password.reset")).all()


def test_openapi_describes_the_reset(client: Any) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/api/v1/users/{username}/password-reset"]["post"]
    assert op["security"] == [{"bearer": ["users:write"]}]
    assert (
        "users:write"
        in doc["components"]["securitySchemes"]["bearer"]["flows"]["clientCredentials"]["scopes"]
    )
