"""HR provisioning benchmark against the real Samba AD DC.

1. Joiners per second: a 2,000-person CSV (names with diacritics, so the naming rule
   transliterates and resolves collisions) is imported (`iam hr import` path: validate, store
   durably) and applied by the worker into AD (account in the department OU, initial password
   with must-change, two birthright groups, enabled).
2. Leaver latency: N people, each with a live SSO session and a refresh token, leave through
   POST /api/v1/hr/events (hr access token from our token endpoint); the latency recorded on each
   event (acceptance → disabled in AD and every session and refresh token ended) is reported as
   p50/p99 (target: p99 < 2 s), with the client-side round trip next to it.

    .venv/bin/python bench/hr_bench.py                      # 2,000 joiners, 200 leavers, SQLite
    .venv/bin/python bench/hr_bench.py --people 500 --leavers 50 --db postgresql+psycopg://postgres@127.0.0.1

The DC is started (or the running one reused) by deploy/samba-up.sh, like the tests; the
benchmark works in its own OU, deleted at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIVEN = [
    "Đorđe",
    "Łukasz",
    "Ștefan",
    "Ana",
    "Nguyễn",
    "Milica",
    "Jan",
    "Zofia",
    "Ivana",
    "Marko",
    "Čedomir",
    "Petra",
]
FAMILY = [
    "Anđelković",
    "Wałęsa",
    "Popescu",
    "Kovač",
    "Thị Minh",
    "Đurić",
    "Kowalski",
    "Wójcik",
    "Marić",
    "Horvat",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def count_ldap_operations() -> dict[str, int]:
    """Count every LDAP request this process sends, by kind (bindRequest, addRequest, …)."""
    from collections import Counter

    from ldap3.strategy.base import BaseStrategy

    counts: Counter[str] = Counter()
    send = BaseStrategy.send

    def counting(self, message_type, request, controls=None):  # type: ignore[no-untyped-def]
        # the worker threads' requests only: leavers sent by the main thread meanwhile are not
        # joiners' work
        if threading.current_thread() is not threading.main_thread():
            counts[str(message_type).removesuffix("Request")] += 1
        return send(self, message_type, request, controls)

    BaseStrategy.send = counting  # type: ignore[method-assign]
    return counts


def cleanup(dc, ou: str) -> None:  # type: ignore[no-untyped-def]
    """Delete the benchmark's OU; a tree of thousands of users outlasts the client's receive
    timeout, while the DC goes on deleting: wait until it is gone."""
    from ldap3 import BASE
    from ldap3.core.exceptions import LDAPException

    try:
        dc.delete_tree(ou)
    except LDAPException:
        pass
    for _ in range(60):

        def exists(conn) -> bool:  # type: ignore[no-untyped-def]
            conn.search(ou, "(objectClass=*)", BASE, attributes=[])
            return bool(conn.response)

        try:
            if not dc.admin(exists):
                return
            dc.delete_tree(ou)
        except LDAPException:
            pass
        time.sleep(5)
    print(f"could not delete {ou}; delete it by hand", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=2000)
    ap.add_argument("--leavers", type=int, default=200)
    ap.add_argument("--workers", type=int, default=4, help="worker threads applying events")
    ap.add_argument(
        "--leavers-during",
        type=int,
        default=50,
        help="people (joined before the batch) who leave through the API while the batch runs",
    )
    ap.add_argument("--leaver-gap", type=float, default=1.0, help="seconds between those leavers")
    ap.add_argument("--db", default="sqlite", help="sqlite, or a postgresql+psycopg://user@host server")
    ap.add_argument(
        "--names",
        choices=["clashing", "distinct"],
        default="clashing",
        help="clashing: 120 full names for everyone (most CNs and user names are taken, so adds are "
        "repeated and more candidates searched); distinct: up to 1,200 different full names "
        "(a second family name), closer to a real staff list",
    )
    ap.add_argument(
        "--limit",
        type=float,
        default=None,
        help="the DC's joiner-equivalents/s from bench/ldap_limit.py, to print ours as a share of it",
    )
    args = ap.parse_args()

    import pytest  # tests/samba.py's helpers skip through pytest when the DC is missing
    from ldap3 import Connection
    from sqlalchemy import create_engine, text

    from iam.config import load_settings
    from iam.directory.ad import ActiveDirectory
    from iam.migrate import upgrade
    from iam.services import Services
    from tests.samba import _start

    try:
        dc = _start()
    except pytest.skip.Exception as exc:
        print(f"Samba AD DC not available: {exc}", file=sys.stderr)
        return 1
    ou = f"OU=bench-{secrets.token_hex(3)},DC=example,DC=test"

    def add_ou(conn: Connection) -> None:
        for dn in (ou, f"OU=Finance,{ou}", f"OU=IT,{ou}"):
            assert conn.add(dn, ["top", "organizationalUnit"]), conn.result

    dc.admin(add_ou)
    tmp = Path(tempfile.mkdtemp(prefix="hr-bench-"))
    pg_admin = None
    if args.db == "sqlite":
        db_url = f"sqlite:///{tmp}/iam.db"
    else:
        name = f"iam_hrbench_{secrets.token_hex(3)}"
        base = args.db.rstrip("/").rsplit("/", 1)[0] if args.db.count("/") > 2 else args.db.rstrip("/")
        pg_admin = create_engine(base + "/postgres", isolation_level="AUTOCOMMIT")
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        db_url = f"{base}/{name}"
    # one pooled service connection per worker thread: none is opened (TLS + bind) per operation
    directory = dc.settings.model_copy(
        update={"users_ou": ou, "groups_ou": ou, "pool_size": max(args.workers, 2)}
    )
    settings = load_settings(
        dev_mode=True,
        var_dir=tmp,
        issuer="http://localhost",
        database={"url": db_url},
        directory={**directory.model_dump(), "bind_password": directory.bind_password.get_secret_value()},
        provisioning={"base_ou": ou, "retention_days": 0},
    )
    services = Services(settings)
    try:
        upgrade(services.engine)
        import sso

        sso.on_upgrade(services)
        return run(services, args, ou, tmp)
    finally:
        services.dispose()
        if isinstance(services.__dict__.get("directory"), ActiveDirectory):
            services.directory.close()  # type: ignore[attr-defined]
        cleanup(dc, ou)
        if pg_admin is not None:
            with pg_admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def run(services, args, ou: str, tmp: Path) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from iam import clock, core_jobs  # noqa: F401 — job handlers
    from iam.app import load_feature_jobs
    from iam.jobs import run_due
    from provisioning.models import EventStatus, HrEvent
    from provisioning.service import batch
    from provisioning.service import events as event_service

    load_feature_jobs()
    today = clock.now().date().isoformat()

    snapshot = ["employee_number,given_name,family_name,department,title,engagement,start_date,personal_data"]

    def import_people(prefix: str, count: int) -> tuple[int, float]:
        """The HR snapshot with ``count`` more people (those already there are unchanged)."""
        rows = snapshot
        for i in range(count):
            dept = "Finance" if i % 3 else "IT"
            family = FAMILY[(i // len(GIVEN)) % len(FAMILY)]
            if args.names == "distinct":
                second = FAMILY[(i // (len(GIVEN) * len(FAMILY))) % len(FAMILY)]
                family = f"{family}-{second}" if second != family else family
            given = GIVEN[i % len(GIVEN)]
            rows.append(f"{prefix}{i:05d},{given},{family},{dept},Clerk,staff,{today},limited")
        csv_text = "\n".join(rows) + "\n"
        (tmp / f"people-{prefix}.csv").write_text(csv_text)
        t0 = time.perf_counter()
        with services.reader() as session:
            items = batch.parse(csv_text, "csv", session, snapshot=True)
        for start in range(0, len(items), 200):
            with services.transaction() as session:
                for item in items[start : start + 200]:
                    event_service.accept(
                        session,
                        item.event,
                        source="batch",
                        actor="bench",
                        settings=services.settings.provisioning,
                    )
        return len(items), time.perf_counter() - t0

    def drain() -> None:
        import threading as _t

        def loop() -> None:
            while run_due(services, limit=5):
                pass

        ths = [_t.Thread(target=loop) for _ in range(args.workers)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    # people who will leave while the batch runs: joined (and signed in) before it
    during = [f"L{i:05d}" for i in range(args.leavers_during)]
    if during:
        import_people("L", len(during))
        drain()
    app, client, token, rp_id = _hr_api(services)
    _sign_in(services, during, rp_id)

    count, stored = import_people("B", args.people)
    items = range(count)
    print(
        f"import: {len(items)} events validated and stored in {stored:.1f} s "
        f"({len(items) / stored:.0f} events/s)"
    )

    finished: list[float] = []

    def work() -> None:
        while run_due(services, limit=5):
            pass
        finished.append(time.perf_counter())

    ldap_ops = count_ldap_operations()
    services.directory.close()  # ldap3 binds send when a connection opens: count on new ones
    cpu1 = time.process_time()
    t1 = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(args.workers)]
    for th in threads:
        th.start()
    # leavers through the API while the batch runs, one every --leaver-gap seconds, each
    # applied in its request as in production (their CPU is not counted as joiners')
    during_ids: list[str] = []
    during_rtt: list[float] = []
    next_report = time.perf_counter() + 30
    gap = args.leaver_gap
    leaver_cpu = 0.0
    pending_leavers = list(during)
    while any(th.is_alive() for th in threads):
        if pending_leavers:
            emp = pending_leavers.pop(0)
            t, c = time.perf_counter(), time.thread_time()
            resp = client.post(
                "/api/v1/hr/events",
                json={
                    "idempotency_key": f"leave-{emp}",
                    "kind": "leaver",
                    "person": {"employee_number": emp},
                },
                headers={"Authorization": f"Bearer {token}"},
            )
            during_rtt.append((time.perf_counter() - t) * 1000)
            leaver_cpu += time.thread_time() - c
            assert resp.status_code == 202, resp.json
            during_ids.append(resp.json["id"])
        alive = [th for th in threads if th.is_alive()]
        if alive:  # (they may all have ended since the loop's test)
            alive[0].join(gap)
        if time.perf_counter() >= next_report:
            next_report += 30
            with services.reader() as session:
                done = len(
                    list(session.scalars(select(HrEvent.id).where(HrEvent.status == EventStatus.APPLIED)))
                )
            print(f"  … {done} applied after {time.perf_counter() - t1:.0f} s", flush=True)
    applied_s = max(finished) - t1
    cpu_s = time.process_time() - cpu1 - leaver_cpu
    counted = dict(ldap_ops)
    ldap_ops.clear()
    with services.reader() as session:
        statuses = [
            r.status for r in session.scalars(select(HrEvent).where(HrEvent.employee_number.startswith("B")))
        ]
        from iam.models.jobs import Job, JobStatus

        unfinished = [
            j.kind
            for j in session.scalars(select(Job).where(Job.status != JobStatus.DONE))
            if j.kind != "provisioning.start"
        ]
        during_lat = [
            float(r.latency_ms)
            for r in (session.get(HrEvent, i) for i in during_ids)
            if r is not None and r.status == EventStatus.APPLIED and r.latency_ms is not None
        ]
        during_not_applied = [
            f"{r.employee_number}: {r.status}, {r.attempts} attempt(s), {r.error or 'no error'}"
            for r in (session.get(HrEvent, i) for i in during_ids)
            if r is not None and r.status != EventStatus.APPLIED
        ]
    ok = statuses.count(EventStatus.APPLIED)
    print(
        f"joiners into AD: {ok}/{len(statuses)} applied in {applied_s:.1f} s "
        f"= {ok / applied_s:.2f} joiners/s ({args.workers} worker threads; "
        "account, password, 2 groups, enable each)"
    )
    per = max(ok, 1)
    kinds = ", ".join(f"{k} {v / per:.1f}" for k, v in sorted(counted.items()))
    print(
        f"  per joiner: {sum(counted.values()) / per:.1f} LDAP round trips ({kinds}); "
        f"{cpu_s * 1000 / per:.1f} ms CPU of this process (worker, database, argon2id); "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if during:
        print(
            f"leavers WHILE the batch ran: {len(during_lat)}/{len(during_ids)} applied "
            f"(of {len(during)} ready; one posted about every {gap:.1f} s while workers ran): "
            + (
                f"p50 {statistics.median(during_lat):.0f} ms, p99 {pct(during_lat, 0.99):.0f} ms, "
                f"max {max(during_lat):.0f} ms (HTTP p99 {pct(during_rtt, 0.99):.0f} ms)"
                if during_lat
                else "none"
            )
        )
        for line in during_not_applied:
            print(f"  not applied when the batch ended: {line}")
    if unfinished:
        print(f"jobs not done at the end: {sorted(set(unfinished))} ×{len(unfinished)}", file=sys.stderr)
    if args.limit:
        print(f"ours = {100 * ok / applied_s / args.limit:.0f} % of what the DC accepts ({args.limit:.1f}/s)")
    if ok != len(statuses):
        print(f"NOT ALL APPLIED: {set(statuses)}", file=sys.stderr)

    # -- leavers --------------------------------------------------------------------------
    leavers = [f"B{i:05d}" for i in range(min(args.leavers, args.people))]
    _sign_in(services, leavers, rp_id)
    round_trips = []
    # (those meant to leave during the batch that it outlasted leave now, not counted here)
    for emp in leavers + pending_leavers:
        t = time.perf_counter()
        resp = client.post(
            "/api/v1/hr/events",
            json={"idempotency_key": f"leave-{emp}", "kind": "leaver", "person": {"employee_number": emp}},
            headers={"Authorization": f"Bearer {token}"},
        )
        if emp.startswith("B"):
            round_trips.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 202, resp.json
    with services.reader() as session:
        latencies = [
            float(r.latency_ms)
            for r in session.scalars(
                select(HrEvent).where(HrEvent.kind == "leaver", HrEvent.employee_number.startswith("B"))
            )
            if r.status == EventStatus.APPLIED and r.latency_ms is not None
        ]
        from sso.models import RefreshToken, SsoSession

        live_sessions = len(list(session.scalars(select(SsoSession.id).where(SsoSession.ended_at.is_(None)))))
        live_tokens = [r for r in session.scalars(select(RefreshToken)) if r.revoked_at is None]
    print(
        f"leaver latency after the batch (acceptance → disabled in AD + sessions and refresh tokens ended), "
        f"{len(latencies)}/{len(leavers)} applied: p50 {statistics.median(latencies):.0f} ms, "
        f"p99 {pct(latencies, 0.99):.0f} ms, max {max(latencies):.0f} ms "
        f"(HTTP round trip p50 {statistics.median(round_trips):.0f} ms, p99 {pct(round_trips, 0.99):.0f} ms)"
    )
    print(f"refresh tokens still live after the leavers: {len(live_tokens)}; live sessions: {live_sessions}")
    facts = {
        "joiners_per_s": round(ok / applied_s, 1),
        "ldap_round_trips_per_joiner": round(sum(counted.values()) / per, 1),
        "cpu_ms_per_joiner": round(cpu_s * 1000 / per, 1),
        "leaver_p50_ms": statistics.median(latencies),
        "leaver_p99_ms": pct(latencies, 0.99),
    }
    if during_lat:
        facts["leaver_during_batch_p99_ms"] = pct(during_lat, 0.99)
        facts["leavers_during_batch"] = len(during_lat)
    print(json.dumps(facts))
    return (
        0
        if ok == len(statuses)
        and len(latencies) == len(leavers)
        and len(during_lat) == len(during_ids)
        and not live_tokens
        and not live_sessions
        else 1
    )


def _hr_api(services):  # type: ignore[no-untyped-def]
    """The app, a test client, an hr access token and the relying party's client id."""
    from iam.app import create_app
    from sso import clients

    app = create_app(services=services)
    client = app.test_client()
    with services.transaction() as session:
        hr, secret = clients.create_client(
            session,
            services.cipher,
            clients.ClientSpec(
                name="HR", grant_types=["client_credentials"], scopes=["hr"], redirect_uris=[]
            ),
            actor="bench",
            allow_http=True,
        )
        rp, _ = clients.create_client(
            session,
            services.cipher,
            clients.ClientSpec(name="RP", redirect_uris=["https://rp.example/cb"]),
            actor="bench",
            allow_http=True,
        )
        hr_id, rp_id = hr.client_id, rp.client_id
    basic = base64.b64encode(f"{hr_id}:{secret}".encode()).decode()
    token = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "hr", "resource": services.settings.api_resource},
        headers={"Authorization": f"Basic {basic}"},
    ).json["access_token"]
    return app, client, token, rp_id


def _sign_in(services, people: list[str], rp_id: str) -> None:  # type: ignore[no-untyped-def]
    """A live SSO session and refresh token for each of ``people`` (they must have an account)."""
    from provisioning.models import HrPerson
    from sso import service as sso_service

    with services.transaction() as session:
        for emp in people:
            person = session.get(HrPerson, emp)
            assert person is not None
            assert person.sub
            _, sso_row = sso_service.create_sso_session(
                session,
                services.settings,
                sub=person.sub,
                acr="password",
                amr=["pwd"],
                ip=None,
                user_agent="bench",
            )
            sso_service.issue_refresh_token(
                session,
                services.settings,
                client_id=rp_id,
                ctx=sso_service.AuthContext.of(sso_row),
                scope="openid",
            )


if __name__ == "__main__":
    raise SystemExit(main())
