"""Several nodes start at once and each runs ``iam db upgrade`` (systemd ExecStartPre): on
PostgreSQL one migrates and the others wait for it and find nothing to do."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from iam.migrate import code_heads, schema_state
from tests.conftest import PG_ADMIN_URL, _pg_reachable, need

ROOT = Path(__file__).resolve().parents[2]


def test_three_nodes_upgrade_one_database_at_once() -> None:
    if not _pg_reachable():
        need("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"iam_upg_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    code = f"from sqlalchemy import create_engine; from iam.migrate import upgrade; upgrade(create_engine({url!r}))"
    try:
        procs = [
            subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE) for _ in range(3)
        ]
        errors = [p.communicate(timeout=240)[1].decode()[-2000:] for p in procs if p.wait(timeout=240) != 0]
        assert errors == []
        assert schema_state(engine).database == code_heads()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


pytestmark = pytest.mark.postgres
