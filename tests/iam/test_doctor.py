"""``iam doctor`` (issue 17 part 4): one line per check with a fix; a real problem fails it."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from iam import clock, doctor, jobs
from iam.cli import cli
from iam.clitools import Ctx
from iam.directory.ad import ActiveDirectory


def _by_name(findings: list[doctor.Finding]) -> dict[str, doctor.Finding]:
    return {f.name: f for f in findings}


def test_database_migrations_and_worker(services):
    found = _by_name(doctor.run(services))
    assert found["database"].status == "ok"
    assert found["migrations"].status == "ok"
    assert found["worker"].status == "ok"
    with services.transaction() as s:
        jobs.enqueue(s, "iam.notify_critical", {"event_id": 0})
    clock.advance(dt.timedelta(minutes=10))
    stale = _by_name(doctor.run(services))["worker"]
    assert stale.status == "fail" and "iam worker" in stale.fix


def test_cli_prints_one_line_per_check_and_fails_on_a_failure(sqlite_services, tmp_path):
    ctx = Ctx()
    ctx._settings, ctx._services = sqlite_services.settings, sqlite_services
    out = CliRunner().invoke(cli, ["doctor", "--json"], obj=ctx)
    data = json.loads(out.output)
    assert {"database", "migrations", "secret_key", "backup"} <= {d["name"] for d in data}
    assert out.exit_code == (1 if any(d["status"] == "fail" for d in data) else 0)
    text = CliRunner().invoke(cli, ["doctor"], obj=ctx).output
    assert len(text.strip().splitlines()) == len(data)
    assert "WARN  last backup: never — fix: schedule `iam backup create` daily" in text


def test_ad_clock_tls_and_rights_on_samba(ad_directory: ActiveDirectory):
    facts = ad_directory.server_facts()
    assert facts["tls"] is True
    assert facts["current_time"][:8].isdigit()
    assert "user" in [c.lower() for c in facts["may_create"]]
