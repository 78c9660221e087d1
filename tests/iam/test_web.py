"""Request plumbing: health, readiness, metrics, security headers, error pages, the OpenAPI
document, the caller's address behind proxies, one transaction per request."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask, abort, g, jsonify
from flask.testing import FlaskClient
from sqlalchemy import select

from iam import audit
from iam.config import ServerSettings
from iam.directory.errors import DirectoryUnavailable
from iam.models.audit import AuditEvent
from iam.services import Services
from iam.web import db

SPOOFER = {"REMOTE_ADDR": "10.9.9.9"}


def _add_test_routes(app: Flask) -> None:
    @app.get("/_test/ip")
    def _ip() -> Any:
        return jsonify(ip=g.client_ip)

    @app.get("/_test/boom")
    def _boom() -> Any:
        audit.record(db(), "test.before_crash")
        raise RuntimeError("psycopg.OperationalError: SELECT password_hash FROM local_users")

    @app.get("/api/v1/_test/boom")
    def _api_boom() -> Any:
        raise RuntimeError("internal detail 0xdeadbeef")

    @app.get("/_test/write")
    def _write() -> Any:
        audit.record(db(), "test.written")
        return jsonify(ok=True)

    @app.get("/_test/rejected")
    def _rejected() -> Any:
        audit.record(db(), "test.rejected", outcome="failure")
        abort(401)


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    """The app on each backend, with a few test routes."""
    _add_test_routes(app)
    return app.test_client()


@pytest.fixture
def sqlite_app(sqlite_services: Services) -> Flask:
    """SQLite only, for behaviour that does not depend on storage."""
    from iam.app import create_app

    app = create_app(services=sqlite_services)
    app.config.update(TESTING=True)
    _add_test_routes(app)
    return app


@pytest.fixture
def http(sqlite_app: Flask) -> FlaskClient:
    return sqlite_app.test_client()


def set_server(monkeypatch: pytest.MonkeyPatch, services: Services, **server: Any) -> None:
    settings = services.settings.model_copy(update={"server": ServerSettings(**server)})
    monkeypatch.setattr(services, "settings", settings)


def events(services: Services, name: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


# -- health -----------------------------------------------------------------------------------
def test_healthz(client: FlaskClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz(client: FlaskClient, services: Services) -> None:
    """Every check is listed; the database check committed a row (a write, not SELECT 1)."""
    from iam import cluster
    from iam.migrate import code_heads
    from iam.models.jobs import NodeProbe

    listener = cluster.listen(services)
    assert (listener is None) == (services.engine.dialect.name == "sqlite")
    if listener is not None:
        assert listener.connected.wait(10)
    resp = client.get("/readyz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "directory": "ok"}
    assert body["schema"] == {"database": sorted(code_heads()), "code": sorted(code_heads())}
    expected = "single-node" if services.engine.dialect.name == "sqlite" else "ok"
    assert body["notifications"] == expected
    with services.transaction() as s:
        assert s.scalars(select(NodeProbe)).all()
    assert resp.headers["Cache-Control"] == "no-store"
    # the OpenAPI document describes this body (generated from the same pydantic model)
    doc = client.get("/api/v1/openapi.json").get_json()
    schema = doc["components"]["schemas"]["Readiness"]
    assert set(schema["required"]) == set(body) == {"status", "checks", "schema", "notifications"}
    ref = doc["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/Readiness"}


def test_readyz_directory_down(
    client: FlaskClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise DirectoryUnavailable("no domain controller answers")

    monkeypatch.setattr(services.directory, "ping", down)
    resp = client.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "migrations": "ok", "directory": "unreachable"}


def test_readyz_database_read_only(services: Services, tmp_path: Any) -> None:
    """A database that answers SELECT 1 but takes no write (a hot standby, a read-only
    default) is not ready: the load balancer must not send sign-ins there."""
    from iam.app import create_app
    from tests.conftest import make_settings

    if services.engine.dialect.name != "postgresql":
        pytest.skip("read-only transactions are a PostgreSQL setting")
    url = services.engine.url.update_query_dict({"options": "-c default_transaction_read_only=on"})
    ro = Services(make_settings(tmp_path, url.render_as_string(hide_password=False)))
    try:
        with ro.engine.connect() as conn:  # reads work
            conn.exec_driver_sql("SELECT 1")
        resp = create_app(services=ro).test_client().get("/readyz")
        assert resp.status_code == 503
        body = resp.get_json()
        assert body["checks"]["database"] == "not writable"
        assert body["checks"]["migrations"] == "ok"
    finally:
        ro.dispose()


def test_readyz_migrations_behind(client: FlaskClient, services: Services) -> None:
    """A node whose code expects a newer schema than the database has is not ready."""
    from sqlalchemy import text

    with services.engine.begin() as conn:
        (current,) = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        conn.execute(text("UPDATE alembic_version SET version_num = '0014'"))
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        body = resp.get_json()
        assert body["checks"]["migrations"] == "behind"
        assert body["schema"]["database"] == ["0014"]
    finally:
        with services.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": current})


# -- metrics ----------------------------------------------------------------------------------
def test_metrics_from_localhost(http: FlaskClient) -> None:
    http.get("/healthz")
    resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert b"iam_http_requests_total" in resp.data
    assert b'endpoint="iam.healthz"' in resp.data
    assert http.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def test_metrics_refused_from_elsewhere(http: FlaskClient) -> None:
    resp = http.get("/metrics", environ_base=SPOOFER)
    assert resp.status_code == 403
    assert b"iam_http_requests_total" not in resp.data
    # a forged X-Forwarded-For from an untrusted peer changes nothing
    spoofed = http.get("/metrics", environ_base=SPOOFER, headers={"X-Forwarded-For": "127.0.0.1"})
    assert spoofed.status_code == 403


def test_metrics_behind_local_proxy_judges_the_real_client(
    http: FlaskClient, sqlite_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reverse proxy on 127.0.0.1 must not make every outside caller look local."""
    set_server(monkeypatch, sqlite_services, trusted_proxies=["127.0.0.1"])
    outside = http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
    assert outside.status_code == 403
    inside = http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert inside.status_code == 200


