"""The core's own routes: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import text

from iam.directory.errors import DirectoryError, DirectoryUnavailable
from iam.errors import NotFound, PrivilegedAccount
from iam.web import db, ip_allowed, require_scope, services

bp = Blueprint("iam", __name__)

METRICS_COLLECTORS = "iam.metrics_collectors"
"""``app.extensions`` key: Prometheus collectors features add (computed at scrape time, e.g. from
the database); with gunicorn's multi-process metrics they join each scrape's registry."""

REQUESTS = Counter("iam_http_requests_total", "HTTP requests", ["endpoint", "status"])
LATENCY = Histogram("iam_http_request_seconds", "HTTP request latency", ["endpoint"])


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness: the process answers."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Any:
    """Readiness: the database and the directory are reachable (503 otherwise); ``degraded``
    (still 200) when a SIEM destination's backlog passes ``siem.backlog_threshold``."""
    checks: dict[str, str] = {}
    ok = True
    try:
        db().execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 — any failure means not ready
        checks["database"] = "unreachable"
        ok = False
    try:
        services().directory.ping()
        checks["directory"] = "ok"
    except DirectoryError:
        checks["directory"] = "unreachable"
        ok = False
    state = "ok" if ok else "unavailable"
    if ok and services().settings.siem.destinations:
        from iam.siem.service import status as siem_status

        try:
            waiting = {d.name: d.backlog for d in siem_status(db(), services().settings.siem) if d.degraded}
        except Exception:  # noqa: BLE001 — the SIEM check never makes the provider unready
            waiting = {}
        checks["siem"] = "degraded" if waiting else "ok"
        if waiting:  # still ready: the provider works, the SIEM copy lags (siem.backlog_threshold)
            state = "degraded"
            checks.update({f"siem:{name}": f"{n} events waiting" for name, n in waiting.items()})
    return jsonify(status=state, checks=checks), 200 if ok else 503


@bp.get("/metrics")
def metrics() -> Response:
    if not ip_allowed(services().settings.server.metrics_networks):
        abort(403)
    registry = None
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        for collector in current_app.extensions.get(METRICS_COLLECTORS, []):
            registry.register(collector)  # features' collectors that read the database
    body = generate_latest(registry) if registry else generate_latest()
    if services().settings.siem.destinations:
        from iam.siem.service import metrics_text

        body += metrics_text(db(), services().settings.siem)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


@bp.get("/.well-known/oauth-protected-resource")
def protected_resource() -> Any:
    """RFC 9728: the identifier of the provider's own APIs (``/api/v1``, ``/scim/v2``). Access
    tokens for them must carry it as ``aud``: a client asks for it with ``resource=`` (RFC 8707)."""
    settings = services().settings
    resp = jsonify(
        resource=settings.api_resource,
        authorization_servers=[settings.issuer],
        bearer_methods_supported=["header"],
        resource_name="iam administration, HR and SCIM APIs",
        resource_documentation=f"{settings.issuer}/api/v1/openapi.json",
    )
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/api/v1/openapi.json")
def openapi() -> Any:
    from iam.openapi import document

    settings = services().settings
    return jsonify(document(settings.issuer, current_app, api_resource=settings.api_resource))


def init_metrics(app: Flask) -> None:
    from flask import g, request

    @app.before_request
    def _start() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.endpoint or "unknown"
        REQUESTS.labels(endpoint, str(response.status_code)).inc()
        t0 = g.get("t0")
        if t0 is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
        return response


USERS_SCOPE = "users:write"
"""Scope a client (e.g. the service desk's tool) needs for the user administration API."""


@bp.post("/api/v1/users/<username>/password-reset")
@require_scope(USERS_SCOPE)
def api_reset_password(username: str) -> Any:
    """Administrator reset (PABIANICE §19–§22): a random temporary password that satisfies the
    profile, returned once, changed at first sign-in; recorded in the audit log."""
    from iam import users

    body = request.get_json(silent=True) if request.data else {}
    if not isinstance(body, dict) or set(body) - {"reason"} or not isinstance(body.get("reason", ""), str):
        return jsonify(
            error="invalid_request", error_description='The body may only hold {"reason": "…"}.'
        ), 400
    reason = str(body.get("reason", ""))[:500] or None
    try:
        temporary, must_change = users.reset_password(
            services(), username=username, actor=g.api_actor, reason=reason
        )
    except NotFound:
        return jsonify(error="not_found", error_description=f"There is no user {username!r}."), 404
    except PrivilegedAccount as exc:  # the refusal is already recorded (critical)
        return jsonify(error="access_denied", error_description=str(exc)), 403
    except DirectoryUnavailable:
        return jsonify(
            error="temporarily_unavailable",
            error_description="The directory is unavailable; nothing was changed.",
        ), 503
    resp = jsonify(username=username, temporary_password=temporary, must_change=must_change)
    resp.headers["Cache-Control"] = "no-store"
    return resp
