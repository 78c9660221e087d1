"""Token-endpoint benchmark: our provider (gunicorn) next to npm oidc-provider, with wrk.

For each system, one after the other and alone on the machine, it starts a throwaway instance on
127.0.0.1, waits for its discovery document, registers one confidential client
(client_secret_basic), warms up, then runs wrk for a fixed time per scenario:

  cc       grant_type=client_credentials, scope=api   -> one ES256 JWT access token
  refresh  grant_type=refresh_token with a refresh token never used before (rotated on use)
           -> access token + ID token (ES256) + a new refresh token

and prints tokens/s, p50/p99 latency and errors side by side, with the ratio ours/oidc-provider.
Every process it starts runs in its own process group and is stopped on exit, error or Ctrl-C.

    python bench/run.py [--only ours|oidc-provider] [--scenarios cc,refresh] [--duration 15]
                        [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WRK_DIR = BENCH / "wrk"
OP_DIR = BENCH / "oidc-provider"
HOST = "127.0.0.1"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
API_SCOPE = "api"
SYSTEMS = ("ours", "oidc-provider")
SCENARIOS = {"cc": "client_credentials", "refresh": "refresh"}
TARGET_CC = 1000.0
# Without a client-credentials run to size them by, refresh tokens are minted for this rate.
DEFAULT_REFRESH_RATE_CAP = 5000.0
# Below this many busy cores the machine counts as idle; above NOISY_CORES of CPU used by
# neither the server, its store nor wrk during a run, the run is flagged as disturbed.
IDLE_CORES = 0.15
NOISY_CORES = 0.3

# urllib must never go through a proxy from the environment: everything here is loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """A system could not be measured."""


class Unavailable(BenchError):
    """A system is not installed (yet)."""


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def basic_auth(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
    raw = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def require_local(url: str, what: str) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise BenchError(f"{what} must be on 127.0.0.1, not {host!r} ({url})")


def run(
    cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float, what: str
) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            cwd=cwd,
            timeout=timeout,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what}: no answer within {timeout:.0f} s") from exc
    except OSError as exc:
        raise BenchError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise BenchError(f"{what} failed (exit {proc.returncode}):\n{tail(proc.stderr + proc.stdout)}")
    return proc


class Server:
    """A server in its own process group, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name, self.cmd, self.env, self.cwd, self.log = name, cmd, env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self) -> str:
        try:
            return tail(self.log.read_text(errors="replace"))
        except OSError:
            return ""

    def wait_for_discovery(self, base_url: str, timeout: float) -> dict[str, Any]:
        url = base_url.rstrip("/") + "/.well-known/openid-configuration"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise BenchError(f"{self.name} exited ({code}) before serving:\n{self.log_tail()}")
            try:
                with _OPENER.open(url, timeout=2) as resp:
                    if resp.status == 200:
                        return dict(json.load(resp))
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: no discovery at {url} after {timeout:.0f} s")
            time.sleep(0.25)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the whole group, SIGKILL whatever is left after `grace` seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id

        def signal_group(sig: int) -> bool:
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return False
            return True

        signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)
        # Children (gunicorn or cluster workers) may outlive the leader: wait for the group too.
        while signal_group(0) and time.monotonic() < deadline:
            time.sleep(0.1)
        if signal_group(signal.SIGKILL):
            say(f"{self.name}: killed what was left of process group {pgid}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


class System:
    name = ""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args = args
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server: Server | None = None
        self.token_endpoint = ""
        self.auth = ""
        self.env: dict[str, str] = {}
        self.started = False
        self.client_id = ""
        self.pg_name = ""

    def check(self) -> None:
        """Raise Unavailable if this system cannot run here."""

    def start(self) -> None:
        raise NotImplementedError

    def mint_refresh_tokens(self, count: int, out: Path) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def facts(self) -> dict[str, str]:
        return {}

    def is_store_process(self, pid: int, comm: str, pgid: int) -> bool:
        """Is this a process of the database the system keeps its tokens in?"""
        return False

    def _serve(self, cmd: list[str], env: dict[str, str], cwd: Path, base_url: str) -> None:
        self.server = Server(self.name, cmd, env, cwd, self.workdir / "server.log")
        say(f"{self.name}: starting {' '.join(cmd)}")
        self.server.start()
        discovery = self.server.wait_for_discovery(base_url, timeout=self.args.start_timeout)
        endpoint = str(discovery.get("token_endpoint", ""))
        if not endpoint:
            raise BenchError(f"{self.name}: discovery has no token_endpoint")
        require_local(endpoint, f"{self.name} token endpoint")
        self.token_endpoint = endpoint


class OidcProvider(System):
    """npm oidc-provider 9 as a 2-process cluster sharing a Redis (bench/oidc-provider)."""

    name = "oidc-provider"

    def check(self) -> None:
        if shutil.which("node") is None:
            raise Unavailable("node is not installed")
        if not (OP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
            npm = shutil.which("npm")
            if npm is None:
                raise Unavailable("npm is not installed (needed once for bench/oidc-provider)")
            say("oidc-provider: installing bench/oidc-provider with npm ci")
            run(
                [npm, "ci", "--no-audit", "--no-fund"],
                env=dict(os.environ),
                cwd=OP_DIR,
                timeout=600,
                what="npm ci",
            )
        require_local(self.args.redis_url, "Redis")
        url = urllib.parse.urlsplit(self.args.redis_url)
        try:
            with socket.create_connection((url.hostname or HOST, url.port or 6379), 3) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError as exc:
            raise Unavailable(f"Redis at {self.args.redis_url} does not answer: {exc}") from exc
        if not reply.startswith(b"+PONG"):
            raise Unavailable(f"Redis at {self.args.redis_url} answered {reply!r}")

    def start(self) -> None:
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        client_id = "bench"
        secret = secrets.token_urlsafe(32)
        self.env = {
            **os.environ,
            "PORT": str(port),
            "OP_ISSUER": base_url,
            "OP_CLIENT_ID": client_id,
            "OP_CLIENT_SECRET": secret,
            "OP_REDIS_URL": self.args.redis_url,
            "OP_REDIS_PREFIX": f"oidcbench:{os.getpid()}:{secrets.token_hex(4)}:",
            "OP_WORKERS": str(self.args.workers),
            "NODE_ENV": "production",
        }
        self.started = True
        self._serve(["node", "op.mjs"], self.env, OP_DIR, base_url)
        self.auth = basic_auth(client_id, secret)

    def mint_refresh_tokens(self, count: int, out: Path) -> None:
        run(
            ["node", "tokens.mjs", "mint", str(count), str(out)],
            env=self.env,
            cwd=OP_DIR,
            timeout=900,
            what="oidc-provider: minting refresh tokens",
        )

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.started:
                self.started = False
                try:
                    run(
                        ["node", "tokens.mjs", "purge"],
                        env=self.env,
                        cwd=OP_DIR,
                        timeout=300,
                        what="oidc-provider: purging its Redis keys",
                    )
                except BenchError as exc:
                    say(str(exc))

    def is_store_process(self, pid: int, comm: str, pgid: int) -> bool:
        return comm == "redis-server"

    def facts(self) -> dict[str, str]:
        facts = {}
        with contextlib.suppress(OSError, ValueError):
            pkg = OP_DIR / "node_modules" / "oidc-provider" / "package.json"
            facts["oidc_provider"] = json.loads(pkg.read_text())["version"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node = subprocess.run(
                ["node", "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            facts["node"] = node.stdout.strip()
        return facts


class Ours(System):
    """Our provider: `iam serve` (gunicorn) on a throwaway SQLite or PostgreSQL database."""

    name = "ours"

    def check(self) -> None:
        probe = (
            "import iam.cli, iam.config, iam.services, sso.service as s\n"
            "assert hasattr(s, 'mint_refresh_tokens_for_benchmark'), "
            "'sso.service.mint_refresh_tokens_for_benchmark is missing'\n"
        )
        try:
            run(
                [sys.executable, "-c", probe],
                env=self._base_env(),
                cwd=REPO,
                timeout=120,
                what="ours: import check",
            )
        except BenchError as exc:
            last = str(exc).strip().splitlines()[-1]
            raise Unavailable(
                f"not installed or not ready in {sys.executable} ({last}); "
                "run `pip install -e .` in the project's venv"
            ) from exc

    def _iam(self) -> list[str]:
        script = Path(sys.executable).parent / "iam"
        if script.is_file():
            return [str(script)]
        return [sys.executable, "-c", "import sys; from iam.cli import main; sys.exit(main())"]

    @staticmethod
    def _base_env() -> dict[str, str]:
        # A clean instance: nothing from a developer's IAM_* environment leaks in.
        return {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}

    def _database(self) -> str:
        if self.args.db == "sqlite":
            return f"sqlite:///{self.workdir}/iam.db"
        url = urllib.parse.urlsplit(self.args.db)
        if not url.scheme.startswith("postgresql"):
            raise BenchError("--db must be 'sqlite' or a postgresql+psycopg:// URL")
        require_local(self.args.db, "PostgreSQL")
        self.pg_name = f"iam_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self._psql(f'CREATE DATABASE "{self.pg_name}"')
        netloc = url.netloc or f"postgres@{HOST}"
        return urllib.parse.urlunsplit((url.scheme, netloc, "/" + self.pg_name, url.query, ""))

    def _psql(self, sql: str) -> None:
        url = urllib.parse.urlsplit(self.args.db)
        env = dict(os.environ)
        if url.password:
            env["PGPASSWORD"] = urllib.parse.unquote(url.password)
        cmd = ["psql", "-h", url.hostname or HOST, "-p", str(url.port or 5432)]
        cmd += ["-U", urllib.parse.unquote(url.username or "postgres"), "-d", "postgres"]
        cmd += ["-v", "ON_ERROR_STOP=1", "-qc", sql]
        run(cmd, env=env, cwd=self.workdir, timeout=120, what=f"psql {sql}")

    def start(self) -> None:
        port = free_port()
        base_url = f"http://{HOST}:{port}"
        self.env = {
            **self._base_env(),
            "IAM_DEV_MODE": "true",
            "IAM_VAR_DIR": str(self.workdir),
            "IAM_DATABASE__URL": self._database(),
            "IAM_ISSUER": base_url,
        }
        iam = self._iam()
        cwd = self.workdir  # not the repo: a stray ./iam.toml must not configure the instance
        run(iam + ["db", "upgrade"], env=self.env, cwd=cwd, timeout=300, what="iam db upgrade")
        add = [
            "client", "add", "--name", "bench",
            "--grant-type", "client_credentials",
            "--grant-type", "refresh_token",
            "--grant-type", "authorization_code",
            "--redirect-uri", f"http://{HOST}/cb",
            "--scope", "openid", "--scope", API_SCOPE,
            "--token-endpoint-auth-method", "client_secret_basic",
            "--json",
        ]  # fmt: skip
        out = run(iam + add, env=self.env, cwd=cwd, timeout=120, what="iam client add").stdout
        try:
            client = json.loads(out[out.index("{") : out.rindex("}") + 1])
            self.client_id = str(client["client_id"])
            secret = str(client["client_secret"])
        except (ValueError, KeyError) as exc:
            raise BenchError(f"iam client add --json printed no client:\n{tail(out)}") from exc
        serve = ["serve", "--host", HOST, "--port", str(port), "--workers", str(self.args.workers)]
        if self.args.server_threads > 1:
            serve += ["--threads", str(self.args.server_threads)]
        self._serve(iam + serve, self.env, cwd, base_url)
        self.auth = basic_auth(self.client_id, secret)

    def mint_refresh_tokens(self, count: int, out: Path) -> None:
        cmd = [sys.executable, str(BENCH / "mint_refresh.py"), "--client-id", self.client_id]
        cmd += ["--count", str(count), "--out", str(out)]
        proc = run(cmd, env=self.env, cwd=self.workdir, timeout=900, what="ours: minting")
        say(f"ours: {proc.stdout.strip()}")

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.pg_name:
                name, self.pg_name = self.pg_name, ""
                try:
                    self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except BenchError as exc:
                    say(str(exc))

    def is_store_process(self, pid: int, comm: str, pgid: int) -> bool:
        # The backends serving our throwaway database show its name on their command line.
        if not self.pg_name or comm != "postgres":
            return False
        try:
            return self.pg_name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def facts(self) -> dict[str, str]:
        return {"python": platform.python_version(), "db": self.args.db}


@dataclass
class Result:
    system: str
    scenario: str
    tokens_per_s: float = 0.0
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    non200: int = 0
    duration_s: float = 0.0
    exhausted: bool = False
    first_error: str = ""
    failed: str = ""
    # Where the CPU went during the measured run, in cores (2.0 = both cores all the time).
    server_cores: float = 0.0
    store_cores: float = 0.0  # Redis for oidc-provider, PostgreSQL for ours on --db postgresql
    wrk_cores: float = 0.0
    other_cores: float = 0.0
    tokens_per_server_core_s: float = 0.0
    runs: list[float] = field(default_factory=list)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return (total - idle) / CLK_TCK, total / CLK_TCK


def cpu_ticks(select: Callable[[int, str, int], bool]) -> dict[int, int]:
    """CPU ticks used so far by each live process for which select(pid, comm, pgid) holds."""
    ticks = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(text[: text.index(" ")])
        comm = text[text.index("(") + 1 : text.rindex(")")]
        rest = text[text.rindex(")") + 2 :].split()
        if select(pid, comm, int(rest[2])):
            ticks[pid] = int(rest[11]) + int(rest[12])
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds between two cpu_ticks() snapshots (a process born in between counts fully)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLK_TCK


def foreign_busy_cores(system: System, seconds: float = 1.0) -> float:
    """Cores kept busy by anything but the system under test (its server and its store)."""
    pgid = system.server.proc.pid if system.server and system.server.proc else -1

    def own(pid: int, comm: str, group: int) -> bool:
        return group == pgid or system.is_store_process(pid, comm, group)

    own0, (busy0, total0) = cpu_ticks(own), machine_cpu_seconds()
    time.sleep(seconds)
    own1, (busy1, total1) = cpu_ticks(own), machine_cpu_seconds()
    cpus = os.cpu_count() or 1
    busy = cpus * (busy1 - busy0) / max(total1 - total0, 1e-9)
    return max(busy - cpu_seconds_between(own0, own1) / seconds, 0.0)


def wait_until_idle(system: System, max_wait: float) -> None:
    """Before a measured run: wait (bounded) until the rest of the machine is quiet."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    busy = foreign_busy_cores(system)
    if busy <= IDLE_CORES:
        return
    say(f"waiting up to {max_wait:.0f} s for other processes to calm down ({busy:.2f} cores)")
    while time.monotonic() < deadline:
        busy = foreign_busy_cores(system)
        if busy <= IDLE_CORES:
            return
    say(f"other processes still use {busy:.2f} cores: this run will be low and noisy")


def run_wrk(
    system: System,
    scenario: str,
    seconds: int,
    args: argparse.Namespace,
    token_file: Path | None = None,
) -> dict[str, Any]:
    script = WRK_DIR / f"{SCENARIOS[scenario]}.lua"
    env = {
        **os.environ,
        "BENCH_AUTH": system.auth,
        "BENCH_SCOPE": API_SCOPE,
        "BENCH_THREADS": str(args.threads),
    }
    if token_file is not None:
        env["BENCH_TOKEN_FILE"] = str(token_file)
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s"]
    cmd += ["--timeout", "10s", "-s", str(script), system.token_endpoint]
    pgid = system.server.proc.pid if system.server and system.server.proc else -1

    def in_server(pid: int, comm: str, group: int) -> bool:
        return group == pgid

    busy0, total0 = machine_cpu_seconds()
    server0, store0 = cpu_ticks(in_server), cpu_ticks(system.is_store_process)
    wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = run(cmd, env=env, cwd=BENCH, timeout=seconds + 60, what=f"wrk {scenario}")
    wall = time.monotonic() - started
    wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server1, store1 = cpu_ticks(in_server), cpu_ticks(system.is_store_process)
    busy1, total1 = machine_cpu_seconds()
    cpus = os.cpu_count() or 1
    busy = cpus * (busy1 - busy0) / max(total1 - total0, 1e-9)
    server = cpu_seconds_between(server0, server1) / wall
    store = cpu_seconds_between(store0, store1) / wall
    wrk = (wrk1.ru_utime + wrk1.ru_stime - wrk0.ru_utime - wrk0.ru_stime) / wall
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = dict(json.loads(line.removeprefix("BENCH_RESULT ")))
            other = max(busy - server - store - wrk, 0.0)
            raw["cpu"] = {"server": server, "store": store, "wrk": wrk, "other": other}
            return raw
    raise BenchError(f"wrk printed no BENCH_RESULT line:\n{tail(proc.stdout + proc.stderr)}")


def to_result(system: str, scenario: str, raw: dict[str, Any]) -> Result:
    return Result(
        system=system,
        scenario=SCENARIOS[scenario],
        tokens_per_s=float(raw["ok_rps"]),
        requests_per_s=float(raw["rps"]),
        p50_ms=float(raw["p50_ms"]),
        p90_ms=float(raw["p90_ms"]),
        p99_ms=float(raw["p99_ms"]),
        max_ms=float(raw["max_ms"]),
        requests=int(raw["requests"]),
        errors=int(raw["non200"]) + int(raw["bad_body"]) + int(raw["socket_errors"]),
        non200=int(raw["non200"]),
        duration_s=float(raw["duration_s"]),
        exhausted=bool(raw["exhausted"]),
        first_error=str(raw["first_error"]),
        server_cores=round(raw["cpu"]["server"], 2),
        store_cores=round(raw["cpu"]["store"], 2),
        wrk_cores=round(raw["cpu"]["wrk"], 2),
        other_cores=round(raw["cpu"]["other"], 2),
        tokens_per_server_core_s=round(
            float(raw["ok_rps"]) / raw["cpu"]["server"] if raw["cpu"]["server"] > 0 else 0.0, 1
        ),
    )


def warm_up(system: System, scenario: str, args: argparse.Namespace, token_file: Path | None = None) -> None:
    if args.warmup <= 0:
        return
    raw = run_wrk(system, scenario, args.warmup, args, token_file)
    say(
        f"{system.name} {scenario}: warm-up {raw['ok_rps']:.0f} tokens/s, "
        f"{raw['requests'] - raw['ok']} errors"
    )
    if raw["ok"] == 0:
        raise BenchError(f"warm-up: no successful response; first: {raw['first_error']}")
    time.sleep(1)


def summarize(runs: list[Result], pick: str) -> Result:
    """One run stands for all: the median rate (lower middle for an even count), or the run
    least disturbed by other processes. All rates are kept, errors are added up."""
    if pick == "quietest":
        chosen = min(runs, key=lambda r: r.other_cores)
    else:
        chosen = sorted(runs, key=lambda r: r.tokens_per_s)[(len(runs) - 1) // 2]
    chosen.runs = [round(r.tokens_per_s, 1) for r in runs]
    chosen.errors = sum(r.errors for r in runs)
    chosen.non200 = sum(r.non200 for r in runs)
    chosen.exhausted = any(r.exhausted for r in runs)
    chosen.first_error = next((r.first_error for r in runs if r.first_error), "")
    return chosen


def measure_cc(system: System, args: argparse.Namespace) -> Result:
    warm_up(system, "cc", args)
    runs = []
    for i in range(args.repeat):
        wait_until_idle(system, args.wait_idle)
        runs.append(to_result(system.name, "cc", run_wrk(system, "cc", args.duration, args)))
        print_one(runs[-1], f"run {i + 1}/{args.repeat}" if args.repeat > 1 else "")
    return summarize(runs, args.pick)


def measure_refresh(system: System, args: argparse.Namespace, cc_rate: float | None) -> Result:
    # Every request needs a refresh token never used before: mint more than the runs can use.
    cap = args.refresh_rate_cap or (1.25 * cc_rate if cc_rate else DEFAULT_REFRESH_RATE_CAP)
    spare = args.connections + 16
    n_warm = math.ceil(cap * args.warmup) + spare if args.warmup > 0 else 0
    n_main = math.ceil(cap * args.duration) + spare
    total = n_warm + n_main * args.repeat
    all_file = system.workdir / "refresh-tokens.txt"
    say(f"{system.name}: minting {total} refresh tokens (for up to {cap:.0f}/s)")
    started = time.monotonic()
    system.mint_refresh_tokens(total, all_file)
    tokens = all_file.read_text().split()
    if len(tokens) != total or len(set(tokens)) != len(tokens):
        raise BenchError(f"expected {total} distinct refresh tokens, got {len(set(tokens))}")
    say(f"{system.name}: minted in {time.monotonic() - started:.1f} s")

    def token_file(name: str, part: list[str]) -> Path:
        path = system.workdir / f"refresh-{name}.txt"
        path.write_text("".join(f"{t}\n" for t in part))
        return path

    warm_up(system, "refresh", args, token_file("warmup", tokens[:n_warm]))
    runs = []
    for i in range(args.repeat):
        wait_until_idle(system, args.wait_idle)
        part = tokens[n_warm + i * n_main : n_warm + (i + 1) * n_main]
        raw = run_wrk(system, "refresh", args.duration, args, token_file(f"run{i + 1}", part))
        runs.append(to_result(system.name, "refresh", raw))
        print_one(runs[-1], f"run {i + 1}/{args.repeat}" if args.repeat > 1 else "")
        if runs[-1].exhausted:
            say(
                f"{system.name} refresh: ran out of refresh tokens after "
                f"{runs[-1].duration_s:.1f} s; the rate is over that time "
                "(raise --refresh-rate-cap)"
            )
    return summarize(runs, args.pick)


def measure(system: System, args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    try:
        system.start()
        cc_rate = None
        for scenario in args.scenarios:
            try:
                if scenario == "cc":
                    result = measure_cc(system, args)
                    if result.errors == 0:
                        cc_rate = result.tokens_per_s
                else:
                    result = measure_refresh(system, args, cc_rate)
            except BenchError as exc:
                say(f"{system.name} {scenario}: FAILED: {exc}")
                result = Result(system.name, SCENARIOS[scenario], failed=str(exc))
            results.append(result)
            if args.repeat > 1:
                print_one(result, args.pick)
            time.sleep(1)
    except BenchError as exc:
        say(f"{system.name}: FAILED: {exc}")
        done = {r.scenario for r in results}
        results += [
            Result(system.name, SCENARIOS[s], failed=str(exc))
            for s in args.scenarios
            if SCENARIOS[s] not in done
        ]
    finally:
        system.stop()
    return results


def print_one(r: Result, label: str = "") -> None:
    if r.failed:
        return
    label = f" ({label})" if label else ""
    say(
        f"{r.system} {r.scenario}{label}: {r.tokens_per_s:.0f} tokens/s, p50 {r.p50_ms:.1f} ms, "
        f"p99 {r.p99_ms:.1f} ms, {r.errors} errors ({r.requests} requests); CPU cores: "
        f"server {r.server_cores:.2f}, store {r.store_cores:.2f}, wrk {r.wrk_cores:.2f}, "
        f"other {r.other_cores:.2f}"
    )
    if r.first_error:
        say(f"  first error: {r.first_error}")


def ratios(results: list[Result]) -> dict[str, float]:
    by = {(r.system, r.scenario): r for r in results if not r.failed}
    out = {}
    for scenario in SCENARIOS.values():
        ours, theirs = by.get(("ours", scenario)), by.get(("oidc-provider", scenario))
        if ours and theirs and theirs.tokens_per_s > 0:
            out[scenario] = ours.tokens_per_s / theirs.tokens_per_s
    return out


def print_table(results: list[Result], skipped: dict[str, str]) -> None:
    header = (
        f"{'system':<14} {'scenario':<19} {'tokens/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'srv cores':>9} {'tok/core-s':>10} {'store':>5} {'other':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.failed:
            print(f"{r.system:<14} {r.scenario:<19} {'FAILED':>9}  {r.failed.splitlines()[0]}")
            continue
        note = "  (ran out of refresh tokens)" if r.exhausted else ""
        if r.other_cores > NOISY_CORES:
            note += "  (disturbed: other processes used CPU)"
        if len(r.runs) > 1:
            note += "  runs: " + ", ".join(f"{x:.0f}" for x in r.runs)
        print(
            f"{r.system:<14} {r.scenario:<19} {r.tokens_per_s:>9.0f} {r.p50_ms:>7.1f} "
            f"{r.p99_ms:>7.1f} {r.errors:>6} {r.server_cores:>9.2f} "
            f"{r.tokens_per_server_core_s:>10.0f} {r.store_cores:>5.2f} {r.other_cores:>5.2f}{note}"
        )
    for name, why in skipped.items():
        print(f"{name:<14} {'-':<19} {'SKIPPED':>9}  {why}")
    for scenario, ratio in ratios(results).items():
        print(f"ratio ours/oidc-provider, {scenario} tokens/s: {ratio:.2f}")
    for r in results:
        if r.system == "ours" and r.scenario == "client_credentials" and not r.failed:
            verdict = "met" if r.tokens_per_s >= TARGET_CC else "NOT met"
            print(f"target >= {TARGET_CC:.0f} client-credentials tokens/s here: {verdict}")


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10, check=False)
        facts["wrk"] = (wrk.stdout + wrk.stderr).strip().splitlines()[0]
    return facts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Client-credentials and refresh tokens/s: ours vs npm oidc-provider (wrk).",
    )
    p.add_argument("--only", choices=SYSTEMS, help="measure one system only")
    p.add_argument("--scenarios", default="cc,refresh", help="comma list of: cc, refresh")
    p.add_argument("--duration", type=int, default=15, help="seconds of wrk per scenario")
    p.add_argument("--warmup", type=int, default=5, help="seconds of warm-up per scenario")
    p.add_argument("--repeat", type=int, default=1, help="measured runs per scenario; the median is shown")
    p.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    p.add_argument("--threads", type=int, default=1, help="wrk -t (default 1: leave CPU)")
    p.add_argument("--workers", type=int, default=2, help="server processes of each system")
    p.add_argument(
        "--server-threads",
        type=int,
        default=1,
        help="ours: threads per gunicorn worker (1 = sync workers, the default of `iam serve`)",
    )
    p.add_argument(
        "--db",
        default="sqlite",
        help="ours: 'sqlite' (default) or postgresql+psycopg://postgres@127.0.0.1 "
        "(a throwaway database is created there and dropped afterwards)",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="for oidc-provider")
    p.add_argument(
        "--refresh-rate-cap",
        type=float,
        default=0.0,
        help="mint refresh tokens for this many per second (default: 1.25 x the measured "
        f"client-credentials rate, or {DEFAULT_REFRESH_RATE_CAP:.0f})",
    )
    p.add_argument(
        "--pick",
        choices=("median", "quietest"),
        default="median",
        help="with --repeat: show the median run, or the one least disturbed by other processes",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before each measured run, wait up to this many seconds for an idle machine",
    )
    p.add_argument("--start-timeout", type=float, default=90.0, help="seconds to wait for a server")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, tokens)")
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        p.error(f"--scenarios: unknown {unknown or 'empty'}; use cc and/or refresh")
    args.scenarios = list(dict.fromkeys(scenarios))
    if not (0 < args.duration <= 600 and 0 <= args.warmup <= 120 and 1 <= args.repeat <= 10):
        p.error("--duration must be 1..600 s, --warmup 0..120 s and --repeat 1..10")
    if args.threads < 1 or args.connections < args.threads:
        p.error("--connections must be at least --threads (>= 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        say("wrk is not installed: apt-get install -y wrk")
        return 2

    # SIGTERM and SIGINT (also when started in the background, where SIGINT is inherited as
    # ignored) raise KeyboardInterrupt: the finally blocks stop every server we started.
    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    facts = machine_facts()
    say(f"{facts.get('cpu', '?')}, {facts['cpus']} CPUs; {facts.get('wrk', '')}")

    workdir = Path(tempfile.mkdtemp(prefix="iam-bench-"))
    results: list[Result] = []
    skipped: dict[str, str] = {}
    systems: dict[str, dict[str, str]] = {}
    try:
        for cls in (Ours, OidcProvider):
            if args.only and cls.name != args.only:
                continue
            system = cls(args, workdir)
            try:
                system.check()
            except Unavailable as exc:
                say(f"{cls.name}: SKIPPED: {exc}")
                skipped[cls.name] = str(exc)
                continue
            systems[cls.name] = system.facts()
            results += measure(system, args)
    except KeyboardInterrupt:
        say("interrupted; servers stopped")
        return 130
    finally:
        if args.keep:
            say(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print()
    print_table(results, skipped)
    if args.json:
        report = {
            "machine": facts,
            "systems": systems,
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "repeat": args.repeat,
                "pick": args.pick,
                "wrk": f"-t{args.threads} -c{args.connections}",
                "workers": args.workers,
                "db": args.db,
            },
            "results": [asdict(r) for r in results],
            "ratios_ours_over_oidc_provider": ratios(results),
            "skipped": skipped,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        say(f"results written to {args.json}")
    bad = any(r.failed or r.errors for r in results)
    if bad or (args.only and args.only in skipped) or not results:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
