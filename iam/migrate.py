"""Alembic, driven from code: ``iam db upgrade`` and the test fixtures use this."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    # configparser reads "%" as interpolation: a URL with escapes (several hosts, a password
    # with special characters) must have them doubled
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    cfg.set_main_option("sqlalchemy.url", url)
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


@dataclass(frozen=True)
class SchemaState:
    """The database's alembic revision(s) against the code's head(s)."""

    database: frozenset[str]
    code: frozenset[str]

    @property
    def current(self) -> bool:
        return self.database == self.code

    @property
    def missing(self) -> bool:
        """The database lacks a migration of this code (run ``iam db upgrade``)."""
        return not self.code <= self.database


@lru_cache(maxsize=1)
def code_heads() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code (read once per process)."""
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def schema_state(engine: Engine) -> SchemaState:
    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return SchemaState(database=frozenset(rows), code=code_heads())
