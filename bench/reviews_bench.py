"""Access reviews at size (issue 12, "Speed and size"): campaign generation, the reviewer inbox,
bulk decisions, and remediation into the real Samba AD DC.

    .venv/bin/python bench/reviews_bench.py                       # all three phases
    .venv/bin/python bench/reviews_bench.py --only generate,inbox --people 5000
    make bench-reviews

Phases (each in a child process of its own, so each has its own peak RSS, read from
``/proc/self/status`` VmHWM at the end of the phase):

1. **generate** — ``campaigns.start`` (the real code path: catalogue builder, reviewer
   resolution, batched inserts, audit event, one mail job per reviewer) for ``--people`` people
   × 20 entitlements on PostgreSQL (a throwaway database ``iam_bench_<pid>_<hex>`` on
   127.0.0.1:5432, created and dropped like ``tests/conftest.py`` does). Targets: 1,000,000
   items in < 60 s and < 500 MB peak RSS.

   How the catalogue is seeded: the directory is a synthetic in-memory ``Directory``
   (``SyntheticDirectory`` below, deterministic from ``--people``) whose ``membership_graph``
   returns every person's account with 19 direct groups out of 1,000 leaf groups (block
   ``i % 50`` of 20 leaf groups, one left out by ``i % 20``), and each block of leaf groups
   nested in one of 50 parent groups — so every person holds 19 direct + 1 nested = 20
   memberships. The database gets, by bulk INSERT before the timed part, one HR record per
   person (department = the block, active) with a manager: ``boss`` (employee 1) manages
   ``--inbox / 20`` people, 2,000 middle managers manage the rest; and one ``identities`` row
   per person with a last sign-in 0–179 days ago (so recommendations differ). No PIM data.
   The directory read is in memory, so the time is our code and PostgreSQL, not LDAP.

2. **inbox** — ``boss`` holds ``--inbox`` (5,000) open items of that campaign (among the
   1,000,000). First page (100 items) through ``decisions.inbox`` and through an HTTP
   ``GET /reviews/`` of the Flask app (test client, a real SSO session cookie, template
   rendered), each 1 cold + 5 warm runs; then one bulk decision (approve with a comment) over
   all 5,000 with ``decisions.decide(flt=Filter(...))``, committed. Targets: first page
   < 300 ms, bulk decision < 5 s.

3. **remediate** — real Samba AD DC (``tests/samba.py`` starts it through
   ``deploy/samba-up.sh``; needs root), a throwaway OU ``t-rvbench-<hex>`` with
   ``--remediate / 20`` users × 20 groups = 1,000 memberships, a separate throwaway PostgreSQL
   database; a campaign over the OU (default outcome revoke, auto-apply), the security officer
   revokes everything in one bulk decision, the campaign is closed, and the remediation jobs
   run through ``iam.jobs.run_due`` until none is left. Prints the revocation rate and the time
   from close to the last job, and reads AD back (memberships left must be 0). The OU is
   deleted afterwards, whatever happened.

Every child has a timeout (``--timeout``, default 900 s); throwaway databases and the OU are
removed on exit. Results are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("IAM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
LEAVES_PER_BLOCK = 20
BLOCKS = 50
MIDDLE_MANAGERS = 2000


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process, e.g. our PostgreSQL backend."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def emit(result: dict[str, Any]) -> None:
    result["peak_rss_mb"] = round(vm_hwm_mb(), 1)
    result["load_avg_1m"] = round(os.getloadavg()[0], 1)
    print("BENCH " + json.dumps(result), flush=True)


# --- the synthetic directory ---------------------------------------------------------------


class SyntheticDirectory:
    """An in-memory directory of ``people`` accounts (``u00000``…) and 1,050 groups; only what
    access reviews read. Deterministic: every process builds the same one."""

    kind = "synthetic"

    def __init__(self, people: int) -> None:
        from iam.directory import DirectoryUser, GroupNode

        self.people = people
        self.users = [
            DirectoryUser(
                id=user_id(i),
                username=username(i),
                dn=f"cn={username(i)},ou=people",
                given_name="Person",
                family_name=str(i),
                email=f"{username(i)}@bench.invalid",
                employee_number=str(i + 1),
            )
            for i in range(people)
        ]
        self.by_id = {u.id: u for u in self.users}
        self.by_name = {u.username.casefold(): u for u in self.users}
        self.groups: dict[str, GroupNode] = {}
        for b in range(BLOCKS):
            parent = f"cn=app-{b:02d},ou=groups"
            self.groups[parent] = GroupNode(dn=parent, name=f"app-{b:02d}")
            for k in range(LEAVES_PER_BLOCK):
                dn = f"cn=g-{b:02d}-{k:02d},ou=groups"
                self.groups[dn] = GroupNode(dn=dn, name=f"g-{b:02d}-{k:02d}", parents=(parent,))
        self.leaf_dns = [
            [f"cn=g-{b:02d}-{k:02d},ou=groups" for k in range(LEAVES_PER_BLOCK)] for b in range(BLOCKS)
        ]

    def direct(self, i: int) -> tuple[str, ...]:
        block = self.leaf_dns[i % BLOCKS]
        skip = i % LEAVES_PER_BLOCK
        return tuple(dn for k, dn in enumerate(block) if k != skip)

    def membership_graph(self, *, base_dn: str | None = None) -> Any:
        from iam.directory import MembershipGraph

        return MembershipGraph(
            users=[(u, self.direct(i)) for i, u in enumerate(self.users)], groups=dict(self.groups)
        )

    def get_user(self, user_id: str) -> Any:
        return self.by_id.get(user_id)

    def find_user(self, *, username: str | None = None, **_: Any) -> Any:
        return self.by_name.get((username or "").casefold())

    def group_members(self, group: str, *, nested: bool = True) -> list[Any]:
        from iam.directory import NoSuchEntry

        raise NoSuchEntry(f"no group {group}")

    def ping(self) -> None:
        return None


def user_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def username(i: int) -> str:
    return "boss" if i == 0 else f"u{i:05d}"


def manager_of(i: int, boss_reports: int) -> int | None:
    """Index of person ``i``'s manager: 0 (boss) for 1..boss_reports, else a middle manager."""
    if i == 0:
        return None
    if i <= boss_reports:
        return 0
    return boss_reports + 1 + (i % MIDDLE_MANAGERS)


