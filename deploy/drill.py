"""Failure drills for several nodes (issue 17): two ``iam serve`` nodes behind nginx, two
``iam worker`` processes, PostgreSQL with a streaming replica — all real processes on this
machine, nothing mocked. Prints every number it measures (the README's "Operating several
nodes" quotes them).

    sudo .venv/bin/python deploy/drill.py            # as root: PostgreSQL runs as "postgres"
    .venv/bin/python deploy/drill.py --json out.json # also write the numbers as JSON

Drills, in order, under a bounded load of sign-ins (code flow with PKCE), refreshes and
client-credentials tokens through nginx:

1. ``client-disable``: a client is disabled with the CLI (another process, as on node A);
   node B (asked directly, its cache warm) refuses it — the time from the CLI's commit to the
   first refusal is measured.
2. ``node-kill``: ``kill -9`` of node A's whole process group under load; nginx routes around
   it. Counted: failed requests (and whether each was in flight at the kill), and browser
   sessions and refresh tokens lost (a session is lost when ``prompt=none`` no longer returns a
   code; a refresh chain is lost when its next refresh is refused).
3. ``worker-kill``: 200 HR joiners posted; one worker is killed with ``kill -9`` in the middle;
   every event is applied exactly once (one account per employee number, 200 accounts).
4. ``elevations``: 50 elevations (10 people x 5 roles, built-in directory) end within 5 s;
   one worker is killed after a quarter are removed; every one is removed exactly once (one
   ``pim.access_removed`` audit event each, no group membership left); lag after the end printed.
5. ``failover``: the PostgreSQL primary is stopped (immediate), the replica promoted
   (``pg_ctl promote``); the nodes — never restarted — reconnect by themselves through the
   multi-host URL (``target_session_attrs=read-write``). Measured: the time without service
   (last success before, first success after) and the failed requests.

Needs: PostgreSQL 15 server binaries (``/usr/lib/postgresql/15/bin``), nginx, the venv.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_BIN = Path(os.environ.get("IAM_DRILL_PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORD = "Drill-Passw0rd-2026"
REDIRECT = "http://127.0.0.1/cb"
VENV_BIN = Path(sys.executable).parent
PIM_PEOPLE, PIM_ROLES = 10, 5
"""50 elevations: 10 people x 5 roles."""


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# -- PostgreSQL: a primary and a streaming replica under the drill's directory -------------------
class Postgres:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.primary = base / "pg-primary"
        self.replica = base / "pg-replica"
        self.p1, self.p2 = free_port(), free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args], check=check, capture_output=True, text=True, timeout=120
        )

    def _ctl(self, datadir: Path, *args: str) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(datadir), "-l", str(datadir) + ".log", "-w", *args)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.primary), "-A", "trust", "-U", "postgres", "-E", "UTF8"
        )
        opts = (
            f"-p {self.p1} -k {self.base} -c listen_addresses=127.0.0.1"
            " -c wal_level=replica -c max_wal_senders=5"
        )
        self._ctl(self.primary, "-o", opts, "start")
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres", "iam")
        self._run(
            str(PG_BIN / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(self.p1), "-U", "postgres", "-D", str(self.replica)),
            *("-R", "-X", "stream", "-c", "fast"),
        )
        self._ctl(self.replica, "-o", opts.replace(f"-p {self.p1}", f"-p {self.p2}"), "start")

    @property
    def url(self) -> str:
        """Both servers; libpq picks the one that takes writes (the client side of failover)."""
        return (
            f"postgresql+psycopg://postgres@/iam?host=127.0.0.1:{self.p1}&host=127.0.0.1:{self.p2}"
            "&target_session_attrs=read-write&connect_timeout=3"
        )

    def stop_primary(self) -> None:
        self._ctl(self.primary, "stop", "-m", "immediate")

    def promote_replica(self) -> None:
        self._ctl(self.replica, "promote")

    def stop_all(self) -> None:
        for d in (self.primary, self.replica):
            if (d / "postmaster.pid").exists():
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(d), "stop", "-m", "immediate", check=False)


# -- the provider's processes --------------------------------------------------------------------
@dataclass
class Cluster:
    base: Path
    db_url: str
    lb_port: int = field(default_factory=free_port)
    node_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    nodes: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None, None])
    workers: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None, None])
    nginx: subprocess.Popen[bytes] | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
        env.update(
            {
                "IAM_DEV_MODE": "true",
                "IAM_VAR_DIR": str(self.base / "var"),
                "IAM_DATABASE__URL": self.db_url,
                "IAM_ISSUER": self.issuer,
                "IAM_DIRECTORY__KIND": "local",
                "IAM_WORKER__POLL_INTERVAL": "0.2",
                "IAM_WORKER__LEASE": "10",
                "IAM_CLUSTER__HEARTBEAT": "2",
                # a refresh whose answer died with its node may be retried (README "Several nodes")
                "IAM_TOKENS__REFRESH_RETRY_GRACE_SECONDS": "10",
                "IAM_PIM__ROLES_DIR": str(self.base / "roles"),
                "IAM_PIM__SECURITY_OFFICERS": '["drillsec"]',
                "XDG_RUNTIME_DIR": str(self.base),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def iam(self, *args: str) -> Any:
        out = subprocess.run(
            [str(VENV_BIN / "iam"), *args],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if out.returncode != 0:
            raise RuntimeError(f"iam {' '.join(args)}: {out.stderr[-2000:]}")
        return out.stdout

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 — the process keeps it
        return subprocess.Popen(
            [str(VENV_BIN / "iam"), *args],
            env=self.env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the whole node
        )

    def start_node(self, i: int) -> None:
        port = self.node_ports[i]
        self.nodes[i] = self._spawn(
            f"node{i}", "serve", "--port", str(port), "--workers", "1", "--threads", "4"
        )
        wait_port(port)

    def start_worker(self, i: int) -> None:
        self.workers[i] = self._spawn(f"worker{i}", "worker")

    def kill(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def start_nginx(self) -> None:
        conf = self.base / "nginx.conf"
        tmp = self.base / "nginx-tmp"
        tmp.mkdir(exist_ok=True)
        servers = "\n".join(
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in self.node_ports
        )
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""{user}
worker_processes 1;
daemon off;
pid {self.base}/nginx.pid;
error_log {self.base}/nginx-error.log;
events {{ worker_connections 512; }}
http {{
    access_log {self.base}/nginx-access.log;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    upstream iam {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.lb_port};
        location / {{
            proxy_pass http://iam;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            include {ROOT}/deploy/nginx/iam-retries.conf;
        }}
    }}
}}
"""
        )
        self.nginx = subprocess.Popen(
            ["nginx", "-c", str(conf), "-p", str(self.base)], start_new_session=True
        )
        wait_port(self.lb_port)

    def stop(self) -> None:
        for p in [*self.nodes, *self.workers, self.nginx]:
            self.kill(p)


