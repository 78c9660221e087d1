"""Provisioning fixtures: services whose directory is the real Samba AD DC in a per-test OU,
an HR client with the ``hr`` scope and its access token from our own token endpoint."""

from __future__ import annotations

import datetime as dt
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ldap3 import SUBTREE, Connection
from ldap3.utils.conv import escape_filter_chars

from iam import clock
from iam.directory.ad import ActiveDirectory
from iam.jobs import run_due
from iam.services import Services
from tests.sso.helpers import API_RESOURCE, basic, make_client


@dataclass
class Hr:
    services: Services
    client: Any
    token: str
    ou: str
    directory: ActiveDirectory
    dc: Any

    def accounts(self, employee_number: str) -> list[str]:
        """DNs of the accounts in this test's OU whose ``employeeNumber`` — the attribute
        provisioning writes the HR number to — is ``employee_number``: a plain LDAP search on the
        DC, not the product's own lookup."""
        flt = f"(&(objectClass=user)(employeeNumber={escape_filter_chars(employee_number)}))"

        def op(conn: Connection) -> list[str]:
            conn.search(self.ou, flt, SUBTREE, attributes=["employeeNumber"])
            assert conn.result["result"] == 0, conn.result
            return sorted(str(e["dn"]) for e in conn.response or [] if e.get("type") == "searchResEntry")

        return list(self.dc.admin(op))

    def headers(self) -> dict[str, str]:
        """A fresh token each time (tests move the clock past token lifetimes)."""
        return {"Authorization": f"Bearer {fresh_token(self.client, self.token)}"}

    def post(self, event: dict[str, Any]) -> Any:
        return self.client.post("/api/v1/hr/events", json=event, headers=self.headers())

    def work(self, rounds: int = 20) -> int:
        """Run the worker until nothing is due."""
        total = 0
        for _ in range(rounds):
            ran = run_due(self.services, limit=500)
            total += ran
            if not ran:
                break
        return total


#: AD usernames are domain-wide and the DC is shared: family names get this run's suffix.
SFX = "".join(secrets.choice(string.ascii_lowercase) for _ in range(2))


def joiner(emp: str, given: str = "Ana", family: str = "Kovač", **person: Any) -> dict[str, Any]:
    family += SFX
    today = clock.now().date()
    body = {
        "employee_number": emp,
        "given_name": given,
        "family_name": family,
        "department": "Finance",
        "title": "Accountant",
        "engagement": "staff",
        "start_date": today.isoformat(),
        "birth_date": "1990-04-01",
        "personal_data": "full",
        "decision_number": f"D-{emp}",
        **person,
    }
    return {"idempotency_key": f"join-{emp}-{body['start_date']}", "kind": "joiner", "person": body}


def hr_client(services: Services) -> str:
    """Register the HR system (client credentials, scope hr); returns "client_id:secret"."""
    client_id, secret = make_client(
        services, name="HR system", grant_types=["client_credentials"], scopes=["hr"], redirect_uris=[]
    )
    assert secret
    return f"{client_id}:{secret}"


def fresh_token(client: Any, credentials: str) -> str:
    client_id, secret = credentials.split(":", 1)
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "hr", "resource": API_RESOURCE},
        headers=basic(client_id, secret),
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.json["access_token"])


@pytest.fixture
def hr(services: Services, samba_ad: Any, ad_ou: str, samba_dc: Any) -> Iterator[Hr]:
    for name in ("Finance", "IT"):

        def add(conn: Connection, name: str = name) -> None:
            assert conn.add(f"OU={name},{ad_ou}", ["top", "organizationalUnit"]), conn.result  # type: ignore[no-untyped-call]

        samba_dc.admin(add)
    directory = ActiveDirectory(samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou}))
    saved = services.settings
    services.settings = saved.model_copy(
        update={
            "directory": directory.settings if hasattr(directory, "settings") else saved.directory,
            "provisioning": saved.provisioning.model_copy(update={"base_ou": ad_ou}),
        }
    )
    services.__dict__["directory"] = directory
    from iam.app import create_app

    app = create_app(services=services)
    app.config.update(TESTING=True)
    client = app.test_client()
    try:
        yield Hr(services, client, hr_client(services), ad_ou, directory, samba_dc)
    finally:
        directory.close()
        services.settings = saved
        services.__dict__.pop("directory", None)


def day(n: int) -> dt.date:
    return clock.now().date() + dt.timedelta(days=n)
