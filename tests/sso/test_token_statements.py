"""The token endpoint's database work per token, counted (issue 18): a refresh and a
client-credentials token issue the statements listed here and no more, on SQLite and PostgreSQL.

Throughput is measured by ``bench/run.py``, never by a timed test; this guards what the benchmark
showed matters — statements per token — against a change that quietly adds a read or a write
(an ORM load, a flush, a second session) to the hot path."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.sso.helpers import basic, exchange, make_client, make_user, sign_in_and_get_code


@contextmanager
def _statements(services: Any) -> Iterator[list[str]]:
    """Every statement sent to the database meanwhile, as the verb and table it touches."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        verb = words[0].upper() if words else ""
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", statement, re.IGNORECASE)
        seen.append(f"{verb} {table.group(1) if table else ''}".strip())

    event.listen(services.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(services.engine, "before_cursor_execute", before)


def _data(statements: list[str]) -> list[str]:
    """The reads and writes of rows (not BEGIN/COMMIT, pings or the pool's resets)."""
    return [s for s in statements if s.split()[0] in ("SELECT", "INSERT", "UPDATE", "DELETE") and " " in s]


def test_a_refresh_reads_four_rows_and_writes_three(services: Any, client: Any) -> None:
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    first = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    warm = client.post(  # one refresh first: the client registration is cached after it
        "/token", data={"grant_type": "refresh_token", "refresh_token": first}, headers=basic(cid, secret)
    )
    fresh = warm.get_json()["refresh_token"]

    with _statements(services) as seen:
        resp = client.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": fresh}, headers=basic(cid, secret)
        )
    assert resp.status_code == 200, resp.get_json()
    # every read before the first write (on SQLite: without the write lock): the token, the
    # identity's disabled flag (R-SSO-1), the SSO session the token belongs to (its sid claim),
    # the PIM account (R-PIM-4: an admin account's tokens end with its elevation); then, once both
    # new tokens are signed, the atomic claim of the old token, the new token, the audit event
    assert _data(seen) == [
        "SELECT refresh_tokens",
        "SELECT identities",
        "SELECT sso_sessions",
        "SELECT pim_admin_accounts",
        "UPDATE refresh_tokens",
        "INSERT refresh_tokens",
        "INSERT audit_events",
    ], seen


def test_a_client_credentials_token_writes_its_audit_event_only(services: Any, client: Any) -> None:
    cid, secret = make_client(services, grant_types=["client_credentials"], redirect_uris=[], scopes=["api"])
    assert secret is not None
    body = {"grant_type": "client_credentials", "scope": "api"}
    assert client.post("/token", data=body, headers=basic(cid, secret)).status_code == 200  # warms the cache
    with _statements(services) as seen:
        resp = client.post("/token", data=body, headers=basic(cid, secret))
    assert resp.status_code == 200, resp.get_json()
    assert _data(seen) == ["INSERT audit_events"], seen