# -- a relying party and a browser, over HTTP ----------------------------------------------------
def basic(cid: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()}


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    if not m:
        raise RuntimeError("no CSRF token on the page")
    return m.group(1)


def authorize(http: httpx.Client, cid: str, **extra: str) -> tuple[httpx.Response, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": cid,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return http.get("/authorize?" + urlencode(params)), verifier


def follow_to_code(http: httpx.Client, resp: httpx.Response) -> dict[str, str]:
    for _ in range(10):
        if resp.status_code not in (302, 303):
            raise RuntimeError(f"status {resp.status_code}")
        loc = resp.headers["Location"]
        if loc.startswith(REDIRECT):
            return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}
        parts = urlsplit(loc)
        resp = http.get(parts.path + ("?" + parts.query if parts.query else ""))
    raise RuntimeError("too many redirects")


def sign_in(http: httpx.Client, cid: str, secret: str, username: str) -> dict[str, Any]:
    """The authorization code flow as a browser and a relying party do it; returns the tokens."""
    resp, verifier = authorize(http, cid)
    if resp.headers.get("Location", "").endswith("/login"):
        page = http.get("/login")
        resp = http.post(
            "/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf_from(page.text)}
        )
    q = follow_to_code(http, resp)
    tok = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers=basic(cid, secret),
    )
    if tok.status_code != 200:
        raise RuntimeError(f"token {tok.status_code}")
    return dict(tok.json())


