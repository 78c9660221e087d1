"""``iam detect`` commands, and the alert webhook delivered as a durable job (retried while the
receiver fails)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import detect.jobs  # noqa: F401 — registers the webhook handler, as the worker does
from detect.service import alerts
from iam import jobs
from iam.cli import cli
from iam.models.jobs import Job
from iam.services import Services
from tests.detect.helpers import RULES, ruleset, seal, write


class _Receiver(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:  # noqa: N802 — the http.server name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        status = 503 if len(self.server.received) == 1 else 204  # the first delivery fails
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_webhook_is_retried_until_delivered(
    services: Services, receiver: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    text = RULES.replace("[working_hours]", f'[webhook]\nurl = "{url}"\n\n[working_hours]')
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    detect = services.settings.detect.model_copy(update={"rules_file": path})
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"detect": detect}))
    write(
        services,
        "token.refused",
        outcome="failure",
        client_id="app-1",
        details={"reason": "network_not_allowed"},
    )
    seal(services)
    alerts.run(services, ruleset=ruleset(text))
    jobs.run_due(services)
    with services.reader() as s:
        job = s.scalars(select(Job).where(Job.kind == "detect.webhook")).one()
        assert job.status == "pending" and "503" in (job.last_error or "")
    with services.transaction() as s:
        s.get(Job, job.id).run_at = job.created_at  # type: ignore[union-attr]  # due again now
    jobs.run_due(services)
    with services.reader() as s:
        assert s.get(Job, job.id).status == "done"  # type: ignore[union-attr]
    assert len(receiver.received) == 2
    sent = receiver.received[-1]
    assert sent["type"] == "iam.alert" and sent["alert"]["rule"] == "token_outside_networks"
    assert sent["alert"]["key"] == "app-1"


def test_cli(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from iam import clitools

    monkeypatch.setattr(clitools.Ctx, "settings", property(lambda self: services.settings))
    monkeypatch.setattr(clitools.Ctx, "services", property(lambda self: services))
    from detect import register

    register(cli)
    runner = CliRunner()
    out = runner.invoke(cli, ["detect", "check-rules", "--json"])
    assert out.exit_code == 0, out.output
    assert "password_spraying" in {r["id"] for r in json.loads(out.output)["rules"]}
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nid = 'x'\ntitle = 't'\nevents = ['a']\nthreshold = 0\n")
    out = runner.invoke(cli, ["detect", "check-rules", str(bad)])
    assert out.exit_code == 1 and "rule[1].threshold" in out.output
    write(services, "token.issued", client_id="c1", details={"grant_type": "client_credentials"})
    seal(services)
    out = runner.invoke(cli, ["detect", "run", "--no-ad", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["stats_events_read"] >= 1
    out = runner.invoke(cli, ["detect", "stats", "--json"])
    assert json.loads(out.output)["clients"][0]["metrics"] == {"token:client_credentials": 1}
    out = runner.invoke(cli, ["detect", "alerts"])
    assert out.exit_code == 0 and "No alerts." in out.output
