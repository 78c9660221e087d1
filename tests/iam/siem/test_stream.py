"""The audit log streamed to real collectors: rsyslog over TLS (RFC 5425) and HTTPS JSON lines,
at least once and in order, collector outages included (issue 15 part 1), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from iam import audit, clock
from iam.config import SiemDestination, SiemSettings
from iam.models.audit_ops import SiemCursor
from iam.services import Services
from iam.siem import service
from tests.conftest import need
from tests.iam.siem.collectors import CollectorTls, HttpsCollector, Rsyslog, make_ca, rsyslog_available

ID = re.compile(r'\bid="(\d+)"')
SEQ = re.compile(r'\bseq="(\d+)"')


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> CollectorTls:
    return make_ca(tmp_path_factory.mktemp("siem-ca"))


@pytest.fixture
def rsyslog(tmp_path: Path, tls: CollectorTls) -> Iterator[Rsyslog]:
    if not rsyslog_available():
        need("rsyslogd with rsyslog-gnutls is not installed (deploy/test.sh installs it)")
    server = Rsyslog(tmp_path / "rsyslog", tls)
    server.start()
    yield server
    server.stop()


def _configure(
    services: Services, monkeypatch: pytest.MonkeyPatch, tls: CollectorTls, **dest: object
) -> SiemDestination:
    d = SiemDestination.model_validate({"name": "soc", **dest})
    siem = SiemSettings(destinations=[d], ca_file=tls.ca, batch_size=40, backlog_threshold=50, timeout=5)
    monkeypatch.setattr(services.settings, "siem", siem)
    return d


def _events(services: Services, n: int, tag: str) -> None:
    with services.transaction() as session:
        for i in range(n):
            audit.record(session, "login.succeeded", actor=f"{tag}-{i}", subject=f"s-{i}", ip="192.0.2.7")
    with services.transaction() as session:
        while audit.seal(session):
            pass


def _received_ids(server: Rsyslog) -> list[int]:
    return [int(m.group(1)) for line in server.lines() if (m := ID.search(line)) and "iam@" in line]


def test_rsyslog_receives_the_stream_over_tls(
    services: Services, rsyslog: Rsyslog, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = _configure(services, monkeypatch, tls, url=f"syslog+tls://localhost:{rsyslog.port}")
    _events(services, 100, "a")
    result = service.pump(services, dest)
    assert result.error is None, result.error
    rsyslog.stop()  # flushes its file
    lines = [line for line in rsyslog.lines() if "login.succeeded" in line or "anchor" in line]
    ids = _received_ids(rsyslog)
    with services.transaction() as session:
        sealed = [e.id for e in audit.iter_events(session)]
    assert result.delivered == len(sealed) >= 100 and ids == sealed
    assert lines[0].startswith("login.succeeded [iam@32473 id=")
    assert 'actor="a-0"' in lines[0] and 'ip="192.0.2.7"' in lines[0]
    assert lines[-1].startswith(f'anchor [iamAnchor@32473 seq="{len(sealed)}"')  # the chain head went along


def test_collector_down_mid_stream_nothing_lost_order_kept(
    services: Services, rsyslog: Rsyslog, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the first batches: events wait (backlog, readiness), then all arrive."""
    dest = _configure(services, monkeypatch, tls, url=f"syslog+tls://localhost:{rsyslog.port}")
    monkeypatch.setattr(service, "MAX_BATCHES", 2)
    _events(services, 200, "b")
    assert service.pump(services, dest).delivered == 80  # two batches of 40
    with services.transaction() as session:
        total = len(list(audit.iter_events(session)))
    rsyslog.stop()
    result = service.pump(services, dest)
    assert result.delivered == 0 and result.error
    _events(services, 30, "c")
    with services.transaction() as session:
        (st,) = service.status(session, services.settings.siem)
        assert st.backlog == total - 80 + 30 + 1 and st.degraded and st.last_error  # +1: siem.unreachable
        events = [e.event for e in audit.iter_events(session, sealed=False)] + [
            e.event for e in audit.iter_events(session)
        ]
    assert "siem.unreachable" in events
    assert service.pump(services, dest).error == "waiting to retry"  # siem.retry_after
    clock.advance(dt.timedelta(seconds=16))
    rsyslog.start()  # same port, same output file
    monkeypatch.setattr(service, "MAX_BATCHES", 100)
    assert service.pump(services, dest).error is None
    rsyslog.stop()
    ids = _received_ids(rsyslog)
    with services.transaction() as session:
        all_ids = [e.id for e in audit.iter_events(session)]
        cursor = session.get(SiemCursor, "soc")
        assert cursor is not None and cursor.last_error is None
    unique = list(dict.fromkeys(ids))  # what a collector keeps after dropping repeats by id
    assert unique == all_ids[: len(unique)] and set(all_ids) - set(unique) <= set(all_ids[-2:])
    assert ids == sorted(ids)  # in order, no repeats in this run
    seqs = [int(m.group(1)) for line in rsyslog.lines() if "iam@" in line and (m := SEQ.search(line))]
    assert seqs == list(range(1, len(seqs) + 1))


