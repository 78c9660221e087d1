"""The physical limit of the Samba AD DC on this machine: bare ldap3 writes, no provider code.

What a joiner needs from the DC, done as cheaply as LDAP allows:

* ``add+pwd``   one add per user with every attribute a joiner gets (names, UPN, mail, employee
                number), the initial password (unicodePwd, over LDAPS), must-change
                (pwdLastSet=0) and enabled (userAccountControl=512) — one round trip;
* ``add,pwd,en`` the same user in three round trips: add (disabled), set unicodePwd, enable;
* ``member``    one group membership per modify (the user DN added to a group);
* ``member/b``  group memberships batched: one modify adds 50 users to a group.

and what a sign-in needs from it, the password check:

* ``bind/new``  a new LDAPS connection per check (TCP + TLS handshake, bind, unbind);
* ``bind``      a simple bind as the user on a connection kept open (what the provider does
                since issue 18: its bind pool);
* ``find+bind`` the search by sAMAccountName on a service connection and the bind: the DC's
                part of one sign-in in ``bench/signin_bench.py``.

Each is run from one connection and from K parallel connections (threads, one bound LDAPS
connection each) and printed as ops/s next to the CPU this process used per operation (our
client-side cost; the DC's CPU is in its own processes). ``joiner-equivalents/s`` = what the DC
takes for one joiner (one add+pwd and two memberships, batched): the ceiling for
``bench/hr_bench.py``; ``sign-in checks/s`` (the best ``find+bind``) is the ceiling for
``bench/signin_bench.py --directory samba``.

    .venv/bin/python bench/ldap_limit.py                 # 300 users, 1 and 4 connections
    .venv/bin/python bench/ldap_limit.py --users 1000 --parallel 1,2,4,8 --json out.json

Uses the shared test DC (deploy/samba-up.sh through tests/samba.py) and works in its own OU,
deleted at the end.
"""

# ruff: noqa: B023 — the per-run closures are called synchronously inside their own loop iteration

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ["top", "person", "organizationalPerson", "user"]
TREE_DELETE = ("1.2.840.113556.1.4.805", True, None)


def password() -> bytes:
    return f'"Ld-{secrets.token_urlsafe(12)}9a"'.encode("utf-16-le")


def user_attributes(name: str, i: int, *, with_password: bool) -> dict[str, object]:
    attrs: dict[str, object] = {
        "sAMAccountName": name,
        "userPrincipalName": f"{name}@example.test",
        "givenName": "Đorđe",
        "sn": f"Anđelković {i}",
        "displayName": f"Đorđe Anđelković {i}",
        "mail": f"{name}@example.test",
        "employeeNumber": f"L{i:06d}",
        "userAccountControl": "514",
    }
    if with_password:
        attrs.update({"unicodePwd": password(), "pwdLastSet": "0", "userAccountControl": "512"})
    return attrs