def session_alive(http: httpx.Client, cid: str) -> bool:
    resp, _ = authorize(http, cid, prompt="none")
    try:
        return "code" in follow_to_code(http, resp)
    except RuntimeError:
        return False


# -- the load ------------------------------------------------------------------------------------
@dataclass
class Op:
    kind: str
    t0: float
    t1: float
    ok: bool
    detail: str = ""


class Load:
    """``threads`` virtual users, each: client-credentials tokens and refreshes in turn, a full
    sign-in every tenth operation, at most one operation per ``pause`` seconds each."""

    def __init__(self, base: str, app: dict[str, str], users: list[str], pause: float = 0.05) -> None:
        self.base = base
        self.app = app
        self.users = users
        self.pause = pause
        self.ops: list[Op] = []
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.browsers: list[httpx.Client] = []
        self.lost_refresh = 0
        self._lock = threading.Lock()

    def _record(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def start(self) -> None:
        for user in self.users:
            browser = httpx.Client(base_url=self.base, timeout=15, follow_redirects=False)
            tokens = sign_in(browser, self.app["web_id"], self.app["web_secret"], user)
            self.browsers.append(browser)
            t = threading.Thread(target=self._user, args=(user, browser, tokens), daemon=True)
            self.threads.append(t)
        for t in self.threads:
            t.start()

    def _user(self, user: str, browser: httpx.Client, tokens: dict[str, Any]) -> None:
        rp = httpx.Client(base_url=self.base, timeout=15)
        refresh = tokens["refresh_token"]
        n = 0
        while not self.stop_event.is_set():
            n += 1
            t0 = time.monotonic()
            kind = "sign-in" if n % 10 == 0 else ("refresh" if n % 2 else "client-credentials")
            ok, detail = True, ""
            try:
                if kind == "client-credentials":
                    r = rp.post(
                        "/token",
                        data={"grant_type": "client_credentials", "scope": "api.read"},
                        headers=basic(self.app["cc_id"], self.app["cc_secret"]),
                    )
                    ok, detail = r.status_code == 200, str(r.status_code)
                elif kind == "refresh":
                    r = rp.post(
                        "/token",
                        data={"grant_type": "refresh_token", "refresh_token": refresh},
                        headers=basic(self.app["web_id"], self.app["web_secret"]),
                    )
                    ok, detail = r.status_code == 200, str(r.status_code)
                    if ok:
                        refresh = r.json().get("refresh_token", refresh)
                    elif r.status_code == 400 and r.json().get("error") == "invalid_grant":
                        with self._lock:
                            self.lost_refresh += 1
                        refresh = sign_in(browser, self.app["web_id"], self.app["web_secret"], user)[
                            "refresh_token"
                        ]
                else:
                    fresh = httpx.Client(base_url=self.base, timeout=15, follow_redirects=False)
                    sign_in(fresh, self.app["web_id"], self.app["web_secret"], user)
                    fresh.close()
            except Exception as exc:  # noqa: BLE001 — every failure is counted
                ok, detail = False, type(exc).__name__
            self._record(Op(kind, t0, time.monotonic(), ok, detail))
            self.stop_event.wait(self.pause)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=30)

    def between(self, a: float, b: float) -> list[Op]:
        with self._lock:
            return [o for o in self.ops if a <= o.t1 and o.t0 <= b]


