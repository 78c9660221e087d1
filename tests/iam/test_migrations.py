"""Migrations and models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from iam.config import DatabaseSettings
from iam.db import make_engine
from iam.migrate import alembic_config, metadata, upgrade
from iam.services import Services


def _diff(services: Services) -> list[object]:
    with services.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, metadata()))


def test_models_and_migrations_agree(services: Services) -> None:
    """After ``upgrade``, autogenerate finds nothing to add, drop or alter."""
    upgrade(services.engine)
    assert _diff(services) == []


def test_database_is_at_the_single_head(services: Services) -> None:
    upgrade(services.engine)  # idempotent
    script = ScriptDirectory.from_config(alembic_config(services.engine))
    assert len(script.get_heads()) == 1
    with services.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    assert current == script.get_current_head()


def test_every_model_table_is_created(services: Services) -> None:
    tables = set(inspect(services.engine).get_table_names())
    assert set(metadata().tables) <= tables
    assert "alembic_version" in tables


def test_fresh_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    """The embedded default starts from an empty file; downgrade to base and back works."""
    from alembic import command

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path}/sub/iam.db"))
    try:
        upgrade(engine)
        assert set(metadata().tables) <= set(inspect(engine).get_table_names())
        command.downgrade(alembic_config(engine), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata()) == []
    finally:
        engine.dispose()
