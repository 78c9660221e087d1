"""``iam access …`` and ``/api/v1/requests`` on SQLite and PostgreSQL (the built-in directory):
a person's token asks, the manager's token decides, a client's token reads every request; the
CLI validates the catalogue against the directory, lists, shows, decides and prints the working
calendar. Bad input changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import provisioning
from iam import clock
from iam.cli import cli
from iam.models.jobs import Job
from iam.services import Services
from provisioning import jobs as _provisioning_jobs  # noqa: F401
from provisioning.requests.models import AccessRequest
from provisioning.reviews.definitions import Definition
from provisioning.reviews.service import campaigns
from tests.provisioning.helpers import client_token, person_token, registry_people, run
from tests.sso.helpers import PASSWORD, make_user

provisioning.register(cli)

CATALOGUE = """
[item.records]
group = "Records"
title = { en = "Records: read", pl = "Akta: odczyt" }
chain = ["manager"]
max_days = 30

[item.missing]
group = "No Such Group"
title = { en = "Missing" }
"""


@pytest.fixture
def people(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "requestable.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    users = registry_people(services, monkeypatch, requests={"catalogue_file": path, "country": "PL"})
    services.extensions.pop("requests.catalogue", None)
    services.directory.create_group("Records")
    return users


def _count(services: Services) -> int:
    with services.reader() as s:
        return int(s.scalar(select(func.count()).select_from(AccessRequest)) or 0)


def test_api_ask_decide_and_refusals(services: Services, people: dict[str, Any], app: Any) -> None:
    c = app.test_client()
    ivo = {"Authorization": f"Bearer {person_token(services, app.test_client(), 'ivo', 'requests')}"}
    mara = {"Authorization": f"Bearer {person_token(services, app.test_client(), 'mara', 'requests')}"}
    automation = {"Authorization": f"Bearer {client_token(services, app.test_client(), 'requests')}"}
    assert c.post("/api/v1/requests", json={"item": "records", "justification": "x"}).status_code == 401
    for bad in ({"item": "records"}, {"item": "records", "justification": "x", "extra": 1}, [], {"item": 3}):
        assert c.post("/api/v1/requests", json=bad, headers=ivo).status_code == 400
    assert (
        c.post("/api/v1/requests", json={"item": "nosuch", "justification": "x"}, headers=ivo).status_code
        == 404
    )
    too_long = {"item": "records", "justification": "x", "duration_days": 31}
    assert c.post("/api/v1/requests", json=too_long, headers=ivo).status_code == 400
    # ivo may not ask for his manager
    assert (
        c.post(
            "/api/v1/requests", json={"item": "records", "justification": "x", "person": "mara"}, headers=ivo
        )
    ).status_code == 403
    assert _count(services) == 0
    r = c.post(
        "/api/v1/requests",
        json={"item": "records", "justification": "Filing", "duration_days": 10},
        headers=ivo,
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["status"], body["approver"], body["duration_days"]) == ("pending", "mara", 10)
    rid = body["id"]
    again = c.post("/api/v1/requests", json={"item": "records", "justification": "Filing"}, headers=ivo)
    assert again.status_code == 409
    waiting = c.get("/api/v1/requests", headers=mara).get_json()["waiting_for_me"]
    assert [w["id"] for w in waiting] == [rid]
    assert (
        c.post(
            f"/api/v1/requests/{rid}/decision", json={"outcome": "grant", "comment": "ok"}, headers=ivo
        ).status_code
        == 403
    )
    assert (
        c.post(f"/api/v1/requests/{rid}/decision", json={"outcome": "grant"}, headers=mara).status_code == 400
    )
    assert (
        c.post(
            "/api/v1/requests/x/decision", json={"outcome": "grant", "comment": "ok"}, headers=mara
        ).status_code
        == 404
    )
    ok = c.post(
        f"/api/v1/requests/{rid}/decision", json={"outcome": "grant", "comment": "For filing"}, headers=mara
    )
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["status"] == "approved" and ok.get_json()["decision_number"].startswith("AR/")
    from iam.jobs import run_due

    run_due(services, limit=50)
    got = c.get(f"/api/v1/requests/{rid}", headers=ivo).get_json()
    assert got["status"] == "granted" and got["ends_at"]
    assert "Records" in services.directory.user_groups(people["ivo"].id)
    everyone = c.get("/api/v1/requests", headers=automation).get_json()["requests"]
    assert [e["id"] for e in everyone] == [rid]
    assert (
        c.post(
            "/api/v1/requests", json={"item": "records", "justification": "x"}, headers=automation
        ).status_code
        == 403
    )
    spec = c.get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/requests", "/api/v1/requests/{request_id}/decision"} <= set(spec["paths"])
    schema = spec["paths"]["/api/v1/requests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["item", "justification"]


def test_cli_catalogue_list_decide_calendar(services: Services, people: dict[str, Any]) -> None:
    bad = run(services, "access", "catalogue", "validate", "--json")
    assert bad.exit_code == 1 and "No Such Group" in bad.output
    listed = run(services, "access", "catalogue", "list", "--json")
    assert set(json.loads(listed.output)) == {"records", "missing"}
    assert run(services, "access", "list").exit_code == 1  # nothing yet
    from provisioning.requests.service import asking
    from provisioning.requests.service.common import Actor

    with services.transaction() as s:
        rid = asking.submit(
            services,
            s,
            actor=Actor("ivo", people["ivo"].id),
            item_name="records",
            person_sub=people["ivo"].id,
            justification="Filing",
        ).id
    own = run(services, "access", "decide", str(rid), "--as", "ivo", "--outcome", "grant", "--comment", "me")
    assert own.exit_code == 1
    refused = run(
        services,
        "access",
        "decide",
        str(rid),
        "--as",
        "mara",
        "--outcome",
        "refuse",
        "--comment",
        "No",
        "--json",
    )
    assert refused.exit_code == 0, refused.output
    assert json.loads(refused.output)["status"] == "refused"
    shown = json.loads(run(services, "access", "show", str(rid), "--json").output)
    assert shown["history"][0]["comment"] == "No"
    listed = json.loads(run(services, "access", "list", "--status", "refused", "--json").output)
    assert [r["id"] for r in listed] == [rid]
    # Poland: Thursday 24 December 2026 (Christmas Eve, a holiday since 2025), 25 and 26 (Christmas), weekend
    cal = run(services, "access", "calendar", "--from", "2026-12-23", "--days", "3", "--json")
    data = json.loads(cal.output)
    assert data["due"] == "2026-12-31T00:00:00+00:00"  # end of Wednesday 30 December (UTC here)
    assert [d["date"] for d in data["days_off"]] == ["2026-12-24", "2026-12-25", "2026-12-26", "2026-12-27"]


def test_pages_ask_check_inbox_decide(services: Services, people: dict[str, Any], app: Any) -> None:
    from iam.jobs import run_due
    from tests.sso.helpers import csrf_from, login

    ivo = app.test_client()
    assert login(ivo, "ivo", PASSWORD).status_code == 302
    page = ivo.get("/requests/new?item=records").get_data(as_text=True)
    assert 'id="no-conflicts"' in page and "Records: read" in page
    form = {"item": "records", "person": people["ivo"].id, "justification": "Filing", "scope": "2026 files"}
    assert ivo.post("/requests/new", data=form).status_code == 400  # no CSRF token: nothing stored
    assert _count(services) == 0
    empty = ivo.post("/requests/new", data={**form, "justification": " ", "csrf_token": csrf_from(page)})
    assert empty.status_code == 400 and _count(services) == 0
    sent = ivo.post("/requests/new", data={**form, "csrf_token": csrf_from(page)})
    assert sent.status_code == 302, sent.get_data(as_text=True)
    with services.reader() as s:
        rid = s.scalar(select(AccessRequest.id))
    assert ivo.get(f"/requests/{rid}").status_code == 200

    services.directory.add_member("Records", people["mara"].id)  # for a review item of mara's team
    services.directory.create_group("Archive")
    services.directory.add_member("Archive", people["ivo"].id)
    definition = Definition.model_validate({"name": "t", "title": "Registry review", "birthright": "review"})
    with services.transaction() as s:
        campaigns.start(services, s, definition=definition, actor="test")
    mara = app.test_client()
    assert login(mara, "mara", PASSWORD).status_code == 302
    inbox = mara.get("/requests/inbox").get_data(as_text=True)
    # one place for everything waiting: the request step and the review items of her team
    assert f'href="/requests/{rid}"' in inbox and "Access request" in inbox
    assert 'href="/reviews/"' in inbox and "Access review" in inbox
    shown = mara.get(f"/requests/{rid}").get_data(as_text=True)
    assert 'id="decide"' in shown
    decided = mara.post(
        f"/requests/{rid}/decide", data={"outcome": "grant", "comment": "ok", "csrf_token": csrf_from(shown)}
    )
    assert decided.status_code == 302
    after = mara.get("/requests/inbox").get_data(as_text=True)
    assert f'href="/requests/{rid}"' not in after and 'href="/reviews/"' in after
    with services.reader() as s:  # the approver was told by mail, then the requester
        mails = [
            j.payload for j in s.scalars(select(Job).where(Job.kind == "iam.mail").order_by(Job.created_at))
        ]
    assert (mails[0]["to"], mails[0]["subject"]) == (
        "mara@example.test",
        f"[IAM] Access request {rid} waits for your decision",
    )
    run_due(services, limit=50)
    with services.reader() as s:
        told = [j.payload for j in s.scalars(select(Job).where(Job.kind == "iam.mail"))]
    assert any(
        m["to"] == "ivo@example.test" and m["subject"] == f"[IAM] Access request {rid} granted" for m in told
    )
    mine = ivo.get("/requests/").get_data(as_text=True)
    assert "granted" in mine and f"AR/{clock.now().year}/{rid}" in mine
    # someone else's request is not open to a third person
    sec = app.test_client()
    make_user(services, "zora")
    assert login(sec, "zora", PASSWORD).status_code == 302
    assert sec.get(f"/requests/{rid}").status_code == 403


def test_open_requests_are_withdrawn_when_the_account_is_disabled(
    services: Services, people: dict[str, Any]
) -> None:
    from iam import events
    from provisioning.requests.service import asking
    from provisioning.requests.service.common import Actor

    ivo = people["ivo"]
    with services.transaction() as s:
        rid = asking.submit(
            services,
            s,
            actor=Actor("ivo", ivo.id),
            item_name="records",
            person_sub=ivo.id,
            justification="Filing",
        ).id
    with services.transaction() as s:
        events.identity_disabled.send(ivo.id, session=s, reason="leaver")
    with services.reader() as s:
        row = s.get(AccessRequest, rid)
        assert row is not None and (row.status, row.approver) == ("withdrawn", None)