# -- setup ---------------------------------------------------------------------------------------
def setup_data(cluster: Cluster, n_users: int) -> dict[str, str]:
    """Users in the built-in directory, a web client and two client-credentials clients."""
    os.environ.update({k: v for k, v in cluster.env().items() if k.startswith("IAM_")})
    from iam.config import load_settings
    from iam.services import Services
    from sso import clients as client_service

    services = Services(load_settings())
    try:
        from iam.directory.base import NewUser

        d = services.directory
        for i in range(n_users):
            user = d.create_user(
                NewUser(username=f"drill{i}", given_name="Drill", family_name=str(i), enabled=False)
            )
            d.set_password(user.id, PASSWORD, must_change=False)
            d.enable(user.id)
        out: dict[str, str] = {}
        with services.transaction() as s:
            specs = {
                "web": client_service.ClientSpec(name="Drill RP", redirect_uris=[REDIRECT]),
                "cc": client_service.ClientSpec(
                    name="Drill API",
                    grant_types=["client_credentials"],
                    scopes=["api.read"],
                    audiences=["https://api"],
                ),
                "probe": client_service.ClientSpec(
                    name="Drill probe",
                    grant_types=["client_credentials"],
                    scopes=["api.read"],
                    audiences=["https://api"],
                ),
                "hr": client_service.ClientSpec(
                    name="Drill HR", grant_types=["client_credentials"], scopes=["hr"]
                ),
            }
            for key, spec in specs.items():
                row, secret = client_service.create_client(
                    s, services.cipher, spec, actor="drill", allow_http=True
                )
                out[f"{key}_id"], out[f"{key}_secret"] = row.client_id, secret or ""
        # PIM: roles without approval, people eligible for each (the elevation drill)
        from iam.identities import upsert_identity
        from pim import service as pim_service

        officer = pim_service.Actor.operator("drillsec")
        for r in range(PIM_ROLES):
            d.create_group(f"Drill PIM {r}")
        for i in range(PIM_PEOPLE):
            user = d.create_user(
                NewUser(username=f"pim{i}", given_name="Pim", family_name=str(i), enabled=False)
            )
            d.set_password(user.id, PASSWORD, must_change=False)
            d.enable(user.id)
            with services.transaction() as s:
                upsert_identity(s, d.get_user(user.id) or user, kind=d.kind)
                for r in range(PIM_ROLES):
                    pim_service.add_eligibility(s, services, actor=officer, role=f"r{r}", username=f"pim{i}")
        return out
    finally:
        services.dispose()


def write_roles(base: Path) -> None:
    roles = base / "roles"
    roles.mkdir(exist_ok=True)
    for r in range(PIM_ROLES):
        (roles / f"r{r}.toml").write_text(
            f'groups = ["Drill PIM {r}"]\napproval = false\nmax_minutes = 60\n'
            "justification_required = false\n"
        )


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


# -- the drills ----------------------------------------------------------------------------------
def drill_client_disable(cluster: Cluster, app: dict[str, str]) -> dict[str, float]:
    node_b = httpx.Client(base_url=f"http://127.0.0.1:{cluster.node_ports[1]}", timeout=10)

    def probe() -> int:
        r = node_b.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "api.read"},
            headers=basic(app["probe_id"], app["probe_secret"]),
        )
        return r.status_code

    assert probe() == 200  # node B has the registration cached now
    t_cli = time.monotonic()
    cluster.iam("client", "disable", app["probe_id"], "--json")
    t_committed = time.monotonic()
    polls = 0
    while probe() == 200:
        polls += 1
        if time.monotonic() - t_committed > 30:
            raise RuntimeError("node B still accepts the disabled client after 30 s")
    t_refused = time.monotonic()
    result = {
        "cli_seconds": round(t_committed - t_cli, 3),
        "refused_on_node_b_after_commit_ms": round((t_refused - t_committed) * 1000, 1),
        "accepted_polls_after_commit": polls,
    }
    say(
        "client disabled by the CLI: node B refused it "
        f"{result['refused_on_node_b_after_commit_ms']} ms after the commit"
    )
    return result


