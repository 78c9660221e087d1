"""Complete sign-ins per second: authorization request → login form → password → code → token.

A running ``iam serve`` (gunicorn, like bench/run.py's) on the built-in directory or on the
Samba AD DC; C browsers (threads spread over P client processes, so the client is not held to
one core by Python's GIL), each a cookie-keeping stdlib HTTP client (a browser's session), sign
in again and again as users of their own (every sign-in: GET /authorize → 302 /login, GET
/login (form with CSRF token), POST /login (password checked by the directory: argon2id for the
built-in directory, an LDAP bind for AD), the redirects back to /authorize and to the client's
redirect URI with the code, then POST /token with the code and the PKCE verifier, Basic auth).
Each sign-in starts with a fresh cookie jar (a new browser session), so none is answered from an
existing single sign-on session.

Prints sign-ins/s, latency p50/p99 of a whole sign-in and per step, and the server's CPU per
sign-in (its process group, from /proc), which stays meaningful when the machine is busy.

    .venv/bin/python bench/signin_bench.py --directory builtin --duration 20
    .venv/bin/python bench/signin_bench.py --directory samba --clients 8 --json out.json
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
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import run as harness  # noqa: E402 — bench/run.py: servers, process groups, /proc sampling

PASSWORD = "Bench-Sign1n-Passw0rd"
REDIRECT = f"http://{harness.HOST}/cb"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')

MAKE_USERS = """
import json, sys
from iam.config import load_settings
from iam.directory.base import NewUser
from iam.services import Services
services = Services(load_settings())
names = []
for i in range(int(sys.argv[1])):
    name = f"{sys.argv[2]}{i}"
    services.directory.create_user(NewUser(username=name, given_name="Bench", family_name=f"User {i}",
        email=f"{name}@example.test", enabled=True, password=sys.argv[3], must_change=False))
    names.append(name)
print(json.dumps(names))
"""


class OursSignIn(harness.Ours):
    """bench/run.py's instance of ours, optionally on the Samba DC."""

    def __init__(self, args: argparse.Namespace, workdir: Path, directory_env: dict[str, str]) -> None:
        super().__init__(args, workdir)
        self.directory_env = directory_env

    def _base_env(self) -> dict[str, str]:  # type: ignore[override]
        return {**harness.Ours._base_env(), **self.directory_env}

    def make_users(self, count: int, prefix: str) -> list[str]:
        cmd = [sys.executable, "-c", MAKE_USERS, str(count), prefix, PASSWORD]
        out = harness.run(cmd, env=self.env, cwd=self.workdir, timeout=600, what="creating users").stdout
        return list(json.loads(out.strip().splitlines()[-1]))


