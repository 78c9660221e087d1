"""``GET /api/v1/stats`` (bearer token with the scope ``detect.stats_api_scope``) and the
Prometheus metrics per client and agency."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, jsonify, request

from detect.service import stats
from iam import clock
from iam.web import reader, require_scope, services

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("detect")
bp = Blueprint("detect_api", __name__)


def _bad(description: str) -> Any:
    resp = jsonify(error="invalid_request", error_description=description)
    resp.status_code = 400
    return resp


def _stats() -> Any:
    today = clock.now().date()
    try:
        end = dt.date.fromisoformat(request.args["to"]) if request.args.get("to") else today
        start = (
            dt.date.fromisoformat(request.args["from"])
            if request.args.get("from")
            else end - dt.timedelta(days=29)
        )
    except ValueError:
        return _bad("from and to are dates: YYYY-MM-DD.")
    if start > end or (end - start).days > 366:
        return _bad("The period must start before it ends and last at most 367 days.")
    agency = request.args.get("agency")
    client_id = request.args.get("client_id") or None
    for value, size in ((agency, 64), (client_id, 128)):
        if value is not None and (len(value) > size or "\x00" in value):
            return _bad("client_id or agency is too long or holds characters no client has.")
    report = stats.report(
        reader(),
        start=start,
        end=end,
        client_id=client_id,
        agency=agency if agency not in (None, "") else None,
    )
    resp = jsonify(report.model_dump(mode="json"))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/api/v1/stats")
def stats_api() -> Any:
    """Per-agency statistics; the scope is a setting, so the check is applied per request."""
    return require_scope(services().settings.detect.stats_api_scope)(_stats)()


stats_api.iam_bearer_api = True  # type: ignore[attr-defined]  # bearer only: no cookies, no CSRF


def openapi_paths() -> dict[str, Any]:
    schema = stats.StatsReport.model_json_schema()  # self-contained ($defs inside)
    err: dict[str, Any] = {"description": "{error, error_description}", "content": {"application/json": {}}}
    day = {"type": "string", "format": "date"}
    return {
        "/api/v1/stats": {
            "get": {
                "summary": "Per-agency statistics: per client and agency code, by metric and by day (UTC)",
                "description": (
                    "Metrics: signin (a person signed in to the application), login (sign-ins at the "
                    "provider), token:<grant_type>, refused:<reason>. Counts only, metadata only. "
                    "Needs the scope configured as detect.stats_api_scope (default `stats`)."
                ),
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "schema": day,
                        "description": "First day (default: 30 days back)",
                    },
                    {"name": "to", "in": "query", "schema": day, "description": "Last day (default: today)"},
                    {"name": "client_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "agency", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                    "400": err,
                    "401": err,
                    "403": err,
                },
            }
        }
    }


# -- Prometheus ------------------------------------------------------------------------------------
class StatsCollector:
    """``iam_agency_events_total{client, agency, metric}`` from the counters (top clients by
    volume keep their label, the rest is ``other``: the number of series stays bounded)."""

    def __init__(self, svc: Services) -> None:
        self.services = svc

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "iam_agency_events",
            "Audit-derived events per client and agency code (LGSP statistics)",
            labels=["client", "agency", "metric"],
        )
        try:
            with self.services.reader() as session:
                rows = stats.prometheus_totals(session, self.services.settings.detect.stats_top_clients)
        except Exception:  # noqa: BLE001 — a scrape never fails because of one collector
            log.warning("agency statistics unavailable for /metrics", exc_info=True)
            rows = []
        for client, agency, metric, count in rows:
            family.add_metric([client, agency or "-", metric], count)
        yield family


_collector: StatsCollector | None = None


def register_metrics(app: Flask, svc: Services) -> None:
    """In the default registry once per process (it is global; a later app's services replace
    it), and in the app's list for multi-process scrapes (``iam serve``)."""
    global _collector
    if _collector is None:
        from prometheus_client import REGISTRY

        _collector = StatsCollector(svc)
        REGISTRY.register(_collector)
    else:
        _collector.services = svc
    app.extensions.setdefault("iam.metrics_collectors", []).append(StatsCollector(svc))