def drill_node_kill(cluster: Cluster, load: Load, app: dict[str, str], settle: float) -> dict[str, Any]:
    time.sleep(settle)
    t_kill = time.monotonic()
    cluster.kill(cluster.nodes[0])
    say("node A killed (kill -9 of its process group)")
    time.sleep(settle)
    t_end = time.monotonic()
    window = load.between(t_kill - 5, t_end)
    failed = [o for o in window if not o.ok]
    in_flight = [o for o in failed if o.t0 <= t_kill]
    after = [o for o in failed if o.t0 > t_kill]
    sessions_alive = sum(session_alive(b, app["web_id"]) for b in load.browsers)
    result = {
        "requests_around_kill": len(window),
        "failed": len(failed),
        "failed_in_flight_at_kill": len(in_flight),
        "failed_started_after_kill": len(after),
        "failed_kinds": sorted({f"{o.kind}:{o.detail}" for o in failed}),
        "sessions_checked": len(load.browsers),
        "sessions_lost": len(load.browsers) - sessions_alive,
        "refresh_chains_lost": load.lost_refresh,
    }
    say(f"node kill: {result}")
    cluster.start_node(0)
    return result


def drill_worker_kill(cluster: Cluster, app: dict[str, str], n_events: int) -> dict[str, Any]:
    lb = httpx.Client(base_url=cluster.issuer, timeout=30)
    tok = lb.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "hr", "resource": f"{cluster.issuer}/api"},
        headers=basic(app["hr_id"], app["hr_secret"]),
    )
    tok.raise_for_status()
    headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    tag = secrets.token_hex(2)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    before = query(cluster.db_url, "SELECT count(*) FROM local_users")[0][0]
    # both workers stopped while the batch arrives, so the kill lands mid-batch for sure
    for i in (0, 1):
        cluster.kill(cluster.workers[i])
    t0 = time.monotonic()
    for i in range(n_events):
        emp = f"D{tag}{i:04d}"
        event = {
            "idempotency_key": f"join-{emp}",
            "kind": "joiner",
            "person": {
                "employee_number": emp,
                "given_name": "Ana",
                "family_name": f"Drill{tag}{i}",
                "department": "Finance",
                "title": "Accountant",
                "engagement": "staff",
                "start_date": today,
                "birth_date": "1990-04-01",
                "personal_data": "full",
                "decision_number": f"D-{emp}",
            },
        }
        r = lb.post("/api/v1/hr/events", json=event, headers=headers)
        if r.status_code not in (200, 201, 202):
            raise RuntimeError(f"HR event refused: {r.status_code} {r.text[:300]}")
    posted = time.monotonic() - t0
    cluster.start_worker(0)
    cluster.start_worker(1)

    def applied() -> int:
        return int(
            query(
                cluster.db_url,
                f"SELECT count(*) FROM hr_events WHERE employee_number LIKE 'D{tag}%' AND status = 'applied'",
            )[0][0]
        )

    while applied() < n_events // 4:
        time.sleep(0.05)
    at_kill = applied()
    t_kill = time.monotonic()
    cluster.kill(cluster.workers[0])
    say(f"worker 1 killed with {at_kill}/{n_events} joiners applied")
    deadline = time.monotonic() + 600
    while applied() < n_events and time.monotonic() < deadline:
        time.sleep(0.2)
    done = time.monotonic()
    cluster.start_worker(0)
    accounts = query(
        cluster.db_url,
        f"SELECT employee_number, count(*) FROM local_users WHERE employee_number LIKE 'D{tag}%' "
        "GROUP BY employee_number",
    )
    after = query(cluster.db_url, "SELECT count(*) FROM local_users")[0][0]
    stuck = query(
        cluster.db_url,
        "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running') AND kind LIKE 'provisioning%'",
    )[0][0]
    result = {
        "events": n_events,
        "post_seconds": round(posted, 1),
        "applied_at_kill": at_kill,
        "applied": applied(),
        "accounts": len(accounts),
        "employee_numbers_with_two_accounts": sum(1 for _, c in accounts if c > 1),
        "new_directory_accounts": after - before,
        "seconds_from_kill_to_all_applied": round(done - t_kill, 1),
        "provisioning_jobs_left": stuck,
    }
    say(f"worker kill: {result}")
    return result


