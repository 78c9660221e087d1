"""A consistent, portable dump of every table, and loading it into an empty database.

The dump is logical (rows as JSON lines, one gzip member per table), read inside one snapshot
while the service runs: ``REPEATABLE READ, READ ONLY`` on PostgreSQL, one read transaction on
SQLite (WAL gives it a snapshot). Tables are reflected from the database itself, so a dump taken
at migration revision R loads into a database migrated to R by the code of any later version,
and PostgreSQL ↔ SQLite both work (moving from the embedded default to PostgreSQL is a backup
and a restore).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy import JSON, Connection, Engine, MetaData, Table, func, select, text

#: Rows read and written per round trip.
BATCH = 2000
#: Alembic's own table: recorded in the manifest, not dumped.
VERSION_TABLE = "alembic_version"


def _encode(value: Any) -> Any:
    """A column value as JSON: tagged where JSON has no type of its own."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, decimal.Decimal):
        return {"$n": str(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "name") and hasattr(value, "value"):  # an Enum member: stored by name
        return str(value.name)
    raise TypeError(f"cannot dump a value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$t":
            return dt.datetime.fromisoformat(raw)
        if tag == "$d":
            return dt.date.fromisoformat(raw)
        if tag == "$b":
            return base64.b64decode(raw)
        if tag == "$n":
            return decimal.Decimal(raw)
    return value


def reflect(conn: Connection) -> MetaData:
    md = MetaData()
    md.reflect(bind=conn)
    return md


def revision(conn: Connection) -> str | None:
    """The database's Alembic revision (None: never migrated)."""
    md = reflect(conn)
    if VERSION_TABLE not in md.tables:
        return None
    return conn.execute(select(md.tables[VERSION_TABLE].c.version_num)).scalar()


def _tables(md: MetaData) -> list[Table]:
    return [t for t in md.sorted_tables if t.name != VERSION_TABLE]


def snapshot(engine: Engine) -> Connection:
    """A connection reading one consistent snapshot of the whole database (caller closes it)."""
    if engine.dialect.name == "postgresql":
        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        conn.execute(text("SET TRANSACTION READ ONLY"))
        return conn
    conn = engine.connect().execution_options(iam_readonly=True)
    conn.exec_driver_sql("SELECT 1")  # SQLite's read transaction starts with the first read
    return conn


def dump_table(conn: Connection, table: Table, out: IO[bytes]) -> int:
    """Write ``table``'s rows as gzip'd JSON lines to ``out``; return how many."""
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = [c.name for c in table.columns]
    pk = list(table.primary_key.columns) or list(table.columns)
    n = 0
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
            select(table).order_by(*pk)
        )
        for row in result:
            record = {
                name: (value if name in json_cols else _encode(value))
                for name, value in zip(names, row, strict=True)
            }
            gz.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
            n += 1
    return n


def dump(engine: Engine, write: Callable[[str], IO[bytes]]) -> tuple[str | None, dict[str, int]]:
    """Dump every table in one snapshot: ``write(table_name)`` gives the file to write to.
    Return (revision, rows per table)."""
    conn = snapshot(engine)
    try:
        rev = revision(conn)
        counts: dict[str, int] = {}
        for table in _tables(reflect(conn)):
            with write(table.name) as out:
                counts[table.name] = dump_table(conn, table, out)
        return rev, counts
    finally:
        conn.rollback()
        conn.close()


def rows(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") as gz:
        for line in gz:
            if line.strip():
                yield json.loads(line)


def non_empty_tables(engine: Engine) -> list[str]:
    """Tables of ``engine``'s database that hold rows (Alembic's own excepted)."""
    with engine.connect() as conn:
        return [
            t.name
            for t in _tables(reflect(conn))
            if conn.execute(select(func.count()).select_from(t)).scalar()
        ]


def load(
    engine: Engine, files: dict[str, Path], progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Insert the dumped rows (``files``: table name → gzip'd JSON lines) into the tables of
    ``engine``'s database, already migrated to the dump's revision, in one transaction, parents
    before children. Return rows per table."""
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        md = reflect(conn)
        unknown = sorted(set(files) - set(md.tables))
        if unknown:
            raise ValueError(f"the database has no table {unknown[0]!r} that the backup holds")
        for table in _tables(md):
            path = files.get(table.name)
            if path is None:
                continue
            json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
            batch: list[dict[str, Any]] = []
            n = 0
            for record in rows(path):
                batch.append({k: (v if k in json_cols else _decode(v)) for k, v in record.items()})
                if len(batch) >= BATCH:
                    conn.execute(table.insert(), batch)
                    n += len(batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
                n += len(batch)
            counts[table.name] = n
            if progress:
                progress(table.name, n)
        if engine.dialect.name == "postgresql":
            _reset_sequences(conn, md)
    return counts


def _reset_sequences(conn: Connection, md: MetaData) -> None:
    """After inserting explicit ids, PostgreSQL's sequences must continue after the largest."""
    for table in _tables(md):
        for col in table.primary_key.columns:
            seq = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": col.name}
            ).scalar()
            if seq:
                largest = conn.execute(select(func.max(col))).scalar()
                conn.execute(text("SELECT setval(:s, :v, false)"), {"s": seq, "v": int(largest or 0) + 1})
