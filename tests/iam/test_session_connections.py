"""`iam.db.holds_connection`: whether a request's session already holds a database connection —
on SQLite, the write lock. `iam.web.read_session` and `iam.web.write_now` decide by it (issue 18):
a session that holds the lock must not open a second write transaction (it would wait for
itself), and one that does not must not be made to take the lock for a read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from iam.db import holds_connection
from iam.models import Identity


def test_a_session_holds_a_connection_from_its_first_statement_to_its_end(services: Any) -> None:
    s = services.sessions()
    try:
        assert not holds_connection(s)
        s.add(Identity(sub="x-1", directory="local", username="x1"))  # begins, but lazily
        assert s.in_transaction() and not holds_connection(s)
        s.expunge_all()
        s.execute(select(text("1")))
        assert holds_connection(s)
        s.commit()
        assert not holds_connection(s)
        s.execute(select(text("1")))
        assert holds_connection(s)
        s.rollback()
        assert not holds_connection(s)
    finally:
        s.close()


def test_a_merged_row_does_not_count_as_a_connection(services: Any) -> None:
    with services.transaction() as s:
        s.add(Identity(sub="x-2", directory="local", username="x2"))
    with services.reader() as r:
        row = r.get(Identity, "x-2")
    s = services.sessions()
    try:
        s.merge(row, load=False)
        assert s.in_transaction() and not holds_connection(s)
    finally:
        s.close()
