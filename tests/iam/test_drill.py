"""The several-nodes drill (deploy/drill.py, issue 17) in a small size: two ``iam serve`` nodes
behind a real nginx, two workers, a real PostgreSQL primary and streaming replica. Asserts what
the drill proves; the numbers it prints are in the README ("Operating several nodes")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]


def test_drill_two_nodes_two_workers_replica(tmp_path: Path) -> None:
    if shutil.which("nginx") is None:
        need("nginx is not installed")
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_basebackup").exists():
        need(f"PostgreSQL server binaries are missing under {PG_BIN}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        need("runuser is missing (PostgreSQL must not run as root)")
    out = tmp_path / "drill.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "drill.py"), "--users", "2", "--events", "20", "--settle", "2"]
        # the 50-elevation drill takes minutes more on a 2-core machine: run it with the script
        + ["--only", "client-disable,node-kill,worker-kill,failover", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=850,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())

    # a client disabled through one process is refused by the other node within the bound
    # (change notification; the cache's 2 s time-to-live is the fallback)
    assert r["client_disable"]["refused_on_node_b_after_commit_ms"] <= 2000

    # kill -9 of a node: only requests in flight on it fail; no session or refresh chain is lost
    nk = r["node_kill"]
    # A POST the client sent a few milliseconds after `kill -9` can still reach the dying node (its
    # processes take a moment to go on a loaded machine) and is then not retried by nginx — by
    # design, never `non_idempotent` (README "Operating several nodes"): the client retries it.
    # So a request or two right at the kill may fail; what must hold is that the node is routed
    # around at once (nearly all requests after the kill succeed) and nothing is lost.
    assert nk["failed_started_after_kill"] <= 2, nk
    assert nk["failed"] <= 2 + nk["failed_in_flight_at_kill"], nk
    assert nk["sessions_lost"] == 0 and nk["refresh_chains_lost"] == 0

    # kill -9 of a worker mid-batch: every HR event applied exactly once
    wk = r["worker_kill"]
    assert wk["applied"] == wk["events"] == wk["accounts"] == wk["new_directory_accounts"]
    assert wk["employee_numbers_with_two_accounts"] == 0 and wk["provisioning_jobs_left"] == 0

    # primary stopped, replica promoted: service comes back without restarting a node
    fo = r["failover"]
    assert fo["all_three_kinds_back_after_promotion_seconds"] is not None
    assert all(s.startswith("ok/") for s in fo["readyz_after"])
    assert r["load"]["refresh_chains_lost"] == 0