def run_parallel(
    k: int, items: list[int], connect: Callable[[], object], op: Callable
) -> tuple[float, float, int]:  # type: ignore[type-arg]
    """Run ``op(conn, item)`` over items on k connections; (wall s, process CPU s, failures)."""
    chunks = [items[i::k] for i in range(k)]
    conns = [connect() for _ in range(k)]
    failures = [0]
    lock = threading.Lock()

    def work(conn, chunk) -> None:  # type: ignore[no-untyped-def]
        for item in chunk:
            if not op(conn, item):
                with lock:
                    failures[0] += 1
                    if failures[0] == 1:
                        print(f"  first failure: {conn.result}", file=sys.stderr)

    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=work, args=(c, ch)) for c, ch in zip(conns, chunks, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for c in conns:
        c.unbind()  # type: ignore[attr-defined]
    return wall, cpu, failures[0]


def measure_binds(dc, ou: str, tag: str, args: argparse.Namespace, record: Callable) -> dict[str, float]:  # type: ignore[no-untyped-def,type-arg]
    """Password checks: a new connection per bind, a bind on a kept connection, and the
    search + bind of one sign-in; returns the best sign-in checks/s."""
    import ssl

    from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls

    secret = f"Bind-{secrets.token_urlsafe(9)}-9a"
    names = [f"lb{tag}{i}" for i in range(20)]

    def make(conn) -> None:  # type: ignore[no-untyped-def]
        for i, name in enumerate(names):
            attrs = user_attributes(name, i, with_password=False)
            attrs.update({"unicodePwd": f'"{secret}"'.encode("utf-16-le"), "userAccountControl": "512"})
            assert conn.add(f"CN={name},{ou}", CLASSES, attrs), conn.result

    dc.admin(make)
    dns = [f"CN={name},{ou}" for name in names]
    server = Server(
        "127.0.0.1",
        port=636,
        use_ssl=True,
        tls=Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=dc.ca_file),
        get_info=NONE,
        connect_timeout=5,
    )

    def unbound() -> Connection:
        conn = Connection(server, authentication=SIMPLE, user="", password="", check_names=False)
        conn.open(read_server_info=False)
        return conn

    def bind(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
        conn.user, conn.password = dns[i % len(dns)], secret
        return bool(conn.bind(read_server_info=False))

    def bind_new(_conn, i: int) -> bool:  # type: ignore[no-untyped-def]
        conn = Connection(server, user=dns[i % len(dns)], password=secret, authentication=SIMPLE)
        conn.open(read_server_info=False)
        ok = bool(conn.bind(read_server_info=False))
        conn.unbind()
        return ok

    service: dict[int, Connection] = {}
    service_lock = threading.Lock()

    def find_bind(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
        key = threading.get_ident()
        with service_lock:
            if key not in service:
                service[key] = dc.connect()
        svc = service[key]
        name = names[i % len(names)]
        svc.search(ou, f"(&(objectClass=user)(sAMAccountName={name}))", SUBTREE, attributes=["*"])
        return len(svc.response or []) >= 1 and bind(conn, i)

    best = 0.0
    n = min(args.users, 300)
    for k in [int(x) for x in args.parallel.split(",") if x]:
        for label, op in (("bind/new", bind_new), ("bind", bind), ("find+bind", find_bind)):
            wall, cpu, failed = run_parallel(k, list(range(n)), unbound, op)
            row = record(label, k, n, wall, cpu, failed)
            if label == "find+bind":
                best = max(best, float(row["ops_per_s"]))
        for conn in service.values():
            conn.unbind()
        service.clear()
    print(f"limit: {best:.1f} sign-in checks/s (search by name + bind on a kept connection)")
    return {"signin_checks_per_s": round(best, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=300, help="users per measured run")
    ap.add_argument("--parallel", default="1,4", help="connection counts, comma-separated")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", choices=["joiners", "binds"], help="measure only this part")
    args = ap.parse_args()

    import pytest
    from ldap3 import MODIFY_ADD, MODIFY_REPLACE

    from tests.samba import _start

    try:
        dc = _start()
    except pytest.skip.Exception as exc:
        print(f"Samba AD DC not available: {exc}", file=sys.stderr)
        return 1
    tag = secrets.token_hex(3)
    ou = f"OU=ldaplimit-{tag},DC=example,DC=test"

    def make_ou(conn) -> None:  # type: ignore[no-untyped-def]
        assert conn.add(ou, ["top", "organizationalUnit"]), conn.result

    dc.admin(make_ou)
    load = os.getloadavg()
    print(
        f"Samba DC limit, {args.users} users per run; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"{'operation':<12} {'conns':>5} {'ops':>6} {'ops/s':>8} {'client CPU ms/op':>17} {'failed':>6}")
    results: list[dict[str, object]] = []
    counter = [0]

    def record(name: str, k: int, n: int, wall: float, cpu: float, failed: int) -> dict[str, object]:
        row = {
            "operation": name,
            "connections": k,
            "ops": n,
            "ops_per_s": round(n / wall, 1),
            "client_cpu_ms_per_op": round(cpu * 1000 / n, 2),
            "failed": failed,
        }
        print(f"{name:<12} {k:>5} {n:>6} {n / wall:>8.1f} {cpu * 1000 / n:>17.2f} {failed:>6}", flush=True)
        results.append(row)
        return row

    try:
        best: dict[str, float] = {}
        summary: dict[str, object] = {"load_average": load, "users": args.users, "results": results}
        if args.only != "joiners":
            summary.update(measure_binds(dc, ou, tag, args, record))
        for k in [int(x) for x in args.parallel.split(",") if x and args.only != "binds"]:
            run_tag = f"{tag}k{k}"
            # 1. one add with password + must-change + enabled
            dns: list[str] = []
            dns_lock = threading.Lock()

            def add_full(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
                name = f"lf{run_tag}{i}"
                dn = f"CN={name},{ou}"
                ok = bool(conn.add(dn, CLASSES, user_attributes(name, i, with_password=True)))
                if ok:
                    with dns_lock:
                        dns.append(dn)
                return ok

            wall, cpu, failed = run_parallel(k, list(range(args.users)), dc.connect, add_full)
            row = record("add+pwd", k, args.users, wall, cpu, failed)
            best["add+pwd"] = max(best.get("add+pwd", 0.0), float(row["ops_per_s"]))  # type: ignore[arg-type]

            # 2. the same in three round trips (add disabled, set password, enable)
            def add_three(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
                name = f"l3{run_tag}{i}"
                dn = f"CN={name},{ou}"
                return bool(
                    conn.add(dn, CLASSES, user_attributes(name, i, with_password=False))
                    and conn.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [password()])]})
                    and conn.modify(
                        dn,
                        {
                            "pwdLastSet": [(MODIFY_REPLACE, ["0"])],
                            "userAccountControl": [(MODIFY_REPLACE, ["512"])],
                        },
                    )
                )

            wall, cpu, failed = run_parallel(k, list(range(args.users)), dc.connect, add_three)
            record("add,pwd,en", k, args.users, wall, cpu, failed)

            # 3. group memberships: one per modify, then batched 50 per modify (one group per connection)
            groups = [f"CN=lg{run_tag}{j},{ou}" for j in range(2 * k)]

            def make_groups(conn) -> None:  # type: ignore[no-untyped-def]
                for j, g in enumerate(groups):
                    assert conn.add(g, ["top", "group"], {"sAMAccountName": f"lg{run_tag}{j}"}), conn.result

            dc.admin(make_groups)
            members = sorted(dns)

            def member_one(conn, i: int) -> bool:  # type: ignore[no-untyped-def]
                group = groups[i % k]
                return bool(conn.modify(group, {"member": [(MODIFY_ADD, [members[i]])]}))

            wall, cpu, failed = run_parallel(k, list(range(len(members))), dc.connect, member_one)
            row = record("member", k, len(members), wall, cpu, failed)
            best["member"] = max(best.get("member", 0.0), float(row["ops_per_s"]))  # type: ignore[arg-type]

            batches = [members[i : i + 50] for i in range(0, len(members), 50)]

            def member_batch(conn, b: int) -> bool:  # type: ignore[no-untyped-def]
                group = groups[k + b % k]
                return bool(conn.modify(group, {"member": [(MODIFY_ADD, batches[b])]}))

            wall, cpu, failed = run_parallel(k, list(range(len(batches))), dc.connect, member_batch)
            row = record("member/b", k, len(members), wall, cpu, failed)
            best["member/b"] = max(best.get("member/b", 0.0), float(row["ops_per_s"]))  # type: ignore[arg-type]
            counter[0] += 1
        if args.only != "binds":
            # one joiner = one add+pwd and two memberships (batched); times add up on the DC
            per_joiner_s = 1 / best["add+pwd"] + 2 / best["member/b"]
            joiners = 1 / per_joiner_s
            per_joiner_single = 1 / best["add+pwd"] + 2 / best["member"]
            print(
                f"limit: {joiners:.1f} joiner-equivalents/s (one add with password and enable + 2 "
                f"batched memberships; {1 / per_joiner_single:.1f}/s with memberships one by one)"
            )
            summary["joiner_equivalents_per_s"] = round(joiners, 1)
            summary["joiner_equivalents_unbatched_per_s"] = round(1 / per_joiner_single, 1)
        print(json.dumps({k: v for k, v in summary.items() if k.endswith("_per_s")}))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2))
        return 0
    finally:

        def drop(conn) -> None:  # type: ignore[no-untyped-def]
            conn.delete(ou, controls=[TREE_DELETE])

        for _ in range(3):
            try:
                dc.admin(drop)
                break
            except Exception as exc:  # noqa: BLE001 - a big tree outlasts the receive timeout
                print(f"deleting {ou}: {exc}; retrying", file=sys.stderr)
                time.sleep(5)


if __name__ == "__main__":
    raise SystemExit(main())
