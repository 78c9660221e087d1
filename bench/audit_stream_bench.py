"""Throughput of the audit log's SIEM stream and of the weekly archive.

Writes N audit events (default 20,000) into a fresh SQLite (or ``--db`` PostgreSQL) database,
seals them, then measures:

- streaming them to a real rsyslog over TLS (RFC 5425, the test CA of tests/iam/siem) in
  batches of ``--batch`` events: events/s from the first send to the cursor at the end;
- writing the week's signed archive and verifying it on its own (``verify_file``): seconds,
  file size.

    .venv/bin/python bench/audit_stream_bench.py [--events 20000] [--batch 500] [--db URL]

Needs rsyslogd + rsyslog-gnutls (deploy/test.sh installs them). Results are in bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iam import audit, audit_archive, clock  # noqa: E402
from iam.config import SiemDestination, SiemSettings, load_settings  # noqa: E402
from iam.migrate import upgrade  # noqa: E402
from iam.services import Services  # noqa: E402
from iam.siem import service  # noqa: E402
from tests.iam.siem.collectors import Rsyslog, make_ca  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--db", default="")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iam-audit-bench-"))
    settings = load_settings(
        dev_mode=True,
        var_dir=tmp,
        database={"url": args.db or f"sqlite:///{tmp}/iam.db"},
        secret_key="bench-secret-" + "x" * 32,
        encryption_key="Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
    )
    services = Services(settings)
    upgrade(services.engine)
    monday = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)
    clock.freeze(monday)
    t0 = time.perf_counter()
    with services.transaction() as session:
        audit.record_many(
            session,
            "login.succeeded",
            (
                {
                    "actor": f"user{i % 997}",
                    "client_id": "portal",
                    "ip": "192.0.2.1",
                    "details": {"acr": "mfa"},
                }
                for i in range(args.events)
            ),
        )
    with services.transaction() as session:
        while audit.seal(session):
            pass
    print(f"wrote and sealed {args.events} events in {time.perf_counter() - t0:.1f} s")

    tls = make_ca(tmp / "ca")
    rsyslog = Rsyslog(tmp / "rsyslog", tls)
    rsyslog.start()
    try:
        dest = SiemDestination(name="bench", url=f"syslog+tls://localhost:{rsyslog.port}")
        services.settings.siem = SiemSettings(destinations=[dest], ca_file=tls.ca, batch_size=args.batch)
        service.MAX_BATCHES = 10**9
        t0 = time.perf_counter()
        result = service.pump(services, dest)
        took = time.perf_counter() - t0
    finally:
        rsyslog.stop()
    received = sum(1 for line in rsyslog.lines() if "iam@" in line)
    print(
        f"SIEM stream (rsyslog, TLS, batch {args.batch}): {result.delivered} events in {took:.2f} s = "
        f"{result.delivered / took:,.0f} events/s; rsyslog wrote {received}"
    )

    clock.freeze(monday + dt.timedelta(days=7, hours=7))
    t0 = time.perf_counter()
    with services.transaction() as session:
        row = audit_archive.write_week(services, session, "2026-W45")
    took = time.perf_counter() - t0
    path = audit_archive.folder(services) / str(row.file_name)
    t0 = time.perf_counter()
    check = audit_archive.verify_file(path)
    verify = time.perf_counter() - t0
    print(
        f"weekly archive: {row.events} events written in {took:.2f} s, {path.stat().st_size / 1e6:.2f} MB; "
        f"verified on its own in {verify:.2f} s ({'ok' if check.ok else check.problem})"
    )
    services.dispose()


if __name__ == "__main__":
    main()