# --- helpers --------------------------------------------------------------------------------


def workdir() -> Path:
    """A temporary directory for the phase's dev secrets, removed when the phase ends."""
    tmp = Path(tempfile.mkdtemp(prefix="reviews-bench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return tmp


def make_services(db_url: str, tmp: Path, **overrides: Any) -> Any:
    from iam.config import load_settings
    from iam.services import Services

    settings = load_settings(
        dev_mode=True,
        var_dir=tmp,
        issuer="http://localhost",
        database={"url": db_url},
        secret_key="bench-secret-key-" + "x" * 32,
        encryption_key="Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM=",
        **overrides,
    )
    settings.reviews = settings.reviews.model_copy(
        update={"security_officers": ["officer"], "security_officer_group": ""}
    )
    return Services(settings)


def definition(**kw: Any) -> Any:
    from provisioning.reviews.definitions import Definition

    return Definition.model_validate(
        {
            "name": "bench",
            "title": "Benchmark review",
            "birthright": "review",
            "duration_days": 21,
            **kw,
        }
    )


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --- phases (children) ----------------------------------------------------------------------


def phase_seed(args: argparse.Namespace) -> None:
    from sqlalchemy import insert

    from iam import clock
    from iam.migrate import upgrade
    from iam.models.identity import Identity
    from provisioning.models import HrPerson, PersonStatus

    tmp = workdir()
    services = make_services(args.db, tmp)
    t0 = time.perf_counter()
    upgrade(services.engine)
    now = clock.now()
    boss_reports = args.inbox // LEAVES_PER_BLOCK
    hr, ids = [], []
    for i in range(args.people):
        m = manager_of(i, boss_reports)
        hr.append(
            {
                "employee_number": str(i + 1),
                "given_name": "Person",
                "family_name": str(i),
                "department": f"Dept {i % BLOCKS:02d}",
                "title": "Clerk",
                "manager": str(m + 1) if m is not None else None,
                "engagement": "staff",
                "start_date": now.date(),
                "status": PersonStatus.ACTIVE,
                "username": username(i),
                "sub": user_id(i),
                "groups": [],
                "linked_accounts": [],
                "personal_data": "none",
                "granted_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        ids.append(
            {
                "sub": user_id(i),
                "directory": "synthetic",
                "username": username(i),
                "disabled": False,
                "created_at": now,
                "updated_at": now,
                "last_login_at": now - dt.timedelta(days=(i * 7) % 180),
            }
        )
    with services.transaction() as s:
        for rows, model in ((hr, HrPerson), (ids, Identity)):
            for k in range(0, len(rows), 5000):
                s.execute(insert(model), rows[k : k + 5000])
    emit({"phase": "seed", "seconds": round(time.perf_counter() - t0, 2), "people": args.people})


def phase_generate(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    from sqlalchemy import text

    import pim.jobs  # noqa: F401 — PIM's entitlement source, as in a real process
    import provisioning.jobs  # noqa: F401
    from provisioning.reviews.service import campaigns

    tmp = workdir()
    services = make_services(args.db, tmp)
    directory = SyntheticDirectory(args.people)
    services.__dict__["directory"] = directory
    base_rss = vm_hwm_mb()
    profiler = cProfile.Profile() if args.profile else None

    backend: list[int] = []

    def run() -> dict[str, Any]:
        with services.transaction() as s:
            backend.append(int(s.scalar(text("SELECT pg_backend_pid()")) or 0))
            pg_cpu.append(proc_cpu_s(backend[0]))
            return dict(campaigns.start(services, s, definition=definition(), actor="bench"))

    if profiler:
        profiler.enable()
    pg_cpu: list[float] = []
    cpu0 = cpu_s()
    seconds, result = timed(run)
    cpu = cpu_s() - cpu0
    pg = proc_cpu_s(backend[0]) - pg_cpu[0]
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_SORT", "cumulative")
        ).print_stats(35)
    emit(
        {
            "phase": "generate",
            "seconds": round(seconds, 2),
            "cpu_s": round(cpu, 2),
            "pg_backend_cpu_s": round(pg, 2),
            "items": result["items"],
            "persons": result["persons"],
            "reviewers": len(result["reviewers"]),
            "campaign": result["id"],
            "rss_before_mb": round(base_rss, 1),
        }
    )


def phase_inbox(args: argparse.Namespace) -> None:
    import cProfile
    import pstats

    import pim.jobs  # noqa: F401
    import provisioning.jobs  # noqa: F401
    from iam.app import create_app
    from provisioning.reviews.service import decisions
    from provisioning.reviews.service.decisions import Filter, Reviewer
    from sso import service as sso_service

    tmp = workdir()
    services = make_services(args.db, tmp)
    services.__dict__["directory"] = SyntheticDirectory(args.people)
    boss = Reviewer(username="boss", sub=user_id(0))
    flt = Filter(campaign=args.campaign)

    def page() -> tuple[int, int]:
        with services.reader() as s:
            rows, total = decisions.inbox(services, s, boss, flt, limit=100)
            return len(rows), total

    service_times = []
    for _ in range(6):
        seconds, (n, total) = timed(page)
        service_times.append(seconds)
    assert n == 100, n
    assert total == args.inbox, total

    app = create_app(services.settings, services)
    app.config["WTF_CSRF_ENABLED"] = True
    with services.transaction() as s:
        cookie, _ = sso_service.create_sso_session(
            s, services.settings, sub=user_id(0), acr="1", amr=["pwd"], ip="127.0.0.1", user_agent="bench"
        )
    client = app.test_client()
    client.set_cookie(services.settings.session.cookie_name, cookie, domain="localhost")
    http_times = []
    for _ in range(6):
        seconds, resp = timed(lambda: client.get("/reviews/?campaign=" + args.campaign))
        assert resp.status_code == 200, resp.status_code
        http_times.append(seconds)
    body = resp.get_data(as_text=True)
    assert "u00001" in body, "the inbox page does not list boss's people"

    profiler = cProfile.Profile() if args.profile else None

    def decide() -> int:
        with services.transaction() as s:
            return len(
                decisions.decide(
                    services, s, reviewer=boss, flt=flt, decision="approve", comment="Still needed (bench)."
                )
            )

    if profiler:
        profiler.enable()
    decide_s, decided = timed(decide)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_SORT", "cumulative")
        ).print_stats(30)
    assert decided == args.inbox, decided
    # Every decision is an audit event of its own, with a valid row HMAC, chained when sealed.
    from sqlalchemy import func, select

    from iam import audit
    from iam.models.audit import AuditEvent

    with services.transaction() as s:
        events = s.scalar(select(func.count()).where(AuditEvent.event == "review.decided"))
        while audit.seal(s):
            pass
        check = audit.verify(s)
    assert events == args.inbox, events
    assert check.ok, check
    emit(
        {
            "phase": "inbox",
            "items": args.inbox,
            "inbox_service_cold_ms": round(service_times[0] * 1000, 1),
            "inbox_service_warm_ms": round(statistics.median(service_times[1:]) * 1000, 1),
            "inbox_http_cold_ms": round(http_times[0] * 1000, 1),
            "inbox_http_warm_ms": round(statistics.median(http_times[1:]) * 1000, 1),
            "bulk_decide_s": round(decide_s, 2),
            "decided": decided,
            "audit_events": events,
            "audit_verified": check.ok,
        }
    )


def phase_remediate(args: argparse.Namespace) -> None:
    from ldap3 import MODIFY_ADD, SUBTREE

    import pim.jobs  # noqa: F401
    import provisioning.jobs  # noqa: F401
    from iam import jobs
    from iam.directory import NewUser
    from iam.directory.ad import ActiveDirectory
    from iam.migrate import upgrade
    from provisioning.reviews.service import campaigns, decisions
    from provisioning.reviews.service.decisions import Filter, Reviewer
    from tests.samba import BASE_DN, _locked, _start

    dc = _start()
    tag = secrets.token_hex(3)
    ou = f"OU=t-rvbench-{tag},{BASE_DN}"
    tmp = workdir()
    users_n = max(1, args.remediate // 20)
    with _locked(dc.directory / "turn.lock", exclusive=False):
        dc.admin(lambda conn: conn.add(ou, ["top", "organizationalUnit"]))
        try:
            services = make_services(
                args.db,
                tmp,
                directory={
                    **dc.settings.model_dump(exclude={"pool_size"}),  # the product's default pool
                    "bind_password": dc.settings.bind_password.get_secret_value(),
                    "users_ou": ou,
                    "groups_ou": ou,
                },
            )
            upgrade(services.engine)
            d: ActiveDirectory = services.directory  # type: ignore[assignment]
            t0 = time.perf_counter()
            user_dns = [
                d.create_user(NewUser(username=f"rv{tag}{i:03d}", given_name="Bench", enabled=False)).dn
                for i in range(users_n)
            ]
            groups = [d.create_group(f"rv{tag}-g{k:02d}") for k in range(20)]
            for g in groups:  # one modify per group: every member at once
                dc.modify(g.dn, {"member": [(MODIFY_ADD, user_dns)]})
            setup_s = time.perf_counter() - t0
            spec = definition(
                name="bench-ad",
                scope={"kind": "ou", "ou": ou},
                stages=[{"reviewer": "security_officer"}],
                default_outcome="revoke",
                acknowledge_revoke=True,
                auto_apply=True,
            )
            with services.transaction() as s:
                cid = str(campaigns.start(services, s, definition=spec, actor="bench")["id"])
            officer = Reviewer(username="officer")
            with services.transaction() as s:
                n = len(
                    decisions.decide(
                        services,
                        s,
                        reviewer=officer,
                        flt=Filter(campaign=cid),
                        decision="revoke",
                        comment="Benchmark: not needed.",
                    )
                )
            t_close = time.perf_counter()
            with services.transaction() as s:
                campaigns.close(services, s, campaign_id=cid, actor="bench")
            ran = 0

            def work() -> int:
                done = 0
                while k := jobs.run_due(services, limit=10):
                    done += k
                return done

            with ThreadPoolExecutor(args.workers) as pool:  # like `iam worker --threads N`
                ran = sum(pool.map(lambda _: work(), range(args.workers)))
            total_s = time.perf_counter() - t_close

            def left(conn: Any) -> int:
                conn.search(ou, "(&(objectClass=group)(member=*))", SUBTREE, attributes=["member"])
                return sum(len(e["attributes"].get("member", [])) for e in conn.response or [])

            remaining = dc.admin(left)
            emit(
                {
                    "phase": "remediate",
                    "setup_s": round(setup_s, 1),
                    "revocations": n,
                    "workers": args.workers,
                    "jobs_run": ran,
                    "end_to_end_s": round(total_s, 1),
                    "rate_per_s": round(n / total_s, 1) if total_s else None,
                    "memberships_left_in_ad": remaining,
                }
            )
            services.dispose()
        finally:
            dc.delete_tree(ou)


# --- driver -----------------------------------------------------------------------------------


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


def child(args: argparse.Namespace, phase: str, db: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--db",
        db,
        "--people",
        str(args.people),
        "--inbox",
        str(args.inbox),
        "--remediate",
        str(args.remediate),
        "--workers",
        str(args.workers),
        *(["--profile"] if args.profile else []),
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        proc.wait(10)
        raise SystemExit(f"phase {phase}: no result within {args.timeout} s") from None
    for line in out.splitlines():
        if line.startswith("BENCH "):
            result: dict[str, Any] = json.loads(line[6:])
            print(f"  {phase}: {json.dumps(result)}", flush=True)
            return result
    raise SystemExit(f"phase {phase} failed (exit status {proc.returncode})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--people", type=int, default=50_000, help="people in the synthetic directory")
    ap.add_argument("--inbox", type=int, default=5_000, help="items of the one reviewer (multiple of 20)")
    ap.add_argument("--remediate", type=int, default=1_000, help="revocations into Samba (multiple of 20)")
    ap.add_argument("--workers", type=int, default=4, help="remediation: job-running threads")
    ap.add_argument("--only", default="generate,inbox,remediate", help="comma-separated phases")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per phase")
    ap.add_argument("--profile", action="store_true", help="cProfile the timed parts (to stderr)")
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--campaign", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        {
            "seed": phase_seed,
            "generate": phase_generate,
            "inbox": phase_inbox,
            "remediate": phase_remediate,
        }[args.phase](args)
        return
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    results: dict[str, Any] = {
        "settings": {"people": args.people, "inbox": args.inbox, "remediate": args.remediate}
    }
    print(f"access reviews bench: {args.people} people x 20 entitlements; phases {sorted(only)}", flush=True)
    if only & {"generate", "inbox"}:
        for db in throwaway_db():
            results["seed"] = child(args, "seed", db)
            results["generate"] = child(args, "generate", db)
            if "inbox" in only:
                results["inbox"] = child(args, "inbox", db, ["--campaign", results["generate"]["campaign"]])
    if "remediate" in only:
        for db in throwaway_db():
            results["remediate"] = child(args, "remediate", db)
    print()
    g, i, r = results.get("generate"), results.get("inbox"), results.get("remediate")
    if g:
        print(
            f"generation: {g['items']:,} items for {g['persons']:,} people, {g['reviewers']:,} reviewers "
            f"in {g['seconds']:.1f} s ({g['items'] / g['seconds']:,.0f} items/s), "
            f"peak RSS {g['peak_rss_mb']:.0f} MB (targets < 60 s, < 500 MB); CPU: ours {g['cpu_s']:.0f} s, "
            f"PostgreSQL backend {g['pg_backend_cpu_s']:.0f} s; load average {g['load_avg_1m']}"
        )
    if i:
        print(
            f"inbox of {i['items']:,} items, first page: service {i['inbox_service_cold_ms']:.0f} ms cold / "
            f"{i['inbox_service_warm_ms']:.0f} ms warm, HTTP GET /reviews/ {i['inbox_http_cold_ms']:.0f} ms "
            f"cold / {i['inbox_http_warm_ms']:.0f} ms warm (target < 300 ms)"
        )
        print(f"bulk decision over {i['decided']:,} items: {i['bulk_decide_s']:.2f} s (target < 5 s)")
    if r:
        print(
            f"remediation into Samba: {r['revocations']:,} revocations in {r['end_to_end_s']:.1f} s "
            f"({r['rate_per_s']:.1f}/s, {r['workers']} worker threads), "
            f"memberships left in AD: {r['memberships_left_in_ad']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
