"""Per-agency statistics (R-AUD-4) from compact counters on SQLite and PostgreSQL, the API
(bearer scope, OpenAPI), CSV, Prometheus labels; the security officers' pages (deny by default,
CSRF, alert handling)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from detect.models import Alert, StatCounter
from detect.service import alerts, stats
from iam import clock
from iam.services import Services
from tests.detect.helpers import ruleset, seal, write
from tests.sso.helpers import (
    PASSWORD,
    csrf_from,
    login,
    make_client,
    make_user,
    service_token,
)

DAY1 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def _traffic(services: Services) -> tuple[str, str]:
    a, _ = make_client(services, name="Tax portal", agency_code="AG-7")
    b, _ = make_client(services, name="Library")
    clock.freeze(DAY1)
    for _ in range(3):
        write(services, "token.issued", client_id=a, details={"grant_type": "authorization_code"})
    write(services, "token.issued", client_id=a, details={"grant_type": "refresh_token"})
    write(services, "token.refused", outcome="failure", client_id=a, details={"error": "invalid_grant"})
    clock.freeze(DAY1 + dt.timedelta(days=1, hours=3))
    write(services, "token.issued", client_id=a, details={"grant_type": "authorization_code"})
    write(services, "token.issued", client_id=b, details={"grant_type": "client_credentials"})
    write(services, "login.succeeded", actor="s1", subject="s1", details={"username": "x"})
    write(
        services, "authorize.refused", outcome="failure", client_id=b, details={"reason": "Bad redirect URI!"}
    )
    seal(services)
    return a, b


def test_counters_per_client_agency_and_day(services: Services) -> None:
    a, b = _traffic(services)
    assert stats.run(services, limit=3) == 3  # in small batches: the cursor carries on
    while stats.run(services, limit=3):
        pass
    assert stats.run(services) == 0  # nothing is counted twice
    with services.reader() as s:
        report = stats.report(s, start=DAY1.date(), end=DAY1.date() + dt.timedelta(days=1))
        rows = {
            (r.day.isoformat(), r.client_id, r.agency, r.metric): r.count
            for r in s.scalars(select(StatCounter))
        }
    assert rows[("2026-11-30", a, "AG-7", "signin")] == 3
    assert rows[("2026-11-30", a, "AG-7", "token:authorization_code")] == 3
    assert rows[("2026-11-30", a, "AG-7", "token:refresh_token")] == 1
    assert rows[("2026-11-30", a, "AG-7", "refused:invalid_grant")] == 1
    assert rows[("2026-12-01", a, "AG-7", "signin")] == 1
    assert rows[("2026-12-01", b, "", "token:client_credentials")] == 1
    assert rows[("2026-12-01", b, "", "refused:bad_redirect_uri_")] == 1
    assert rows[("2026-12-01", "-", "", "login")] == 1
    by_client = {c.client_id: c for c in report.clients}
    assert by_client[a].metrics["signin"] == 4
    assert by_client[a].first_connection == DAY1
    assert by_client[a].last_connection == DAY1 + dt.timedelta(days=1, hours=3)
    assert {(d.day.isoformat(), d.metric): d.count for d in report.daily}[("2026-11-30", "signin")] == 3
    with services.reader() as s:
        only = stats.report(s, start=DAY1.date(), end=DAY1.date() + dt.timedelta(days=1), agency="AG-7")
        totals = stats.prometheus_totals(s, top=1)
    assert [c.client_id for c in only.clients] == [a]
    assert {c for c, _a, _m, _n in totals} == {a, "other"}  # bounded: top 1 + other


@pytest.fixture
def officer_app(services: Services, app: Flask, monkeypatch: pytest.MonkeyPatch) -> Flask:
    detect = services.settings.detect.model_copy(update={"officers_group": "soc"})
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"detect": detect}))
    make_user(services, "sec", groups=["soc"])
    make_user(services, "eve")
    return app


def test_pages_deny_by_default_and_officer_closes_alert(services: Services, officer_app: Flask) -> None:
    anonymous = officer_app.test_client()
    assert anonymous.get("/security/alerts").status_code == 302  # sign in first
    eve = officer_app.test_client()
    login(eve, "eve", PASSWORD)
    for path in (
        "/security/alerts",
        "/security/directory-changes",
        "/security/statistics",
        "/security/statistics.csv",
    ):
        assert eve.get(path).status_code == 403, path
    write(
        services, "token.refused", outcome="failure", client_id="x", details={"reason": "network_not_allowed"}
    )
    seal(services)
    alerts.run(services, ruleset=ruleset())
    with services.reader() as s:
        alert_id = s.scalars(select(Alert.id)).one()
    sec = officer_app.test_client()
    login(sec, "sec", PASSWORD)
    page = sec.get("/security/alerts")
    assert page.status_code == 200 and "token_outside_networks" in page.get_data(as_text=True)
    assert 'id="admin-detect-alerts"' in page.get_data(as_text=True)  # in the console's navigation
    detail = sec.get(f"/security/alerts/{alert_id}")
    token = csrf_from(detail.get_data(as_text=True))
    assert sec.post(f"/security/alerts/{alert_id}", data={"to": "closed", "comment": "ok"}).status_code == 400
    refused = sec.post(
        f"/security/alerts/{alert_id}", data={"csrf_token": token, "to": "closed", "comment": ""}
    )
    assert refused.status_code == 400 and "needs a comment" in refused.get_data(as_text=True)
    done = sec.post(
        f"/security/alerts/{alert_id}", data={"csrf_token": token, "to": "closed", "comment": "Known scanner"}
    )
    assert done.status_code == 302
    with services.reader() as s:
        alert = s.get(Alert, alert_id)
        assert alert is not None and (alert.state, alert.comment) == ("closed", "Known scanner")


def test_statistics_page_csv_and_api(services: Services, officer_app: Flask, tmp_path: Path) -> None:
    a, _b = _traffic(services)
    stats.run(services)
    clock.freeze(DAY1 + dt.timedelta(days=2))
    sec = officer_app.test_client()
    login(sec, "sec", PASSWORD)
    page = sec.get("/security/statistics?from=2026-11-29&to=2026-12-02")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html and "<polyline" in html and "AG-7" in html
    assert sec.get("/security/statistics?from=2026-13-01").status_code == 400
    csv_text = sec.get("/security/statistics.csv?from=2026-11-29&to=2026-12-02&agency=AG-7").get_data(
        as_text=True
    )
    assert csv_text.splitlines()[0] == "day,client_id,agency,metric,count"
    assert f"2026-11-30,{a},AG-7,signin,3" in csv_text.splitlines()

    api = officer_app.test_client()
    assert api.get("/api/v1/stats").status_code == 401

    def token(scope: str) -> str:
        return service_token(services, api, scope)

    assert (
        api.get("/api/v1/stats", headers={"Authorization": f"Bearer {token('users:write')}"}).status_code
        == 403
    )
    resp = api.get(
        "/api/v1/stats?from=2026-11-30&to=2026-12-01&client_id=" + a,
        headers={"Authorization": f"Bearer {token('stats')}"},
    )
    body: dict[str, Any] = resp.get_json()
    assert resp.status_code == 200, body
    assert body["clients"][0]["agency"] == "AG-7" and body["clients"][0]["metrics"]["signin"] == 4
    bad = api.get("/api/v1/stats?agency=%00", headers={"Authorization": f"Bearer {token('stats')}"})
    assert bad.status_code == 400
    line = f'iam_agency_events_total{{agency="AG-7",client="{a}",metric="signin"}} 4.0'
    assert line in api.get("/metrics").get_data(as_text=True)
    with pytest.MonkeyPatch.context() as mp:  # as under `iam serve` (gunicorn, several processes)
        mp.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        assert line in api.get("/metrics").get_data(as_text=True)
    doc = api.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/stats" in doc["paths"]
