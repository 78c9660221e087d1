"""Two real ``iam worker`` processes stream one database to a real rsyslog: each event arrives
exactly once (the lease on the cursor row: never the same batch twice at once), in chain order,
also while events keep being written — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iam import audit
from iam.services import Services
from tests.conftest import need
from tests.iam.siem.collectors import CollectorTls, Rsyslog, make_ca, rsyslog_available
from tests.iam.siem.test_stream import _received_ids


def _iam() -> list[str]:
    exe = Path(sys.executable).with_name("iam")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from iam.cli import main; main()"]


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if not rsyslog_available():
        need("rsyslogd with rsyslog-gnutls is not installed (deploy/test.sh installs it)")
    server = Rsyslog(tmp_path / "rsyslog", make_ca(tmp_path / "ca"))
    server.start()
    yield server
    server.stop()


def _workers(
    services: Services, tmp_path: Path, tls: CollectorTls, port: int, n: int
) -> list[subprocess.Popen[bytes]]:
    s = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
    env.update(
        {
            "IAM_DEV_MODE": "true",
            "IAM_VAR_DIR": str(tmp_path / "worker-var"),
            "IAM_DATABASE__URL": services.engine.url.render_as_string(hide_password=False),
            "IAM_SECRET_KEY": s.secret_key.get_secret_value(),
            "IAM_ENCRYPTION_KEY": s.encryption_key.get_secret_value(),
            "IAM_ISSUER": s.issuer,
            "IAM_WORKER__POLL_INTERVAL": "0.05",
            "IAM_SIEM__INTERVAL": "0.05",
            "IAM_SIEM__BATCH_SIZE": "7",
            "IAM_SIEM__CA_FILE": str(tls.ca),
            "IAM_SIEM__DESTINATIONS": json.dumps([{"name": "soc", "url": f"syslog+tls://localhost:{port}"}]),
            "IAM_AUDIT_ARCHIVE__INTERVAL": "86400",
        }
    )
    return [
        subprocess.Popen(  # noqa: S603 — our own console script
            [*_iam(), "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"worker{i}.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        for i in range(n)
    ]


def test_two_workers_stream_each_event_once_in_order(
    services: Services, rsyslog: Rsyslog, tmp_path: Path
) -> None:
    procs = _workers(services, tmp_path, rsyslog.tls, rsyslog.port, 2)
    try:
        for round_ in range(6):
            with services.transaction() as session:
                for i in range(40):
                    audit.record(session, "login.succeeded", actor=f"w{round_}-{i}")
            time.sleep(0.1)  # let the workers interleave with the writes (not a timed assertion)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with services.transaction() as session:
                sealed = [e.id for e in audit.iter_events(session)]
                unsealed = list(audit.iter_events(session, sealed=False))
            received = _received_ids(rsyslog)
            if not unsealed and len(received) >= len(sealed) >= 240:
                break
            for p in procs:
                assert p.poll() is None, (tmp_path / "worker0.log").read_text()[-3000:]
            time.sleep(0.2)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    rsyslog.stop()
    received = _received_ids(rsyslog)
    with services.transaction() as session:
        sealed = [e.id for e in audit.iter_events(session)]
    assert received == sealed  # every event once, in chain order