def test_rsyslog_killed_while_a_batch_is_in_flight(
    services: Services, rsyslog: Rsyslog, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector stops while the worker is sending: after it returns, every event is there
    once at least, and the first copy of each arrives in chain order."""
    dest = _configure(services, monkeypatch, tls, url=f"syslog+tls://localhost:{rsyslog.port}")
    monkeypatch.setattr(services.settings.siem, "batch_size", 5)
    monkeypatch.setattr(service, "MAX_BATCHES", 1000)
    _events(services, 400, "d")
    t = threading.Thread(target=service.pump, args=(services, dest))
    t.start()
    while len(rsyslog.lines()) < 20 and t.is_alive():
        t.join(0.01)
    rsyslog.stop()
    t.join()
    rsyslog.start()
    clock.advance(dt.timedelta(seconds=16))  # past siem.retry_after, if the stop failed a batch
    while service.pump(services, dest).delivered:
        pass
    rsyslog.stop()
    ids = _received_ids(rsyslog)
    with services.transaction() as session:
        all_ids = [e.id for e in audit.iter_events(session) if e.event == "login.succeeded"]
    first_copies = list(dict.fromkeys(ids))
    assert [i for i in first_copies if i in set(all_ids)] == all_ids


def test_two_workers_never_send_the_same_batch(
    services: Services, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = HttpsCollector(tls)
    try:
        dest = _configure(services, monkeypatch, tls, url=collector.url, format="json")
        with services.transaction() as session:
            assert service.take_lease(session, "soc", me="worker-a", seconds=60)
        _events(services, 10, "e")
        assert service.pump(services, dest, me="worker-b").delivered == 0  # a holds the lease
        assert collector.batches == []
        with services.transaction() as session:
            service.release_lease(session, "soc", me="worker-a")
        assert service.pump(services, dest, me="worker-b").delivered >= 10  # and keys.created
    finally:
        collector.stop()


def test_https_json_lines_and_cef(
    services: Services, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = HttpsCollector(tls)
    try:
        dest = _configure(
            services,
            monkeypatch,
            tls,
            url=collector.url,
            format="json",
            headers={"Authorization": "Bearer t"},
        )
        _events(services, 3, "f")
        collector.down = True
        assert service.pump(services, dest).error == f"localhost:{collector.server_address[1]} answered 503"
        collector.down = False
        clock.advance(dt.timedelta(seconds=16))
        assert service.pump(services, dest).delivered >= 3
        headers, body = collector.batches[-1]
        assert headers["Content-Type"] == "application/x-ndjson" and headers["Authorization"] == "Bearer t"
        records = [json.loads(x) for x in body.splitlines()]
        assert [r["actor"] for r in records if r.get("event") == "login.succeeded"] == ["f-0", "f-1", "f-2"]
        assert records[-1]["kind"] == "anchor"
        cef = _configure(services, monkeypatch, tls, url=collector.url, format="cef")
        monkeypatch.setattr(cef, "name", "cef")
        service.pump(services, cef)
        first = next(x for x in collector.batches[-1][1].decode().splitlines() if "login.succeeded" in x)
        assert first.startswith("CEF:0|iam|iam|0.1|login.succeeded|login.succeeded|3|rt=")
        assert "suser=f-0" in first and "externalId=" in first
    finally:
        collector.stop()


def test_untrusted_collector_certificate_is_refused(
    services: Services, tmp_path: Path, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_ca(tmp_path / "other")
    collector = HttpsCollector(other)
    try:
        dest = _configure(services, monkeypatch, tls, url=collector.url, format="json")
        _events(services, 1, "g")
        result = service.pump(services, dest)
        assert result.delivered == 0 and result.error and collector.batches == []
    finally:
        collector.stop()


def test_metrics_and_readyz_show_the_backlog(
    services: Services, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iam.app import create_app

    _configure(services, monkeypatch, tls, url="syslog+tls://127.0.0.1:9")  # nobody listens
    _events(services, 60, "h")
    app = create_app(services=services)
    client = app.test_client()
    body = client.get("/metrics").get_data(as_text=True)
    with services.transaction() as session:
        waiting = len(list(audit.iter_events(session)))
    assert waiting >= 60 and f'iam_siem_backlog_events{{destination="soc"}} {waiting}.0' in body
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.json is not None and resp.json["status"] == "degraded"
    assert (
        resp.json["checks"]["siem"] == "degraded"
        and resp.json["checks"]["siem:soc"] == f"{waiting} events waiting"
    )
    monkeypatch.setattr(services.settings.siem, "backlog_threshold", waiting)
    healthy = client.get("/readyz").json
    assert healthy is not None and healthy["status"] == "ok" and healthy["checks"]["siem"] == "ok"


def test_cli_status_and_send(services: Services, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from iam.cli import cli
    from iam.clitools import Ctx

    collector = HttpsCollector(tls)
    try:
        _configure(services, monkeypatch, tls, url=collector.url, format="json")
        _events(services, 60, "i")
        ctx = Ctx()
        ctx._settings, ctx._services = services.settings, services
        runner = CliRunner()
        degraded = runner.invoke(cli, ["audit", "siem", "status", "--json"], obj=ctx)
        assert degraded.exit_code == 1 and json.loads(degraded.output)[0]["degraded"] is True
        sent = runner.invoke(cli, ["audit", "siem", "send", "--json"], obj=ctx)
        assert sent.exit_code == 0 and json.loads(sent.output)[0]["delivered"] >= 60
        ok = runner.invoke(cli, ["audit", "siem", "status"], obj=ctx)
        assert ok.exit_code == 0 and "backlog       0" in ok.output
    finally:
        collector.stop()


def test_mutual_tls_with_a_client_certificate(
    services: Services, tls: CollectorTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = HttpsCollector(tls, require_client_cert=True)
    try:
        dest = _configure(services, monkeypatch, tls, url=collector.url, format="json")
        _events(services, 2, "m")
        refused = service.pump(services, dest)
        assert refused.delivered == 0 and refused.error and collector.batches == []
        monkeypatch.setattr(services.settings.siem, "client_cert", tls.client_cert)
        monkeypatch.setattr(services.settings.siem, "client_key", tls.client_key)
        clock.advance(dt.timedelta(seconds=16))
        assert service.pump(services, dest).delivered >= 2 and collector.batches
    finally:
        collector.stop()
