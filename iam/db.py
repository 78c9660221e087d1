"""Database engine, sessions and shared column types.

The same code runs on SQLite (embedded default) and PostgreSQL. On SQLite every transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing, and the
database runs in WAL mode so readers never wait for writers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, String, TypeDecorator, bindparam, create_engine, event, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
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


class WriteLockTimeout(OperationalError):
    """Another writer held the SQLite database for longer than the busy timeout."""


def _acquire(fd: int, timeout: float) -> None:
    """Take the cross-process write lock, polling finely (SQLite's own busy handler sleeps
    1, 2, 5 … 100 ms between tries, which dominates latency under concurrent writers)."""
    deadline = time.monotonic() + timeout
    pause = 0.0001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise WriteLockTimeout("BEGIN IMMEDIATE", None, TimeoutError("database is busy")) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.002)


def _sqlite_setup(engine: Engine, lock_path: str | None) -> None:
    """SQLite: WAL, and writers queue on a file lock next to the database."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        if lock_path:
            record.info["iam_lock_fd"] = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "close")
    def _on_close(dbapi_conn: Any, record: Any) -> None:
        fd = record.info.pop("iam_lock_fd", None)
        if fd is not None:
            os.close(fd)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("iam_readonly"):
            conn.exec_driver_sql("BEGIN")  # WAL readers never wait
            return
        fd = conn.connection.info.get("iam_lock_fd")
        if fd is not None:
            _acquire(fd, 10.0)
            conn.connection.info["iam_locked"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Any) -> None:
        if conn.connection.info.pop("iam_locked", False):
            fcntl.flock(conn.connection.info["iam_lock_fd"], fcntl.LOCK_UN)

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Any) -> None:
        # finish the transaction ourselves so the lock is released right after it;
        # the driver's own commit() is then a no-op (autocommit mode, no open transaction)
        raw = conn.connection.dbapi_connection
        try:
            if raw.in_transaction:
                raw.execute("COMMIT")
        finally:
            _release(conn)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Any) -> None:
        raw = conn.connection.dbapi_connection
        try:
            if raw is not None and raw.in_transaction:
                raw.execute("ROLLBACK")
        finally:
            _release(conn)


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
        memory = not path or path == ":memory:"
        _sqlite_setup(engine, None if memory else path + ".lock")
        return engine
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        pool_pre_ping=True,
    )


def make_sessionmaker(engine: Engine, *, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """The sessions of ``engine`` (objects stay readable after commit); :func:`holds_connection`
    can tell whether one of them holds a connection."""
    factory = sessionmaker(bind=engine, expire_on_commit=False, info=info)
    event.listen(factory, "after_begin", _connected)
    event.listen(factory, "after_transaction_end", _transaction_ended)
    return factory


def _connected(session: Session, transaction: Any, connection: Any) -> None:
    session.info["iam_connected"] = True


def _transaction_ended(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop("iam_connected", None)


def holds_connection(session: Session) -> bool:
    """Has the session's transaction a database connection yet — on SQLite, the write lock?
    (A session can be in a transaction without one: SQLAlchemy begins lazily, e.g. after
    ``merge(load=False)`` or ``add``.)"""
    return bool(session.info.get("iam_connected"))


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


_IF_ABSENT: dict[tuple[type[Base], str, tuple[str, ...]], Any] = {}


def insert_if_absent(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING (PostgreSQL and SQLite): safe when two transactions
    create the same row at once. True if this call inserted it.

    The statement is built once per table, dialect and set of columns (sign-ins run this on
    every attempt, issue 18); the values are its parameters."""
    dialect = session.get_bind().dialect.name
    key = (model, dialect, tuple(sorted(values)))
    stmt = _IF_ABSENT.get(key)
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        pk = list(inspect(model).primary_key)
        params: dict[str, Any] = {name: bindparam(f"v_{name}") for name in key[2]}
        stmt = _IF_ABSENT.setdefault(
            key, insert(model).values(params).on_conflict_do_nothing().returning(*pk)
        )
    row = session.connection().execute(stmt, {f"v_{name}": value for name, value in values.items()}).first()
    return row is not None


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