# -- the caller's address ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("proxies", "peer", "xff", "expected"),
    [
        ([], "10.1.1.1", "203.0.113.5", "10.1.1.1"),
        (["10.0.0.0/8"], "10.1.1.1", "203.0.113.5", "203.0.113.5"),
        (["10.0.0.0/8"], "10.1.1.1", "198.51.100.66, 203.0.113.5", "203.0.113.5"),
        (["10.0.0.0/8"], "10.1.1.1", "203.0.113.5, 10.2.2.2", "203.0.113.5"),
        (["10.0.0.0/8"], "192.0.2.9", "203.0.113.5", "192.0.2.9"),
        (["10.0.0.0/8"], "10.1.1.1", None, "10.1.1.1"),
    ],
    ids=["no-proxies", "trusted", "spoofed-left", "proxy-chain", "untrusted-peer", "no-header"],
)
def test_x_forwarded_for_only_from_trusted_proxies(
    http: FlaskClient,
    sqlite_services: Services,
    monkeypatch: pytest.MonkeyPatch,
    proxies: list[str],
    peer: str,
    xff: str | None,
    expected: str,
) -> None:
    set_server(monkeypatch, sqlite_services, trusted_proxies=proxies)
    headers = {"X-Forwarded-For": xff} if xff else {}
    resp = http.get("/_test/ip", environ_base={"REMOTE_ADDR": peer}, headers=headers)
    assert resp.get_json() == {"ip": expected}


# -- headers and errors -----------------------------------------------------------------------
def test_security_headers_on_html_page(http: FlaskClient) -> None:
    resp = http.get("/login")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "'unsafe-inline'" not in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"  # https form posts need a Referer
    assert "no-store" in resp.headers["Cache-Control"]
    assert "Strict-Transport-Security" not in resp.headers  # http issuer (dev)
    other = http.get("/login").headers["Content-Security-Policy"]
    nonce = [p for p in csp.split() if p.startswith("'nonce-")]
    assert nonce and nonce[0] not in other  # a fresh nonce per response


def test_hsts_with_https_issuer(
    http: FlaskClient, sqlite_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = sqlite_services.settings.model_copy(update={"issuer": "https://sso.example.test"})
    monkeypatch.setattr(sqlite_services, "settings", settings)
    resp = http.get("/healthz")
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_unexpected_error_page_reveals_nothing(web: FlaskClient, services: Services) -> None:
    """A crash renders a plain 500 page; the request's writes are rolled back."""
    resp = web.get("/_test/boom", headers={"Accept": "text/html"})
    assert resp.status_code == 500
    assert resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    assert "An internal error occurred." in body
    for leak in ("psycopg", "SELECT", "password_hash", "RuntimeError", "Traceback", 'File "'):
        assert leak not in body
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert events(services, "test.before_crash") == []


def test_unexpected_error_in_api_is_json(http: FlaskClient) -> None:
    resp = http.get("/api/v1/_test/boom")
    assert resp.status_code == 500
    assert resp.get_json() == {
        "error": "server_error",
        "error_description": "An internal error occurred.",
    }
    assert b"deadbeef" not in resp.data


def test_not_found_json_and_html(http: FlaskClient) -> None:
    api = http.get("/api/v1/nothing-here")
    assert api.status_code == 404
    assert api.get_json()["error"] == "not_found"
    page = http.get("/nothing-here", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_request_writes_commit_at_the_boundary(web: FlaskClient, services: Services) -> None:
    """One transaction per request: committed on success and on a refusal (R-AUD-1 records
    rejected attempts too), rolled back on a server error (above)."""
    assert web.get("/_test/write").status_code == 200
    assert len(events(services, "test.written")) == 1
    assert web.get("/_test/rejected").status_code == 401
    [rejected] = events(services, "test.rejected")
    assert rejected.outcome == "failure"
    with services.transaction() as s:
        assert audit.verify(s).ok


# -- OpenAPI ----------------------------------------------------------------------------------
def test_openapi_document(http: FlaskClient, sqlite_app: Flask) -> None:
    resp = http.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    doc = resp.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": sqlite_app.extensions["iam.settings"].issuer}]
    for path in ("/token", "/introspect", "/revoke"):
        op = doc["paths"][path]["post"]
        assert op["summary"]
        content = op["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert content["schema"]["type"] == "object"
        assert set(content["schema"]["required"]) <= set(content["schema"]["properties"])
        assert "200" in op["responses"] and "401" in op["responses"]
    # every documented operation exists on the application
    routes: dict[str, set[str]] = {}
    for rule in sqlite_app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)  # werkzeug → OpenAPI templates
        routes.setdefault(path, set()).update(m.lower() for m in rule.methods or ())
    for path, ops in doc["paths"].items():
        assert path.startswith("/")
        assert path in routes, f"{path} is documented but not routed"
        for method, op in ops.items():
            assert method in routes[path], f"{method.upper()} {path} is documented but not routed"
            assert op["responses"] and all(isinstance(code, str) for code in op["responses"])
