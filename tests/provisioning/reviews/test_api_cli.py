"""``iam review …`` and ``/api/v1/reviews``: the same domain operations from the command line
and over HTTP with access tokens from our own token endpoint (a person's token for decisions,
a security officer's or a registered client's for campaigns). Bad input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import provisioning
from iam.cli import cli
from iam.services import Services
from pim import jobs as _pim_jobs  # noqa: F401
from provisioning import jobs as _provisioning_jobs  # noqa: F401
from provisioning.reviews.definitions import Definition
from provisioning.reviews.models import Campaign, CampaignItem
from tests.provisioning.helpers import client_token, person_token, registry_people, run

provisioning.register(cli)


@pytest.fixture
def people(services: Services, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    users = registry_people(services, monkeypatch)
    services.directory.create_group("Records")
    services.directory.add_member("Records", users["ivo"].id)
    monkeypatch.setitem(
        services.extensions,
        "reviews.definitions",
        {"t": Definition.model_validate({"name": "t", "title": "Registry review", "duration_days": 5})},
    )
    return users


def test_cli_campaign_from_start_to_report(
    services: Services, people: dict[str, Any], tmp_path: Path
) -> None:
    dry = run(services, "review", "campaign", "start", "t", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["items"] == 1
    started = run(services, "review", "campaign", "start", "t", "--json")
    assert started.exit_code == 0, started.output
    cid = json.loads(started.output)["id"]
    items = run(services, "review", "items", "--reviewer", "mara", "--json")
    (item,) = json.loads(items.output)["items"]
    assert (item["person"], item["resource"]) == ("ivo", "Records")
    refused = run(services, "review", "decide", str(item["id"]), "revoke", "--as", "mara")
    assert refused.exit_code == 1 and "comment" in refused.output
    self_decided = run(services, "review", "decide", str(item["id"]), "approve", "--as", "ivo")
    assert self_decided.exit_code == 1 and "own access" in self_decided.output
    ok = run(
        services, "review", "decide", str(item["id"]), "revoke", "--as", "mara", "--comment", "Left registry"
    )
    assert ok.exit_code == 0, ok.output
    closed = run(services, "review", "campaign", "close", cid, "--json")
    assert closed.exit_code == 0 and json.loads(closed.output)["revoke"] == 1
    out = tmp_path / "r.csv"
    rep = run(services, "review", "campaign", "report", cid, "--format", "csv", "--output", str(out))
    assert rep.exit_code == 0 and "Left registry" in out.read_text()
    unknown = run(services, "review", "campaign", "start", "nosuch")
    assert unknown.exit_code == 1 and "no review definition named 'nosuch'" in unknown.output


def test_api_start_decide_and_refusals(services: Services, people: dict[str, Any], app: Any) -> None:
    automation = {"Authorization": f"Bearer {client_token(services, app.test_client(), 'reviews')}"}
    c = app.test_client()
    assert c.post("/api/v1/reviews/campaigns", json={"definition": "t"}).status_code == 401
    assert c.post("/api/v1/reviews/campaigns", json={"definition": 3}, headers=automation).status_code == 400
    assert (
        c.post("/api/v1/reviews/campaigns", json={"definition": "nosuch"}, headers=automation).status_code
        == 404
    )
    r = c.post("/api/v1/reviews/campaigns", json={"definition": "t"}, headers=automation)
    assert r.status_code == 201, r.get_json()
    cid = r.get_json()["id"]
    assert (
        c.post("/api/v1/reviews/campaigns", json={"definition": "t"}, headers=automation).status_code == 409
    )
    # a client's token has no person: it may not decide
    assert c.get("/api/v1/reviews/items", headers=automation).status_code == 403

    mara = {"Authorization": f"Bearer {person_token(services, app.test_client(), 'mara', 'reviews')}"}
    ivo = {"Authorization": f"Bearer {person_token(services, app.test_client(), 'ivo', 'reviews')}"}
    items = c.get("/api/v1/reviews/items", headers=mara).get_json()["items"]
    assert [i["resource"] for i in items] == ["Records"]
    assert c.get("/api/v1/reviews/campaigns", headers=mara).status_code == 403  # not an officer
    bad = c.post(
        "/api/v1/reviews/items/decisions", json={"items": ["x"], "decision": "approve"}, headers=mara
    )
    assert bad.status_code == 400
    mine = c.post(
        "/api/v1/reviews/items/decisions",
        json={"items": [items[0]["id"]], "decision": "approve"},
        headers=ivo,
    )
    assert mine.status_code == 403
    ok = c.post(
        "/api/v1/reviews/items/decisions",
        json={"items": [items[0]["id"]], "decision": "approve"},
        headers=mara,
    )
    assert ok.status_code == 200, ok.get_json()
    summary = c.get(f"/api/v1/reviews/campaigns/{cid}", headers=automation).get_json()
    assert summary["decisions"] == {"approve": 1}
    report = c.get(f"/api/v1/reviews/campaigns/{cid}/report?format=csv", headers=automation)
    assert report.status_code == 200 and len(report.headers["X-Content-SHA256"]) == 64
    with services.reader() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1
        assert s.scalar(select(CampaignItem.decided_by)) == "mara"
    spec = c.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/reviews/items/decisions" in spec["paths"]
