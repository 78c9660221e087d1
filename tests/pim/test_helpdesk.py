"""The help desk cannot take over privileged accounts (issue 11 item 3), PIM's side: PIM
registers its admin accounts, shared accounts, security officers and approvers with the core's
registry (``iam.privileged``), so the help-desk password reset (``users:write``) refuses them and
the ``mfa:admin`` reset of an officer's or approver's second factor needs a security officer."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from iam.models.audit import AuditEvent
from pim import service
from pim.models import AdminAccount
from tests.pim.conftest import Env
from tests.sso.helpers import API_RESOURCE, make_client, make_user, service_token


@pytest.fixture
def desk(pim: Env, app: Flask) -> tuple[Env, Flask]:
    with pim.tx() as s:
        service.add_eligibility(s, pim.services, actor=pim.actor("sec"), role="ops", username="alice")
    make_user(pim.services, "ops-shared")
    with pim.tx() as s:
        service.add_shared(s, pim.services, actor=pim.actor("sec"), username="ops-shared", roles=["ops"])
    pim.run_jobs()  # creates adm-alice in the directory, rotates ops-shared
    return pim, app


def _tool_token(env: Env, app: Flask, scope: str) -> dict[str, str]:
    """The help desk's tool: client credentials with ``scope``, for our API."""
    return {"Authorization": f"Bearer {service_token(env.services, app.test_client(), scope)}"}


def _events(env: Env, event: str) -> list[AuditEvent]:
    with env.tx() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)))


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("adm-alice", "a PIM admin account"),
        ("ops-shared", "a shared administrator account kept by PIM"),
        ("sec", "a security officer"),
    ],
)
def test_password_reset_refuses_pim_accounts_and_officers(
    desk: tuple[Env, Flask], who: str, why: str
) -> None:
    env, app = desk
    with env.tx() as s:
        assert s.scalar(select(AdminAccount.account_id).where(AdminAccount.username == "adm-alice"))
    target = env.services.directory.find_user(username=who)
    assert target is not None
    bearer = _tool_token(env, app, "users:write")
    resp = app.test_client().post(
        f"/api/v1/users/{who}/password-reset", json={"reason": "T-9"}, headers=bearer
    )
    assert resp.status_code == 403
    assert resp.get_json()["error_description"] == (
        f"{who} is a privileged account ({why}): the help desk cannot reset it; "
        "its password is changed only by PIM's rotation."
    )
    [refused] = _events(env, "password.reset_refused")
    assert (refused.subject, refused.severity, refused.outcome) == (target.id, "critical", "failure")
    assert refused.details["why"] == f"privileged account: {why}"
    assert _events(env, "password.reset") == []

    ok = app.test_client().post("/api/v1/users/eve/password-reset", json={}, headers=bearer)  # the control
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("sec", "a security officer"),
        ("boss", "an approver of the role ops"),
        ("dbx", "an approver of the role dba"),
    ],
)
def test_mfa_reset_of_officer_or_approver_needs_a_security_officer(
    desk: tuple[Env, Flask], who: str, why: str
) -> None:
    env, app = desk
    c = app.test_client()
    helpdesk = _tool_token(env, app, "mfa:admin")
    resp = c.post(f"/api/v1/mfa/users/{who}/reset", json={"reason": "lost phone"}, headers=helpdesk)
    assert resp.status_code == 403
    assert resp.get_json() == {
        "error": "access_denied",
        "error_description": f"The account is {why}: only a security officer may reset its second factor.",
    }
    [refused] = _events(env, "mfa.reset_refused")
    assert (refused.subject, refused.severity) == (env.users[who].id, "critical")
    assert _events(env, "mfa.reset") == []
    assert c.post("/api/v1/mfa/users/eve/reset", json={}, headers=helpdesk).status_code == 200  # control

    # a security officer in person (their own token with mfa:admin) may
    officer = _person_token(env, app, "sec", "mfa:admin")
    assert c.post(f"/api/v1/mfa/users/{who}/reset", json={}, headers=officer).status_code == 200


def _person_token(env: Env, app: Flask, who: str, scope: str) -> dict[str, str]:
    cid, _ = make_client(env.services, name="Officer console", scopes=[scope])
    token: Any
    token, _ = app.extensions["sso.signer"].access_token(
        client_id=cid,
        sub=env.users[who].id,
        scope=scope,
        audience=[API_RESOURCE],
        lifetime=600,
        extra={"acr": "mfa", "amr": ["pwd", "otp"]},
    )
    return {"Authorization": f"Bearer {token}"}
