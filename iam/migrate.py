"""Alembic, driven from code: ``iam db upgrade`` and the test fixtures use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def metadata() -> MetaData:
    """All tables: the core's and every feature package's."""
    import iam.models  # noqa: F401
    from iam.app import load_features
    from iam.db import Base

    for feature in load_features():
        __import__(f"{feature.__name__}.models")
    return Base.metadata