def pim_jobs_left(db_url: str) -> int:
    return int(
        query(
            db_url,
            "SELECT count(*) FROM jobs WHERE kind LIKE 'pim.%' AND kind <> 'pim.expire' "
            "AND status IN ('pending', 'running')",
        )[0][0]
    )


def drill_elevations(cluster: Cluster) -> dict[str, Any]:
    """50 elevations end within a few seconds; a worker is killed while it removes them."""
    import datetime as dt

    from sqlalchemy import update

    from iam import clock
    from iam.config import load_settings
    from iam.models.jobs import Job
    from iam.services import Services
    from pim import service as pim_service
    from pim.models import ElevationRequest

    members_sql = (
        "SELECT count(*) FROM local_group_members m JOIN local_groups g ON g.id = m.group_id "
        "WHERE g.name LIKE 'Drill PIM %'"
    )
    services = Services(load_settings())
    try:
        ids: list[str] = []
        with services.transaction() as s:
            for i in range(PIM_PEOPLE):
                u = services.directory.find_login(f"pim{i}")
                assert u is not None
                actor = pim_service.Actor(sub=u.id, username=u.username, level="mfa")
                for r in range(PIM_ROLES):
                    req = pim_service.request_elevation(
                        s, services, actor=actor, role=f"r{r}", minutes=60, justification="drill"
                    )
                    ids.append(req.id)
        deadline = time.monotonic() + 600
        while pim_jobs_left(cluster.db_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        granted = query(cluster.db_url, members_sql)[0][0]
        for i in (0, 1):
            cluster.kill(cluster.workers[i])
        start = clock.now() + dt.timedelta(seconds=2)
        with services.transaction() as s:
            for k, rid in enumerate(ids):
                end = start + dt.timedelta(seconds=5 * k / len(ids))
                s.execute(update(ElevationRequest).where(ElevationRequest.id == rid).values(ends_at=end))
                s.execute(
                    update(Job)
                    .where(Job.kind == "pim.expire", Job.payload["request_id"].as_string() == rid)
                    .values(run_at=end)
                )
        cluster.start_worker(0)
        cluster.start_worker(1)

        def removed() -> int:
            sql = "SELECT count(*) FROM pim_requests WHERE removed_at IS NOT NULL"
            return int(query(cluster.db_url, sql)[0][0])

        deadline = time.monotonic() + 600
        while removed() < len(ids) // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        at_kill = removed()
        t_kill = time.monotonic()
        cluster.kill(cluster.workers[0])
        say(f"worker 1 killed with {at_kill}/{len(ids)} elevations removed")
        while removed() < len(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        done = time.monotonic()
        cluster.start_worker(0)
        lags = sorted(
            float(r[0])
            for r in query(
                cluster.db_url,
                "SELECT EXTRACT(EPOCH FROM removed_at - ends_at) FROM pim_requests "
                "WHERE removed_at IS NOT NULL",
            )
        )
        events = query(cluster.db_url, "SELECT count(*) FROM audit_events WHERE event = 'pim.access_removed'")
        result = {
            "elevations": len(ids),
            "memberships_granted": granted,
            "removed_at_kill": at_kill,
            "removed": removed(),
            "removal_audit_events": events[0][0],
            "memberships_left": query(cluster.db_url, members_sql)[0][0],
            "seconds_from_kill_to_all_removed": round(done - t_kill, 1),
            "lag_p50_seconds": round(lags[len(lags) // 2], 2) if lags else None,
            "lag_max_seconds": round(lags[-1], 2) if lags else None,
        }
        say(f"elevations: {result}")
        return result
    finally:
        services.dispose()


def drill_failover(
    cluster: Cluster, pg: Postgres, load: Load, settle: float, promote_after: float
) -> dict[str, Any]:
    time.sleep(settle)
    t_stop = time.monotonic()
    pg.stop_primary()
    say("PostgreSQL primary stopped (immediate)")
    time.sleep(promote_after)
    t_promote = time.monotonic()
    pg.promote_replica()
    say("replica promoted")
    deadline = time.monotonic() + 120
    first_ok: float | None = None
    while time.monotonic() < deadline:
        oks = [o for o in load.between(t_promote, time.monotonic()) if o.ok and o.t0 >= t_stop]
        if len({o.kind for o in oks}) >= 3:  # sign-in, refresh and client credentials all work again
            first_ok = min(o.t1 for o in oks)
            break
        time.sleep(0.1)
    time.sleep(settle)
    ops = load.between(t_stop - 5, time.monotonic())
    last_ok_before = max((o.t1 for o in ops if o.ok and o.t1 <= t_stop), default=t_stop)
    first_ok_after = min((o.t1 for o in ops if o.ok and o.t0 >= t_stop), default=None)
    failed = [o for o in ops if not o.ok]
    readyz = [httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=10).json() for p in cluster.node_ports]
    result = {
        "promote_after_seconds": promote_after,
        "without_service_seconds": round((first_ok_after or time.monotonic()) - last_ok_before, 2),
        "after_promotion_seconds": round((first_ok_after or time.monotonic()) - t_promote, 2),
        "all_three_kinds_back_after_promotion_seconds": round(first_ok - t_promote, 2) if first_ok else None,
        "failed": len(failed),
        "failed_kinds": sorted({f"{o.kind}:{o.detail}" for o in failed}),
        "nodes_restarted": 0,
        "readyz_after": [r["status"] + "/notifications:" + str(r.get("notifications")) for r in readyz],
    }
    say(f"failover: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=4, help="virtual users of the load (threads)")
    ap.add_argument("--events", type=int, default=200, help="HR joiners in the worker drill")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds of load before and after each fault")
    ap.add_argument(
        "--promote-after", type=float, default=2.0, help="seconds between primary stop and promote"
    )
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated drills (client-disable,node-kill,worker-kill,elevations,failover)",
    )
    ap.add_argument("--json", dest="json_out", help="also write the numbers to this file")
    ap.add_argument("--keep", action="store_true", help="keep the drill's directory (logs)")
    args = ap.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or {
        "client-disable",
        "node-kill",
        "worker-kill",
        "elevations",
        "failover",
    }

    base = Path(tempfile.mkdtemp(prefix="iam-drill-"))
    base.chmod(0o755)
    pg = Postgres(base)
    cluster: Cluster | None = None
    load: Load | None = None
    results: dict[str, Any] = {}
    try:
        say(f"PostgreSQL primary :{pg.p1} and streaming replica :{pg.p2} under {base}")
        pg.start()
        cluster = Cluster(base, pg.url)
        write_roles(base)
        cluster.iam("db", "upgrade")
        app = setup_data(cluster, args.users)
        for i in (0, 1):
            cluster.start_node(i)
            cluster.start_worker(i)
        cluster.start_nginx()
        say(
            f"nginx :{cluster.lb_port} → nodes :{cluster.node_ports[0]}, :{cluster.node_ports[1]};"
            " two workers"
        )
        if "client-disable" in only:
            results["client_disable"] = drill_client_disable(cluster, app)
        load = Load(cluster.issuer, app, [f"drill{i}" for i in range(args.users)])
        load.start()
        if "node-kill" in only:
            results["node_kill"] = drill_node_kill(cluster, load, app, args.settle)
        if "worker-kill" in only:
            results["worker_kill"] = drill_worker_kill(cluster, app, args.events)
        if "elevations" in only:
            results["elevations"] = drill_elevations(cluster)
        if "failover" in only:
            results["failover"] = drill_failover(cluster, pg, load, args.settle, args.promote_after)
        load.stop()
        ops = load.ops
        results["load"] = {
            "operations": len(ops),
            "failed": sum(not o.ok for o in ops),
            "by_kind": {
                k: sum(o.kind == k for o in ops) for k in ("sign-in", "refresh", "client-credentials")
            },
            "refresh_chains_lost": load.lost_refresh,
        }
        print(json.dumps(results, indent=2), flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
        return 0
    finally:
        if load is not None:
            load.stop()
        if cluster is not None:
            cluster.stop()
        pg.stop_all()
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