def is_dc(pid: int, comm: str, group: int) -> bool:
    """A process of the Samba AD DC (its command lines start with "samba")."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"samba")
    except OSError:
        return False


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


STEPS = ("authorize", "form", "password", "code", "token")


class Browser:
    """A fresh browser session: a cookie jar and plain HTTP/1.1 requests (stdlib, little CPU).

    The benchmark's own CPU is spent on the same two cores as the server and the DC, so the client
    is as light as it can be: no redirect following, no cookie policy beyond name=value (the
    server's cookies are all host-only, path "/"), one connection per request (gunicorn's sync
    workers close every connection anyway).
    """

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or harness.HOST, parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        import http.client

        send = dict(headers or {})
        if self.cookies:
            send["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = urlencode(form) if form is not None else None
        if body is not None:
            send["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=send)
            resp = conn.getresponse()
            text = resp.read().decode()
            for cookie in resp.headers.get_all("Set-Cookie") or ():
                name, _, rest = cookie.partition("=")
                value = rest.split(";", 1)[0]
                if value and "max-age=0" not in cookie.lower():
                    self.cookies[name.strip()] = value
                else:
                    self.cookies.pop(name.strip(), None)
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
        finally:
            conn.close()


def sign_in(base: str, client_id: str, auth: str, username: str) -> dict[str, float]:
    """One complete sign-in in a fresh browser session; the seconds each step took."""
    took: dict[str, float] = {}
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(8)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": state,
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    web = Browser(base)
    t = time.perf_counter()
    status, headers, _ = web.request("GET", f"/authorize?{query}")
    took["authorize"] = time.perf_counter() - t
    if status not in (302, 303) or not headers.get("location", "").endswith("/login"):
        raise RuntimeError(f"/authorize answered {status}, not the login page")
    t = time.perf_counter()
    status, _, page = web.request("GET", "/login")
    took["form"] = time.perf_counter() - t
    m = CSRF.search(page)
    if m is None:
        raise RuntimeError(f"no CSRF token on the login page ({status})")
    t = time.perf_counter()
    path = "/login"
    status, headers, _ = web.request(
        "POST", path, form={"username": username, "password": PASSWORD, "csrf_token": m.group(1)}
    )
    took["password"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(10):
        if status not in (302, 303):
            raise RuntimeError(f"sign-in stopped at {path}: HTTP {status}")
        location = headers["location"]
        if location.startswith(REDIRECT):
            break
        parts = urlsplit(location)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        status, headers, _ = web.request("GET", path)
    else:
        raise RuntimeError("too many redirects")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if params.get("state") != state or "code" not in params:
        raise RuntimeError(f"no code for the client: {params.get('error')}")
    took["code"] = time.perf_counter() - t
    t = time.perf_counter()
    status, _, body = web.request(
        "POST",
        "/token",
        form={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers={"Authorization": auth},
    )
    took["token"] = time.perf_counter() - t
    if status != 200 or "id_token" not in json.loads(body):
        raise RuntimeError(f"token endpoint answered {status}")
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else 0.0


def samba_env(ou: str) -> dict[str, str]:
    from tests.samba import _start

    dc = _start()
    s = dc.settings
    env = {
        "IAM_DIRECTORY__KIND": "ad",
        "IAM_DIRECTORY__URL": s.url,
        "IAM_DIRECTORY__BIND_DN": s.bind_dn,
        "IAM_DIRECTORY__BIND_PASSWORD": s.bind_password.get_secret_value(),
        "IAM_DIRECTORY__BASE_DN": s.base_dn,
        "IAM_DIRECTORY__CA_FILE": s.ca_file,
        "IAM_DIRECTORY__USERS_OU": ou,
        "IAM_DIRECTORY__GROUPS_OU": ou,
    }

    def add(conn: Any) -> None:
        assert conn.add(ou, ["top", "organizationalUnit"]), conn.result

    dc.admin(add)
    return env


def drop_ou(ou: str) -> None:
    from tests.samba import _start

    try:
        _start().delete_tree(ou)
    except Exception as exc:  # noqa: BLE001 — report and go on: the DC sweeps old test OUs too
        print(f"could not delete {ou}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--directory", choices=("builtin", "samba"), default="builtin")
    ap.add_argument("--clients", type=int, default=24, help="parallel browsers (threads, over --processes)")
    ap.add_argument(
        "--processes", type=int, default=4, help="client processes the browsers are spread over (default 4)"
    )
    ap.add_argument("--users", type=int, default=0, help="users to sign in as (default: 2 per client)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of measured sign-ins")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of sign-ins not counted")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument(
        "--db", default="sqlite", help="sqlite, or a postgresql+psycopg://user@host server (as run.py)"
    )
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args(argv)
    run_args = harness.parse_args(["--only", "ours", "--workers", str(args.workers), "--db", args.db])

    workdir = Path(tempfile.mkdtemp(prefix="iam-signin-"))
    ou = f"OU=signin-{secrets.token_hex(3)},DC=example,DC=test"
    directory_env = samba_env(ou) if args.directory == "samba" else {}
    system = OursSignIn(run_args, workdir, directory_env)
    try:
        system.start()
        base = system.token_endpoint.rsplit("/token", 1)[0]
        users = system.make_users(args.users or 2 * args.clients, f"si{secrets.token_hex(2)}")
        return measure(args, system, base, users)
    finally:
        system.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if args.directory == "samba":
            drop_ou(ou)


def browsers(
    args: argparse.Namespace,
    base: str,
    client_id: str,
    auth: str,
    users: list[str],
    first: int,
    threads: int,
    ctl: Any,
) -> None:
    """One browser process: `threads` browsers signing in until told to stop; sends back what it counted."""
    lock = threading.Lock()
    samples: list[dict[str, float]] = []
    errors: list[str] = []
    stop = threading.Event()

    def browser(i: int) -> None:
        n = 0
        while not stop.is_set():
            name = users[(i + n * args.clients) % len(users)]
            n += 1
            t = time.perf_counter()
            try:
                took = sign_in(base, client_id, auth, name)
            except Exception as exc:  # noqa: BLE001 — counted and shown, the run goes on
                if ctl["counting"].value:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                continue
            took["total"] = time.perf_counter() - t
            if ctl["counting"].value:
                with lock:
                    samples.append(took)

    pool = [threading.Thread(target=browser, args=(first + i,), daemon=True) for i in range(threads)]
    for th in pool:
        th.start()
    ctl["stop"].wait()
    with lock:
        ctl["results"].put((list(samples), list(errors)))
    stop.set()
    for th in pool:
        th.join(60)


def measure(args: argparse.Namespace, system: OursSignIn, base: str, users: list[str]) -> int:
    import multiprocessing

    pgid = system.server.proc.pid if system.server and system.server.proc else -1
    mp = multiprocessing.get_context("fork")
    ctl = {"counting": mp.Value("b", 0), "stop": mp.Event(), "results": mp.Queue()}
    processes = max(1, min(args.processes, args.clients))
    procs = []
    for p in range(processes):
        first = p * args.clients // processes
        threads = (p + 1) * args.clients // processes - first
        work = (args, base, system.client_id, system.auth, users, first, threads, ctl)
        procs.append(mp.Process(target=browsers, args=work, daemon=True))
    for proc in procs:
        proc.start()
    pids = {proc.pid for proc in procs}

    def is_browser(pid: int, comm: str, group: int) -> bool:
        return pid in pids

    time.sleep(args.warmup)
    own = harness.cpu_ticks(lambda pid, comm, group: group == pgid)
    dc0 = harness.cpu_ticks(is_dc)
    browsers0 = harness.cpu_ticks(is_browser)
    busy0, _ = harness.machine_cpu_seconds()
    ctl["counting"].value = 1
    t0 = time.perf_counter()
    time.sleep(args.duration)
    ctl["counting"].value = 0
    wall = time.perf_counter() - t0
    server_cpu = harness.cpu_seconds_between(own, harness.cpu_ticks(lambda pid, comm, group: group == pgid))
    dc_cpu = harness.cpu_seconds_between(dc0, harness.cpu_ticks(is_dc))
    browsers_cpu = harness.cpu_seconds_between(browsers0, harness.cpu_ticks(is_browser))
    busy1, _ = harness.machine_cpu_seconds()
    ctl["stop"].set()
    samples: list[dict[str, float]] = []
    errors: list[str] = []
    for _ in procs:
        got_samples, got_errors = ctl["results"].get(timeout=120)
        samples += got_samples
        errors += got_errors
    for proc in procs:
        proc.join(60)
    count, failed = len(samples), len(errors)
    rate = count / wall
    load = os.getloadavg()
    print(
        f"sign-ins ({args.directory} directory, {args.db.split('+')[0].split(':')[0]}, "
        f"{args.clients} browsers in {processes} processes, "
        f"{args.workers} workers): "
        f"{rate:.1f}/s, {failed} failed; server CPU {1000 * server_cpu / max(count, 1):.1f} ms per sign-in "
        f"({server_cpu / wall:.2f} cores; whole machine {(busy1 - busy0) / wall:.2f} cores busy; "
        f"load average {load[0]:.1f})"
    )
    per = 1000 / max(count, 1)
    print(
        f"  CPU per sign-in: server {server_cpu * per:.1f} ms, Samba DC {dc_cpu * per:.1f} ms, "
        f"the {args.clients} browsers ({processes} processes) {browsers_cpu * per:.1f} ms"
    )
    if errors:
        print(f"  first failure: {errors[0]}")
    result: dict[str, Any] = {
        "directory": args.directory,
        "signins_per_s": round(rate, 1),
        "failed": failed,
        "server_cpu_ms_per_signin": round(1000 * server_cpu / max(count, 1), 1),
        "dc_cpu_ms_per_signin": round(dc_cpu * per, 1),
        "browsers_cpu_ms_per_signin": round(browsers_cpu * per, 1),
        "load_average": load,
        "steps_ms": {},
    }
    for step in (*STEPS, "total"):
        values = [s[step] * 1000 for s in samples if step in s]
        if values:
            p50, p99 = statistics.median(values), pct(values, 0.99)
            result["steps_ms"][step] = {"p50": round(p50, 1), "p99": round(p99, 1)}
            print(f"  {step:<10} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    print(json.dumps({"signins_per_s": result["signins_per_s"], "directory": args.directory}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if count and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
