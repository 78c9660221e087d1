"""``iam demo`` shows every capability without editing a setting (issue 10 item 18): a person
eligible for a shipped PIM role with an approver among the demo users, an HR operator, an HR
system client that can use the HR API, and HR events the worker applies."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

import iam.core_jobs  # noqa: F401 — registers the job handlers
import pim.jobs  # noqa: F401
import provisioning.jobs  # noqa: F401
import sso.jobs  # noqa: F401
from iam import jobs, passwords
from iam.demo import seed
from iam.errors import ConfigError
from iam.identities import find_identity
from iam.services import Services
from pim import service as pim_service
from pim.models import ElevationRequest, Eligibility, State
from pim.service import Actor
from provisioning.models import EventStatus, HrEvent
from sso.models import Client
from tests.sso.helpers import basic

PASSWORD = "Demo-Password-1"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords.hashing, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def _work(services: Services) -> None:
    for _ in range(20):
        if not jobs.run_due(services):
            return


def _actor(services: Services, username: str) -> Actor:
    with services.reader() as session:
        identity = find_identity(session, username)
        assert identity is not None
        return Actor(sub=identity.sub, username=identity.username, level="mfa", ip="192.0.2.1")


def test_demo_has_an_eligible_person_an_approver_and_the_approval_works(services: Services) -> None:
    info = seed(services, password=PASSWORD)
    assert info["pim"]["roles"] == ["domain-admins", "server-operators"]
    assert (info["pim"]["eligible"], info["pim"]["approver"]) == ("admin", "bob")
    with services.reader() as s:
        eligible = {(e.role, e.username) for e in s.scalars(select(Eligibility))}
    assert eligible == {("domain-admins", "admin"), ("server-operators", "admin")}
    directory = services.directory
    bob = directory.find_user(username="bob")
    assert bob is not None and "PIM Approvers" in directory.user_groups(bob.id)
    _work(services)  # the admin account adm-admin is prepared

    admin, approver = _actor(services, "admin"), _actor(services, "bob")
    with services.transaction() as s:
        req = pim_service.request_elevation(
            s, services, actor=admin, role="server-operators", justification="patch the file servers"
        )
        rid = req.id
        assert req.state == State.REQUESTED
    with services.transaction() as s:
        pim_service.decide(s, services, actor=approver, request_id=rid, approve=True, comment="ok")
    _work(services)
    with services.reader() as s:
        done = s.get(ElevationRequest, rid)
        assert done is not None and done.state == State.ACTIVE
    elevated = directory.find_user(username="adm-admin")
    assert elevated is not None and elevated.enabled
    assert "Server Operators" in directory.user_groups(elevated.id)


def test_demo_has_an_hr_operator_an_hr_client_and_events(services: Services, client: Any) -> None:
    info = seed(services, password=PASSWORD)
    hr = info["hr"]
    assert hr["operator"] == "hana" and len(hr["events"]) == 4
    directory = services.directory
    hana = directory.find_user(username="hana")
    assert hana is not None
    assert services.settings.provisioning.operators_group in directory.user_groups(hana.id)
    _work(services)
    with services.reader() as s:
        status = {(e.kind, e.employee_number): e.status for e in s.scalars(select(HrEvent))}
    assert status == {
        ("joiner", "D1001"): EventStatus.APPLIED,
        ("joiner", "D1002"): EventStatus.APPLIED,
        ("mover", "D1001"): EventStatus.PENDING,  # tomorrow
        ("leaver", "D1002"): EventStatus.PENDING,  # in a month
    }
    assert directory.find_user(employee_number="D1001") is not None

    # the HR system's client gets a token with its secret from var/ and delivers an event
    secret = (services.settings.var_dir / "demo-hr-client-secret.txt").read_text().strip()
    token = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "hr", "resource": services.settings.api_resource},
        headers=basic("demo-hr", secret),
    )
    assert token.status_code == 200, token.json
    sent = client.post(
        "/api/v1/hr/events",
        json={"idempotency_key": "api-1", "kind": "leaver", "person": {"employee_number": "D1001"}},
        headers={"Authorization": f"Bearer {token.json['access_token']}"},
    )
    assert sent.status_code == 202, sent.json

    # again: nothing new, the secret still works, the demo users' password is set again
    again = seed(services, password="Other-Password-2")
    assert again["hr"]["events"] == [] and again["created"] == []
    assert (services.settings.var_dir / "demo-hr-client-secret.txt").read_text().strip() == secret
    with services.reader() as s:
        assert [c.client_id for c in s.scalars(select(Client).order_by(Client.client_id))] == [
            "demo-app",
            "demo-hr",
        ]


def test_demo_refuses_active_directory(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(services.directory), "kind", "ad", raising=False)
    with pytest.raises(ConfigError, match="built-in directory"):
        seed(services, password=PASSWORD)


def test_demo_can_run_an_access_review(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """With make run's settings (bob in pim.security_officers) the demo has two security
    officers, so the annual campaign starts: nobody reviews their own access."""
    from provisioning.reviews import definitions
    from provisioning.reviews.service import campaigns

    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={"pim": services.settings.pim.model_copy(update={"security_officers": ["bob"]})}
        ),
    )
    seed(services, password=PASSWORD)
    with services.transaction() as session:
        result = campaigns.start(
            services, session, definition=definitions.get(services, "annual"), actor="test", dry_run=True
        )
    assert result["persons"] >= 4 and set(result["reviewers"]) <= {"admin", "bob"}
