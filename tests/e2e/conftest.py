"""End-to-end fixtures: the provider as real processes (``iam serve`` with two gunicorn workers
and ``iam worker``) on a free port with its own database (SQLite, or PostgreSQL: a throwaway
database of its own on 127.0.0.1:5432), on the built-in directory or on the real Samba AD DC; an independent relying party (``node/rp.mjs``, panva/openid-client
v6); a receiver for back-channel logout POSTs; Chromium through Playwright.

With ``CI=true`` a missing component (node, Chromium, Samba) fails the test; elsewhere the test
is skipped with the reason. Missing ``node/node_modules`` always fails: the Makefile runs
``npm ci`` in ``tests/e2e/node`` before pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from iam.config import DirectorySettings, Settings, load_settings

CI = os.environ.get("CI", "").lower() == "true"
HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DEMO_PASSWORD = "Demo-Passw0rd!"
DEMO_CLIENT_ID = "demo-app"
START_TIMEOUT = 40.0
STOP_TIMEOUT = 10.0


def need(reason: str) -> NoReturn:
    """A real component is missing: fail on CI, skip on a developer machine."""
    if CI:
        pytest.fail(f"required test component missing on CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _iam_command() -> list[str]:
    """The ``iam`` console script of the interpreter running pytest (the project's venv)."""
    exe = Path(sys.executable).with_name("iam")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from iam.cli import main; main()"]


def directory_env(settings: DirectorySettings) -> dict[str, str]:
    """``IAM_DIRECTORY__*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"IAM_DIRECTORY__{name.upper()}"] = str(value)
    return env


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path.name} not written)"
    return "\n".join(text.splitlines()[-lines:])


# -- the provider -------------------------------------------------------------------------------
@dataclass
class LiveProvider:
    """One running provider: ``iam serve`` (2 workers) plus ``iam worker``, sharing var_dir."""

    kind: str
    port: int
    var_dir: Path
    env: dict[str, str]
    db_url: str = ""
    """Default: the provider's SQLite file under ``var_dir``."""
    directory_settings: DirectorySettings | None = None
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    _services: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.db_url:
            self.db_url = f"sqlite:///{self.var_dir}/iam.db"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> str:
        return "postgres" if self.db_url.startswith("postgresql") else "sqlite"

    @property
    def server_log(self) -> Path:
        return self.var_dir / "server.log"

    @property
    def worker_log(self) -> Path:
        return self.var_dir / "worker.log"

    # -- the CLI, as an administrator would use it ---------------------------------------------
    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*_iam_command(), *args],
            input=stdin,
            env=self.env,
            cwd=self.var_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"`iam {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def cli_json(self, *args: str, stdin: str | None = None) -> Any:
        out = self.cli(*args, "--json", stdin=stdin).stdout
        return json.loads(out)

    def add_client(
        self,
        *,
        name: str = "e2e rp",
        redirect_uris: list[str],
        post_logout_redirect_uris: Sequence[str] = (),
        backchannel_logout_uri: str | None = None,
        extra: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Register a client with ``iam client add --json``; returns it with its secret."""
        args = ["client", "add", "--name", name]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        for uri in post_logout_redirect_uris:
            args += ["--post-logout-redirect-uri", uri]
        if backchannel_logout_uri:
            args += ["--backchannel-logout-uri", backchannel_logout_uri]
        data: dict[str, Any] = self.cli_json(*args, *extra)
        return data

    def add_rp_client(self, **kwargs: Any) -> dict[str, Any]:
        """A confidential client for ``rp.mjs`` (nothing listens on its redirect URIs: the
        RP stops at the redirect and never loads them)."""
        base = f"http://127.0.0.1:{free_port()}"
        client = self.add_client(
            redirect_uris=[f"{base}/cb"], post_logout_redirect_uris=[f"{base}/bye"], **kwargs
        )
        client["redirect_uri"] = f"{base}/cb"
        client["post_logout_redirect_uri"] = f"{base}/bye"
        return client

    # -- in-process access to the same database (and directory) --------------------------------
    def settings(self) -> Settings:
        directory: dict[str, Any] = {"kind": "local"}
        if self.directory_settings is not None:
            directory = self.directory_settings.model_dump()
            directory["bind_password"] = self.directory_settings.bind_password.get_secret_value()
        return load_settings(
            dev_mode=True,
            var_dir=self.var_dir,
            issuer=self.issuer,
            database={"url": self.db_url},
            directory=directory,
        )

    def services(self) -> Any:
        """:class:`iam.services.Services` on the provider's database, directory and dev secrets."""
        if self._services is None:
            from iam.services import Services

            self._services = Services(self.settings())
        return self._services

    # -- logs ----------------------------------------------------------------------------------
    def log_mark(self) -> dict[Path, int]:
        return {p: (p.stat().st_size if p.exists() else 0) for p in (self.server_log, self.worker_log)}

    def logs_since(self, mark: dict[Path, int]) -> str:
        parts = []
        for path, offset in mark.items():
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offset)
                    parts.append(f.read().decode(errors="replace"))
        return "\n".join(parts)

    def diagnostics(self) -> str:
        return (
            f"--- {self.kind} provider server.log (tail) ---\n{_tail(self.server_log)}\n"
            f"--- worker.log (tail) ---\n{_tail(self.worker_log, 30)}"
        )

    # -- life cycle ----------------------------------------------------------------------------
    def _spawn(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [*_iam_command(), *args],
                env=self.env,
                cwd=self.var_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown kills master + workers
            )

    def start(self) -> None:
        self.cli("db", "upgrade")
        if self.kind == "local":
            self.cli("demo", "--password", DEMO_PASSWORD)  # alice, bob, admin + demo-app
        else:
            # the demo application's client without seeding demo users into the shared DC
            self.cli(
                "client", "add", "--name", "Demo application", "--client-id", DEMO_CLIENT_ID,
                "--public", "--redirect-uri", f"{self.issuer}/demo/callback",
                "--post-logout-redirect-uri", f"{self.issuer}/demo/", "--agency-code", "DEMO-001",
            )  # fmt: skip
        self.server = self._spawn(
            "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2",
            log=self.server_log,
        )  # fmt: skip
        self.worker = self._spawn("worker", log=self.worker_log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for proc, what in ((self.server, "iam serve"), (self.worker, "iam worker")):
                if proc.poll() is not None:
                    diag = self.diagnostics()
                    self.stop()
                    pytest.fail(f"{what} exited with {proc.returncode} during start-up\n{diag}")
            try:
                with urllib.request.urlopen(f"{self.issuer}/healthz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                diag = self.diagnostics()
                self.stop()
                pytest.fail(f"the provider did not answer /healthz within {START_TIMEOUT:.0f} s\n{diag}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.server, self.worker))

    def stop(self) -> None:
        """SIGTERM each process group, SIGKILL what is left after STOP_TIMEOUT seconds."""
        procs = [p for p in (self.worker, self.server) if p is not None]
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # gunicorn workers may outlive their master for a moment: wait for the whole group
            while _signal_group(proc.pid, 0) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _signal_group(proc.pid, 0):
                _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._services is not None:
            self._services.dispose()
            self._services = None


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal the process group we started (start_new_session: its id is the leader's pid)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _provider_env(
    var_dir: Path, port: int, directory: DirectorySettings | None, db_url: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
    env.update(
        {
            "IAM_DEV_MODE": "true",
            "IAM_VAR_DIR": str(var_dir),
            "IAM_DATABASE__URL": db_url or f"sqlite:///{var_dir}/iam.db",
            "IAM_ISSUER": f"http://127.0.0.1:{port}",
            "IAM_WORKER__POLL_INTERVAL": "0.2",
            "IAM_WORKER__BACKOFF_BASE": "1",
            "PYTHONUNBUFFERED": "1",
            # gunicorn's control socket defaults to ~/.gunicorn/gunicorn.ctl, shared by every
            # instance on the machine; keep each test provider's own
            "XDG_RUNTIME_DIR": str(var_dir),
        }
    )
    if directory is not None:
        env.update(directory_env(directory))
        # AD-backed providers ask AD on every refresh: the e2e tests disable accounts in AD and
        # expect the next refresh refused at once. The default 30 s reuse of AD's answer (and
        # that a disable through the provider stays immediate) is tested with a moved clock in
        # tests/sso/test_code_flow.py.
        env["IAM_TOKENS__DIRECTORY_CACHE_SECONDS"] = "0"
    else:
        env["IAM_DIRECTORY__KIND"] = "local"
    return env


class ProviderPool:
    """Providers started on first use and shared by the whole session (one per directory and
    storage)."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._providers: dict[str, LiveProvider] = {}

    def get(
        self,
        kind: str,
        directory: DirectorySettings | None = None,
        *,
        postgres: Callable[[], str] | None = None,
    ) -> LiveProvider:
        """The ``kind`` provider (``local`` or ``ad``), on SQLite in its own folder or, given
        ``postgres`` (which makes a database and returns its URL), on PostgreSQL."""
        name = kind if postgres is None else f"{kind}+postgres"
        provider = self._providers.get(name)
        if provider is None:
            var_dir = self._tmp.mktemp(f"provider-{name}")
            port = free_port()
            url = postgres() if postgres is not None else f"sqlite:///{var_dir}/iam.db"
            provider = LiveProvider(
                kind=kind,
                port=port,
                var_dir=var_dir,
                env=_provider_env(var_dir, port, directory, url),
                db_url=url,
                directory_settings=directory,
            )
            provider.start()
            self._providers[name] = provider
        return provider

    def close(self) -> None:
        for provider in self._providers.values():
            provider.stop()
        self._providers.clear()


@pytest.fixture(scope="session")
def _provider_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProviderPool]:
    pool = ProviderPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def _e2e_pg(_provider_pool: ProviderPool) -> Iterator[Callable[[], str]]:
    """Makes a throwaway PostgreSQL database per end-to-end provider (not the one of the
    ``services`` fixture, whose tables are emptied before every test); all dropped at the end."""
    from sqlalchemy import create_engine, text

    from tests.conftest import PG_ADMIN_URL, _pg_reachable

    if not _pg_reachable():
        need("PostgreSQL is not running on 127.0.0.1:5432")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def create() -> str:
        name = f"iam_e2e_{os.getpid()}_{secrets.token_hex(3)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    try:
        yield create
    finally:
        _provider_pool.close()  # the providers stop before their databases go
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def live_provider(request: pytest.FixtureRequest, _provider_pool: ProviderPool) -> Iterator[LiveProvider]:
    """The running provider; ``local`` (built-in directory, demo users) unless parametrised
    indirectly with ``"ad"`` (the real Samba AD DC from the ``samba_ad`` fixture). Both run on
    SQLite; ``"local+postgres"`` and ``"ad+postgres"`` run the same processes on PostgreSQL.

    After the test, the provider's logs of the test must hold no traceback.
    """
    param = getattr(request, "param", "local")
    kind, _, storage = param.partition("+")
    if kind not in ("local", "ad") or storage not in ("", "postgres"):
        raise ValueError(f"unknown provider {param!r}")
    directory: DirectorySettings | None = None
    if kind == "ad":
        directory = samba_fixture(request, "samba_ad")
    postgres = request.getfixturevalue("_e2e_pg") if storage else None
    provider = _provider_pool.get(kind, directory, postgres=postgres)
    if not provider.alive():
        pytest.fail(f"the {kind} provider is no longer running\n{provider.diagnostics()}")
    mark = provider.log_mark()
    yield provider
    for proc, what in ((provider.server, "iam serve"), (provider.worker, "iam worker")):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what} died during the test (exit {proc.returncode})\n{provider.diagnostics()}")
    new = provider.logs_since(mark)
    if "Traceback" in new:
        pytest.fail(f"the provider logged a traceback during the test:\n{new[-6000:]}")


# -- the independent relying party (Node, openid-client v6) ------------------------------------
@dataclass
class NodeRP:
    node: str

    def run(
        self,
        provider: LiveProvider,
        client: dict[str, Any],
        *,
        username: str,
        password: str,
        mode: str = "full",
        env: dict[str, str] | None = None,
        expect_ok: bool = True,
    ) -> dict[str, Any]:
        """Run ``rp.mjs MODE``; return its JSON. With ``expect_ok`` a failure fails the test
        with the RP's report and the provider's log."""
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("RP_")}
        child_env.update(
            {
                "RP_ISSUER": provider.issuer,
                "RP_CLIENT_ID": client["client_id"],
                "RP_CLIENT_SECRET": client.get("client_secret") or "",
                "RP_REDIRECT_URI": client["redirect_uri"],
                "RP_POST_LOGOUT_REDIRECT_URI": client["post_logout_redirect_uri"],
                "RP_USERNAME": username,
                "RP_PASSWORD": password,
                **(env or {}),
            }
        )
        proc = subprocess.run(
            [self.node, str(NODE_DIR / "rp.mjs"), mode],
            env=child_env,
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        try:
            result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            pytest.fail(
                f"rp.mjs {mode} printed no JSON (exit {proc.returncode})\nstdout:\n{proc.stdout[-3000:]}\n"
                f"stderr:\n{proc.stderr[-3000:]}\n{provider.diagnostics()}"
            )
        result["exit_code"] = proc.returncode
        if expect_ok and (proc.returncode != 0 or not result.get("ok")):
            pytest.fail(
                f"rp.mjs {mode} failed (exit {proc.returncode}): {result.get('error')}\n"
                f"report: {json.dumps(result, indent=1)[-4000:]}\nstderr:\n{proc.stderr[-2000:]}\n"
                f"{provider.diagnostics()}"
            )
        return result


@pytest.fixture(scope="session")
def node_rp() -> NodeRP:
    node = shutil.which("node")
    if node is None:
        need("node (Node.js >= 20) is not installed")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < 20:
        need(f"node >= 20 is needed for openid-client v6, found {version or 'an unknown version'}")
    if not (NODE_DIR / "node_modules" / "openid-client" / "package.json").is_file():
        pytest.fail(
            f"{NODE_DIR / 'node_modules'} is missing or incomplete: run `npm ci` in tests/e2e/node "
            "(the Makefile does this before pytest)"
        )
    return NodeRP(node)


# -- back-channel logout receiver ----------------------------------------------------------------
@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]


class BackchannelReceiver:
    """A stdlib HTTP server on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self) -> None:
        self.posts: list[Received] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                item = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, parse_qs(body))
                with receiver._cond:
                    receiver.posts.append(item)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="bcl-receiver", daemon=True)
        self._thread.start()

    def url(self, path: str = "/backchannel-logout") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 20.0) -> Received:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.posts:
                    if predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no matching back-channel POST within {timeout:.0f} s; got {self.posts!r}")
                self._cond.wait(left)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def backchannel_receiver() -> Iterator[BackchannelReceiver]:
    receiver = BackchannelReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


# -- the browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser build)."""
    if not Path(CHROMIUM).exists():
        need(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright Python package is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own browser context (no cookies from other tests)."""
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(15_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


def samba_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """A fixture of the Samba plugin (tests/samba.py): ``samba_ad``, ``samba_dc`` or
    ``ad_directory``; skipped (failed with ``CI=true``) when the plugin is not loaded."""
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        need(f"the {name} fixture is not available (tests/samba.py is not loaded)")


def unique(prefix: str) -> str:
    """A name no other test run uses (AD names are domain-wide)."""
    return f"{prefix}{secrets.token_hex(3)}"
