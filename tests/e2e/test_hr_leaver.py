"""A leaver delivered by the HR system to the running provider (``iam serve`` + ``iam worker``):
the AD account is disabled and every session ended within seconds, the relying party
(openid-client) receives a back-channel logout and its refresh token is refused."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from typing import Any
from urllib.parse import quote

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.conftest import BackchannelReceiver, LiveProvider, NodeRP, samba_fixture, unique
from tests.e2e.test_openid_client import Person, _ad_person

pytestmark = [pytest.mark.e2e, pytest.mark.samba]


def _post(url: str, *, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.load(err)


def _hr_token(provider: LiveProvider) -> str:
    client = provider.cli_json(
        "client", "add", "--name", unique("hr-"), "--grant-type", "client_credentials", "--scope", "hr"
    )
    import base64

    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    status, body = _post(
        f"{provider.issuer}/token",
        data=b"grant_type=client_credentials&scope=hr&resource="
        + quote(f"{provider.issuer}/api", safe="").encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    return str(body["access_token"])


def _hr_record(provider: LiveProvider, person: Person) -> str:
    """The person's HR record (as an applied joiner leaves it) for the account made in AD."""
    from provisioning.models import HrPerson

    employee_number = unique("e")
    services = provider.services()
    with services.transaction() as session:
        session.add(
            HrPerson(
                employee_number=employee_number,
                given_name="Erika",
                family_name="Mustermann",
                department="Finance",
                title="Accountant",
                engagement="staff",
                start_date=dt.date(2026, 1, 5),
                status="active",
                username=person.username,
                sub=person.id,
                groups=person.groups,
                linked_accounts=[],
                personal_data="none",
            )
        )
    return employee_number


@pytest.mark.parametrize("live_provider", ["ad"], indirect=True)
def test_leaver_ends_everything_within_seconds(
    live_provider: LiveProvider,
    node_rp: NodeRP,
    backchannel_receiver: BackchannelReceiver,
    request: pytest.FixtureRequest,
) -> None:
    person = _ad_person(request)
    ad = samba_fixture(request, "ad_directory")
    employee_number = _hr_record(live_provider, person)
    client = live_provider.add_rp_client(backchannel_logout_uri=backchannel_receiver.url())
    signed_in = node_rp.run(
        live_provider, client, mode="login", username=person.username, password=person.password
    )
    tokens = signed_in["tokens"]
    assert tokens["refresh_token"]

    token = _hr_token(live_provider)
    event = {
        "idempotency_key": unique("leave-"),
        "kind": "leaver",
        "person": {"employee_number": employee_number, "end_date": dt.date.today().isoformat()},
    }
    started = time.monotonic()
    status, body = _post(
        f"{live_provider.issuer}/api/v1/hr/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    elapsed = time.monotonic() - started
    assert status == 202, body
    assert body["status"] == "applied", body
    assert body["latency_ms"] < 2000  # acceptance → disabled in AD + sessions ended (R-JML-5)
    assert elapsed < 5
    user = ad.get_user(person.id)
    assert user is not None and not user.enabled

    post = backchannel_receiver.wait_for(lambda r: "logout_token" in r.form)
    (value,) = post.form["logout_token"]
    with urllib.request.urlopen(f"{live_provider.issuer}/jwks", timeout=10) as resp:  # noqa: S310
        keys = KeySet.import_key_set(json.load(resp))
    logout = jwt.decode(value, keys, algorithms=["ES256", "RS256"]).claims
    assert logout["sub"] == person.id
    assert logout["aud"] == client["client_id"]

    refused = node_rp.run(
        live_provider,
        client,
        mode="refresh",
        username=person.username,
        password=person.password,
        env={"RP_REFRESH_TOKEN": tokens["refresh_token"], "RP_EXPECT": "invalid_grant"},
    )
    assert refused["refresh"]["ok"] is False
    assert refused["refresh"]["error"] == "invalid_grant"

    # the same delivery again is recognised, nothing happens twice
    status, again = _post(
        f"{live_provider.issuer}/api/v1/hr/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert status == 200 and again["duplicate"] is True and again["id"] == body["id"]
