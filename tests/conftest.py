"""Shared fixtures: settings and services on each storage backend, the Flask app and client,
the clock. Backends: SQLite always; PostgreSQL (127.0.0.1:5432) — required when CI=true."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from iam import clock
from iam.config import Settings, load_settings
from iam.migrate import metadata, upgrade
from iam.services import Services

pytest_plugins = ["tests.smtp"] + (["tests.samba"] if (Path(__file__).parent / "samba.py").exists() else [])

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get("IAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the translation catalogues (.mo are not committed; `make test` compiles them
    too), so a single test run by hand sees the languages."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po in Path(__file__).resolve().parent.parent.glob("translations/*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as f:
                catalog = read_po(f)
            with mo.open("wb") as f:
                write_mo(f, catalog)


def need(reason: str) -> None:
    """A real component is missing: fail on CI, skip on a developer machine."""
    if CI:
        pytest.fail(f"required test component missing on CI: {reason}")
    pytest.skip(reason)


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session."""
    if not _pg_reachable():
        need("PostgreSQL is not running on 127.0.0.1:5432")
    from sqlalchemy import create_engine

    name = f"iam_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_settings(tmp: Path, db_url: str, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "dev_mode": True,
        "var_dir": tmp,
        "issuer": "http://localhost",
        "database": {"url": db_url},
        "secret_key": "test-secret-key-" + "x" * 32,
        "encryption_key": "Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
    }
    base.update(overrides)
    return load_settings(**base)


@pytest.fixture(scope="session")
def _sqlite_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("sqlite")
    services = Services(make_settings(tmp, f"sqlite:///{tmp}/iam.db"))
    upgrade(services.engine)
    yield services
    services.dispose()


@pytest.fixture(scope="session")
def _pg_services(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("pg")
    services = Services(make_settings(tmp, pg_database))
    upgrade(services.engine)
    yield services
    services.dispose()


def _truncate(services: Services) -> None:
    tables = [t.name for t in reversed(metadata().sorted_tables)] + ["alembic_version"]
    with services.engine.begin() as conn:
        for name in tables:
            if name == "alembic_version":
                continue
            conn.execute(text(f"DELETE FROM {name}"))


def _fresh(svc: Services) -> Services:
    """Empty tables, no per-process caches, fresh signing keys."""
    _truncate(svc)
    svc.audit_anchor.forget()  # a fresh database starts a fresh chain: a fresh anchor too
    svc.audit_anchor.path.unlink(missing_ok=True)
    svc.extensions.clear()
    svc.__dict__.pop("directory", None)
    import sso

    sso.on_upgrade(svc)
    return svc


@pytest.fixture(params=["sqlite", "postgres"])
def services(request: pytest.FixtureRequest) -> Iterator[Services]:
    """Services on each storage backend, with empty tables and fresh signing keys."""
    svc: Services = request.getfixturevalue(f"_{'pg' if request.param == 'postgres' else 'sqlite'}_services")
    yield _fresh(svc)
    clock.reset()


@pytest.fixture
def sqlite_services(_sqlite_services: Services) -> Iterator[Services]:
    """SQLite only (for tests that are not about storage)."""
    yield _fresh(_sqlite_services)
    clock.reset()


@pytest.fixture
def app(services: Services):  # type: ignore[no-untyped-def]
    from iam.app import create_app

    app = create_app(services=services)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def db_session(services: Services) -> Iterator[object]:
    with services.transaction() as session:
        yield session


@pytest.fixture(autouse=True)
def _clock_reset() -> Iterator[None]:
    yield
    clock.reset()


@pytest.fixture
def unlucky_password(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Random temporary passwords whose first is one AD's complexity rule refuses
    ("onlysmallletters"), the rest real ones; the list holds every password handed out."""
    from iam.passwords import service as passwords

    real = passwords.generate_temporary_password
    made: list[str] = []

    def unlucky_first(profile, **kw):  # type: ignore[no-untyped-def]
        made.append("onlysmallletters" if not made else real(profile, **kw))
        return made[-1]

    monkeypatch.setattr(passwords, "generate_temporary_password", unlucky_first)
    return made
