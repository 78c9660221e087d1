"""Audit search of the administration console on 1,000,000 audit rows in PostgreSQL.

Loads ROWS synthetic audit events (a year of sign-ins, tokens, logouts, refusals for 5,000
people and 20 applications) into a throwaway PostgreSQL database, ANALYZEs it, then measures
the first page (``admin.page_size`` rows) of the console's audit search for typical filters:
the service call (``iam.admin.service.audit_search.search``) and the whole page over HTTP
(``GET /admin/audit?…`` through the Flask app, signed in as a security officer, page rendered),
cold (first run) and warm (median of REPEAT). Target: first page < 300 ms. Also the next page
(keyset) deep into the result and the first 10,000 rows of the CSV export.

    .venv/bin/python bench/admin_audit_bench.py                   # 1,000,000 rows
    .venv/bin/python bench/admin_audit_bench.py --rows 200000 --repeat 5

PostgreSQL: ``IAM_TEST_PG_URL`` (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres);
a database ``iam_bench_<pid>_<hex>`` is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("IAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PEOPLE = 5000
EVENTS = [
    ("token.issued", 60),
    ("login.succeeded", 18),
    ("logout", 10),
    ("login.failed", 5),
    ("consent.granted", 3),
    ("mfa.verified", 3),
    ("login.locked_out", 1),
]


def throwaway_db() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"iam_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load(services: Any, rows: int) -> float:
    """People (identities) and ROWS events with SQL (row hashes are unique stand-ins: the
    search never reads them)."""
    from sqlalchemy import text

    bag = [name for name, weight in EVENTS for _ in range(weight)]
    events = "ARRAY[" + ",".join(f"'{e}'" for e in bag) + "]"
    started = time.perf_counter()
    with services.engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO identities
                    (sub, directory, username, display_name, email, disabled, created_at, updated_at)
                SELECT md5('sub' || i), 'ad', 'user' || i, 'Person ' || i || ' Prezime' || (i % 97),
                       'user' || i || '@example.test', false, now(), now()
                FROM generate_series(1, :people) AS i
                """
            ),
            {"people": PEOPLE},
        )
        conn.execute(
            text(
                f"""
                INSERT INTO audit_events (at, event, severity, outcome, actor, subject, client_id, ip,
                                          user_agent, details, nonce, row_hash)
                SELECT now() - (g * interval '31.5 seconds'),
                       ev,
                       CASE WHEN ev = 'login.locked_out' THEN 'critical'
                            WHEN ev = 'login.failed' THEN 'significant' ELSE 'normal' END,
                       CASE WHEN ev IN ('login.failed', 'login.locked_out') THEN 'failure' ELSE 'success' END,
                       CASE WHEN ev = 'login.failed' THEN 'user' || p ELSE md5('sub' || p) END,
                       md5('sub' || p),
                       CASE WHEN ev IN ('token.issued', 'consent.granted') THEN 'app-' || (g % 20) END,
                       '10.' || (p % 200) || '.' || (p % 251) || '.' || (g % 7),
                       'Mozilla/5.0 bench',
                       '{{}}'::json,
                       md5('n' || g),
                       md5('h' || g) || md5('i' || g)
                FROM (
                    SELECT g, 1 + (g * 7919) % {PEOPLE} AS p,
                           ({events})[1 + (g * 104729) % {len(bag)}] AS ev
                    FROM generate_series(1::bigint, :rows) AS g
                ) AS s
                """
            ),
            {"rows": rows},
        )
    with services.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE identities"))
        conn.execute(text("ANALYZE audit_events"))
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(cold ms, warm median ms, last result)."""
    t0 = time.perf_counter()
    result = fn()
    cold = (time.perf_counter() - t0) * 1000
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        warm.append((time.perf_counter() - t0) * 1000)
    return cold, statistics.median(warm), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="cProfile one warm HTTP page (to stdout)")
    args = ap.parse_args()

    from sqlalchemy import select

    from iam.admin import Role
    from iam.admin.service import audit_search as svc
    from iam.app import create_app
    from iam.config import load_settings
    from iam.migrate import upgrade
    from iam.models.audit import AuditEvent
    from iam.services import Services
    from tests.iam.admin.helpers import person, sign_in

    for url in throwaway_db():
        tmp = Path(tempfile.mkdtemp(prefix="iam-audit-bench-"))
        settings = load_settings(
            dev_mode=True,
            var_dir=tmp,
            issuer="http://localhost",
            database={"url": url},
            secret_key="bench-secret-key-" + "x" * 32,
            encryption_key="Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
        )
        services = Services(settings)
        upgrade(services.engine)
        import sso

        sso.on_upgrade(services)
        seconds = load(services, args.rows)
        with services.reader() as s:
            total = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        print(f"loaded {args.rows:,} audit rows and {PEOPLE:,} people in {seconds:.1f} s (last id {total})")
        size = settings.admin.page_size
        app = create_app(services=services)
        app.config.update(TESTING=True)
        client = app.test_client()
        sign_in(client, services, person(services, Role.SECURITY_OFFICER))
        day = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 180 * 86400))
        day_end = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 179 * 86400))
        import datetime as dt

        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=180)
        cases: list[tuple[str, svc.Filters, dict[str, str]]] = [
            ("no filter (newest)", svc.Filters(), {}),
            ("event = login.failed", svc.Filters(event="login.failed"), {"event": "login.failed"}),
            ("event prefix login.", svc.Filters(event="login."), {"event": "login."}),
            ("person by name", svc.Filters(person="Person 4242 "), {"person": "Person 4242 "}),
            (
                "person + login.failed",
                svc.Filters(person="user4242@", event="login.failed"),
                {"person": "user4242@", "event": "login.failed"},
            ),
            ("application app-7", svc.Filters(client_id="app-7"), {"client_id": "app-7"}),
            ("outcome failure", svc.Filters(outcome="failure"), {"outcome": "failure"}),
            ("severity critical", svc.Filters(severity="critical"), {"severity": "critical"}),
            ("address 10.42.42.3", svc.Filters(ip="10.42.42.3"), {"ip": "10.42.42.3"}),
            (
                "one day, 6 months ago",
                svc.Filters(since=since, until=since + dt.timedelta(days=1)),
                {"since": day, "until": day_end},
            ),
            (
                "critical in one day, 6 months ago",
                svc.Filters(since=since, until=since + dt.timedelta(days=1), severity="critical"),
                {"since": day, "until": day_end, "severity": "critical"},
            ),
        ]
        if args.profile:
            import cProfile
            import pstats

            client.get("/admin/audit", query_string={"event": "login.failed"})
            prof = cProfile.Profile()
            prof.enable()
            client.get("/admin/audit", query_string={"event": "login.failed"})
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        print(f"\nfirst page ({size} rows), ms — target < 300")
        heads = ("service cold", "service warm", "HTTP cold", "HTTP warm")
        print(f"{'filter':36} {'rows':>5} " + " ".join(f"{h:>13}" for h in heads))
        worst = 0.0
        for label, f, query in cases:
            with services.reader() as s:
                cold, warm, page = timed(
                    lambda s=s, f=f, sv=services, n=size: svc.search(sv, s, f, size=n), args.repeat
                )
            h_cold, h_warm, resp = timed(
                lambda q=query, cl=client: cl.get("/admin/audit", query_string=q), args.repeat
            )
            assert resp.status_code == 200, (label, resp.status_code)
            worst = max(worst, h_warm)
            print(
                f"{label:36} {len(page.rows):>5} {cold:>13.1f} {warm:>13.1f} {h_cold:>10.1f} {h_warm:>10.1f}"
            )
        # deep keyset paging: the 200th page of "no filter" costs the same as the first
        with services.reader() as s:
            cursor = None
            for _ in range(200):
                cursor = svc.search(services, s, svc.Filters(), size=size, cursor=cursor).next
            c, w, _p = timed(
                lambda s=s, c=cursor, sv=services, n=size: svc.search(sv, s, svc.Filters(), size=n, cursor=c),
                args.repeat,
            )
        print(f"{'page 201 (keyset), no filter':36} {size:>5} {c:>13.1f} {w:>13.1f}")
        with services.reader() as s:
            t0 = time.perf_counter()
            n = 0
            for _row in svc.export(services, s, svc.Filters(event="login.failed")):
                n += 1
                if n > 10_000:
                    break
            export_ms = (time.perf_counter() - t0) * 1000
        rate = 10_000 / export_ms * 1000
        print(f"CSV export, first 10,000 rows of login.failed: {export_ms:.0f} ms ({rate:,.0f} rows/s)")
        print(f"\nworst warm first page over HTTP: {worst:.1f} ms (target < 300 ms)")
        app.extensions.clear()
        services.dispose()


if __name__ == "__main__":
    main()
