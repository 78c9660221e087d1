"""Per-agency statistics at size (issue 15 part 6): 1,000,000 audit events → counters, then the
statistics page and ``/api/v1/stats`` read from the counters.

    .venv/bin/python bench/stats_bench.py                  # SQLite in a temporary folder
    .venv/bin/python bench/stats_bench.py --postgres       # a throwaway PostgreSQL database
    .venv/bin/python bench/stats_bench.py --events 100000

Setup (not timed): ``--clients`` (50) applications with agency codes ``AG-0..AG-9`` registered
through ``sso.clients.create_client``; ``--events`` audit rows inserted in bulk, already sealed
(``seq`` set; the sealer's cost is the audit log's, not the statistics'), spread over 90 days:
65 % ``token.issued`` (authorization_code / refresh_token / client_credentials), 15 %
``login.succeeded``, 10 % ``token.refused``, 5 % ``authorize.refused``, 5 % other events the
counters ignore.

Timed: the worker's pass (``detect.service.stats.run``, 20,000 events per transaction) until the
cursor reaches the end — events per second; then, with the counters filled, the statistics page
(``GET /security/statistics`` for 90 days, Flask test client with a security officer's SSO
session: template and SVG chart rendered) and ``GET /api/v1/stats`` (bearer token, scope
``stats``), each 1 cold + 5 warm runs (median of the warm). Target: page and API < 300 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("IAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL on 127.0.0.1:5432 instead of SQLite"
    )
    args = parser.parse_args()

    from sqlalchemy import create_engine, insert, text

    from iam import clock
    from iam.app import create_app
    from iam.config import load_settings
    from iam.migrate import upgrade
    from iam.models.audit import AuditEvent
    from iam.services import Services

    tmp = Path(tempfile.mkdtemp(prefix="iam-stats-bench-"))
    admin = None
    name = ""
    if args.postgres:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"iam_bench_{os.getpid()}_{secrets.token_hex(3)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tmp}/iam.db"
    settings = load_settings(
        dev_mode=True,
        var_dir=tmp,
        issuer="http://localhost",
        database={"url": url},
        secret_key="bench-secret-key-" + "x" * 32,
        encryption_key="Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
        detect={"officers_group": "soc"},
    )
    svc = Services(settings)
    try:
        upgrade(svc.engine)
        import sso
        from detect.service import stats
        from iam.directory.base import NewUser
        from sso import clients as client_service

        sso.on_upgrade(svc)
        client_ids = []
        with svc.transaction() as s:
            for i in range(args.clients):
                spec = client_service.ClientSpec(
                    name=f"App {i}", redirect_uris=["http://localhost/cb"], agency_code=f"AG-{i % 10}"
                )
                row, _ = client_service.create_client(s, svc.cipher, spec, actor="bench", allow_http=True)
                client_ids.append(row.client_id)
        api_client = client_service.ClientSpec(
            name="stats reader", grant_types=["client_credentials"], scopes=["stats"]
        )
        with svc.transaction() as s:
            api_row, api_secret = client_service.create_client(
                s, svc.cipher, api_client, actor="bench", allow_http=True
            )

        end = clock.now().replace(microsecond=0)
        start = end - dt.timedelta(days=90)
        span = (end - start).total_seconds()
        kinds = (
            [("token.issued", "success", {"grant_type": "authorization_code"})] * 40
            + [("token.issued", "success", {"grant_type": "refresh_token"})] * 20
            + [("token.issued", "success", {"grant_type": "client_credentials"})] * 5
            + [("login.succeeded", "success", {"username": "u"})] * 15
            + [("token.refused", "failure", {"error": "invalid_grant"})] * 10
            + [("authorize.refused", "failure", {"reason": "redirect_uri"})] * 5
            + [("client.created", "success", {})] * 5
        )
        t0 = time.perf_counter()
        batch: list[dict[str, Any]] = []
        with svc.engine.begin() as conn:
            base = conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM audit_events")).scalar_one()
            for i in range(args.events):
                event, outcome, details = kinds[i % len(kinds)]
                batch.append(
                    {
                        "seq": base + i + 1,
                        "at": start + dt.timedelta(seconds=span * i / args.events),
                        "event": event,
                        "severity": "normal",
                        "outcome": outcome,
                        "actor": f"s{i % 5000}",
                        "subject": f"s{i % 5000}",
                        "client_id": None
                        if event == "login.succeeded"
                        else client_ids[(i * 7) % len(client_ids)],
                        "ip": "192.0.2.1",
                        "user_agent": None,
                        "details": details,
                        "nonce": "n",
                        "row_hash": f"bench{i:059d}",
                    }
                )
                if len(batch) >= 20000:
                    conn.execute(insert(AuditEvent), batch)
                    batch = []
            if batch:
                conn.execute(insert(AuditEvent), batch)
        print(
            f"setup: {args.events:,} audit events inserted in {time.perf_counter() - t0:.1f} s "
            f"({svc.engine.dialect.name})"
        )

        t0 = time.perf_counter()
        read = 0
        while n := stats.run(svc, limit=20000):
            read += n
        took = time.perf_counter() - t0
        with svc.reader() as s:
            counters = s.execute(text("SELECT COUNT(*) FROM detect_stats")).scalar_one()
        print(
            f"counters: {read:,} events in {took:.1f} s = {read / took:,.0f} events/s "
            f"→ {counters:,} counter rows"
        )

        app = create_app(services=svc)
        app.config.update(TESTING=True)
        svc.directory.create_group("soc")
        user = svc.directory.create_user(NewUser(username="sec", given_name="Sec", enabled=False))
        svc.directory.set_password(user.id, "Bench-Passw0rd-1!", must_change=False)
        svc.directory.enable(user.id)
        svc.directory.add_member("soc", user.id)
        http = app.test_client()
        from tests.sso.helpers import csrf_from

        page = http.get("/login")
        http.post(
            "/login",
            data={
                "username": "sec",
                "password": "Bench-Passw0rd-1!",
                "csrf_token": csrf_from(page.get_data(as_text=True)),
            },
        )
        api = app.test_client()
        import base64

        auth = base64.b64encode(f"{api_row.client_id}:{api_secret}".encode()).decode()
        tok = api.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "stats", "resource": settings.api_resource},
            headers={"Authorization": f"Basic {auth}"},
        ).get_json()["access_token"]
        q = f"from={start.date()}&to={end.date()}"

        def timed(fn: Any) -> tuple[float, float]:
            runs = []
            for _ in range(6):
                t = time.perf_counter()
                resp = fn()
                runs.append((time.perf_counter() - t) * 1000)
                assert resp.status_code == 200, resp.status_code
            return runs[0], statistics.median(runs[1:])

        class _Ok:
            status_code = 200

        def report_only() -> _Ok:
            with svc.reader() as s:
                stats.report(s, start=start.date(), end=end.date())
            return _Ok()

        cold, warm = timed(report_only)
        print(
            f"stats.report (the two counter queries, 90 days): cold {cold:.0f} ms, warm median {warm:.0f} ms"
        )
        cold, warm = timed(lambda: http.get(f"/security/statistics?{q}"))
        print(
            f"statistics page (90 days, {args.clients} clients): cold {cold:.0f} ms, "
            f"warm median {warm:.0f} ms"
        )
        cold, warm = timed(lambda: api.get(f"/api/v1/stats?{q}", headers={"Authorization": f"Bearer {tok}"}))
        size = len(api.get(f"/api/v1/stats?{q}", headers={"Authorization": f"Bearer {tok}"}).get_data())
        print(f"/api/v1/stats (90 days): cold {cold:.0f} ms, warm median {warm:.0f} ms, {size:,} bytes")
        print(json.dumps({"events": read, "events_per_s": round(read / took), "db": svc.engine.dialect.name}))
    finally:
        svc.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
