"""SCIM 2.0 at /scim/v2/: the independent checker ``scim2-tester`` passes over real HTTP, and SCIM
changes drive joiners and leavers in the real AD."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from sqlalchemy import select
from werkzeug.serving import make_server

from iam.services import Services
from provisioning.models import EventStatus, HrEvent
from tests.provisioning.conftest import SFX, Hr, fresh_token, hr_client

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
HR = "urn:iam:params:scim:schemas:extension:hr:2.0:User"


@pytest.fixture
def live(services: Services) -> Iterator[tuple[str, str]]:
    from iam.app import create_app

    app = create_app(services=services)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    credentials = hr_client(services)
    token = fresh_token(app.test_client(), credentials)
    try:
        yield f"http://127.0.0.1:{server.server_port}", token
    finally:
        server.shutdown()
        thread.join(5)


def test_scim2_tester_passes(live: tuple[str, str]) -> None:
    base, token = live
    with httpx.Client(base_url=f"{base}/scim/v2", headers={"Authorization": f"Bearer {token}"}) as http:
        client = SyncSCIMClient(http)
        results = check_server(client)
    failed = [(r.title, r.reason) for r in results if r.status == Status.ERROR]
    assert results and not failed, failed
    assert sum(r.status == Status.SUCCESS for r in results) > 20


def test_scim_needs_an_hr_token(live: tuple[str, str]) -> None:
    base, _ = live
    assert httpx.get(f"{base}/scim/v2/Users").status_code == 401
    assert httpx.get(f"{base}/scim/v2/ServiceProviderConfig").status_code == 200  # RFC 7644 §4


def _user(emp: str, user_name: str, **extra: Any) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT, HR],
        "userName": user_name,
        "name": {"givenName": "Milica", "familyName": "Đurić" + SFX},
        "title": "Accountant",
        "userType": "civil_servant",
        "active": True,
        ENT: {"employeeNumber": emp, "department": "Finance"},
        **extra,
    }


@pytest.mark.samba
def test_scim_create_patch_inactive_is_a_leaver(hr: Hr) -> None:
    h = {**hr.headers(), "Content-Type": "application/scim+json"}
    created = hr.client.post("/scim/v2/Users", json=_user("9001", "mdjuric"), headers=h)
    assert created.status_code == 201, created.get_data(as_text=True)
    scim_id = created.json["id"]
    etag = created.headers["ETag"]
    # the same POST again: refused as a duplicate, no second joiner
    assert hr.client.post("/scim/v2/Users", json=_user("9001", "mdjuric"), headers=h).status_code == 409
    hr.work()
    user = hr.directory.find_user(employee_number="9001")
    assert user is not None and user.username == f"milica.duric{SFX}"
    # a PUT that changes nothing: recognised, no event
    put = hr.client.put(f"/scim/v2/Users/{scim_id}", json=_user("9001", "mdjuric"), headers=h)
    assert put.status_code == 200 and put.headers["ETag"] == etag
    # filtering and paging
    found = hr.client.get('/scim/v2/Users?filter=userName eq "MDJURIC"&count=1', headers=h)
    assert found.json["totalResults"] == 1
    # a stale ETag is refused
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    stale = hr.client.patch(f"/scim/v2/Users/{scim_id}", json=patch, headers={**h, "If-Match": 'W/"0"'})
    assert stale.status_code == 412
    resp = hr.client.patch(f"/scim/v2/Users/{scim_id}", json=patch, headers={**h, "If-Match": etag})
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)
    user = hr.directory.get_user(user.id)
    assert user is not None and not user.enabled  # applied in the request
    with hr.services.reader() as s:
        kinds = [
            (e.kind, e.status, e.source) for e in s.scalars(select(HrEvent).order_by(HrEvent.accepted_at))
        ]
    assert kinds == [("joiner", EventStatus.APPLIED, "scim"), ("leaver", EventStatus.APPLIED, "scim")]


@pytest.mark.samba
def test_scim_bulk_creates_people(hr: Hr) -> None:
    h = {**hr.headers(), "Content-Type": "application/scim+json"}
    bulk = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": f"b{i}", "data": _user(f"91{i}", f"bulk{i}")}
            for i in range(3)
        ],
    }
    resp = hr.client.post("/scim/v2/Bulk", json=bulk, headers=h)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert [op["status"] for op in resp.json["Operations"]] == ["201", "201", "201"]
    hr.work()
    names = sorted(
        u.username for u in (hr.directory.find_user(employee_number=f"91{i}") for i in range(3)) if u
    )
    assert names == [f"milica.duric{SFX}", f"milica.duric{SFX}2", f"milica.duric{SFX}3"]
