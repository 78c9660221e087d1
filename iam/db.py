"""Database engine, sessions and shared column types.

The same code runs on SQLite (embedded default) and PostgreSQL. On SQLite every transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing, and the
database runs in WAL mode so readers never wait for writers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, String, TypeDecorator, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from iam.config import DatabaseSettings


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC; refuses naive datetimes on the way in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use iam.clock.now()")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


def new_id() -> str:
    """A random UUID as a string: primary keys that reveal nothing."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base of every table (core and feature packages)."""

    type_annotation_map = {dt.datetime: UTCDateTime(), str: String()}


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("iam_readonly"):
            conn.exec_driver_sql("BEGIN")  # WAL readers never wait
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(settings: DatabaseSettings) -> Engine:
    url = settings.url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=settings.echo,
            connect_args={"check_same_thread": False, "timeout": 10},
            poolclass=NullPool if path == ":memory:" else None,
        )
        _sqlite_setup(engine)
        return engine
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        pool_pre_ping=True,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def readonly(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for reading only: on SQLite they neither take nor wait for the write lock."""
    bind = factory.kw["bind"]
    return sessionmaker(
        bind=bind.execution_options(iam_readonly=True),
        expire_on_commit=False,
        info=factory.kw.get("info"),
    )


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
