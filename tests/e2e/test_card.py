"""Card sign-in end to end, through both deployments of deploy/ (R-MFA-1):

- gunicorn terminating TLS itself (``iam serve --certfile … --ca-certs … --client-certs
  optional``), the app reading ``environ["gunicorn.socket"]``;
- nginx in front, configured by deploy/nginx/iam.conf as shipped (``ssl_verify_client
  optional_no_ca``, ``error_page 495 = @iam``), forwarding ``$ssl_client_escaped_cert`` and
  ``$ssl_client_verify`` to a plain ``iam serve``; believed only from the proxy's address.

Chromium (Playwright ``client_certificates``) signs in with a card through both; a forged
header from another address is ignored; a key held on a soft smart card (SoftHSM2, PKCS#11)
signs in through nginx with curl. The test PKI, CRL server and OCSP responder run in this
process (tests/sso/x509/pki.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DEMO_PASSWORD, _iam_command, _signal_group, free_port, need
from tests.sso.x509.pki import CardPki, Responder, make_pki

pytestmark = pytest.mark.e2e

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HSM_PIN = "1234"


@dataclass
class CardDeployment:
    dir: Path
    pki: CardPki
    responder: Responder
    files: dict[str, Path]
    env: dict[str, str]
    direct_port: int
    backend_port: int
    nginx_port: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def direct(self) -> str:
        return f"https://127.0.0.1:{self.direct_port}"

    @property
    def nginx(self) -> str:
        return f"https://127.0.0.1:{self.nginx_port}"

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def cli(self, *args: str, issuer: str | None = None) -> str:
        env = dict(self.env)
        if issuer:
            env["IAM_ISSUER"] = issuer
        out = subprocess.run(  # noqa: S603
            [*_iam_command(), *args],
            env=env,
            cwd=self.dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    def audit(self, event: str) -> list[dict[str, Any]]:
        rows = json.loads(self.cli("audit", "list", "--limit", "500", "--json"))
        return [r for r in rows if r["event"] == event]

    def spawn(self, args: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with (self.dir / log).open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603
                args,
                env=env or self.env,
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.dir.glob("*.log"))
        )


SHIPPED_NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "iam.conf"

NGINX_MAIN = """
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/nginx-access.log;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
{server}
}}
"""


def nginx_conf(d: Path, port: int, pki: str, backend: int) -> str:
    """deploy/nginx/iam.conf as shipped, with this test's addresses and files put in."""
    server = SHIPPED_NGINX_CONF.read_text()
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("/etc/iam/tls/server.pem", f"{pki}/server.pem"),
        ("/etc/iam/tls/server.key", f"{pki}/server.key"),
        ("/etc/iam/ca/bundle.pem", f"{pki}/tls-ca.pem"),
        ("http://127.0.0.1:5000", f"http://127.0.0.1:{backend}"),
    ):
        assert old in server, f"deploy/nginx/iam.conf no longer contains {old!r}"
        server = server.replace(old, new)
    return NGINX_MAIN.format(d=d, server=server)


def _wait(url: str, deploy: CardDeployment, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in deploy.procs:
            if p.poll() is not None:
                pytest.fail(f"a process exited during start-up\n{deploy.logs()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, verify=False, timeout=2).status_code == 200:  # noqa: S501
                return
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer\n{deploy.logs()}")


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardDeployment]:
    if not shutil.which("nginx"):
        need("nginx is not installed (apt-get install nginx-light)")
    d = tmp_path_factory.mktemp("card-e2e")
    pki, responder = make_pki()
    pki.user("hsm", cn="Soft Card Holder", hardware=True)
    files = pki.write(d / "pki")
    direct_port, backend_port, nginx_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAM_")}
    env.update(
        {
            "IAM_DEV_MODE": "true",
            "IAM_VAR_DIR": str(d),
            "IAM_DATABASE__URL": f"sqlite:///{d}/iam.db",
            "IAM_ISSUER": f"https://127.0.0.1:{nginx_port}",
            "IAM_DIRECTORY__KIND": "local",
            "IAM_X509__ENABLED": "true",
            "IAM_X509__TRUST_DIR": str(files["ca"]),
            "IAM_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
            "PYTHONUNBUFFERED": "1",
            "XDG_RUNTIME_DIR": str(d),
        }
    )
    dep = CardDeployment(d, pki, responder, files, env, direct_port, backend_port, nginx_port)
    dep.cli("db", "upgrade")
    dep.cli("demo", "--password", DEMO_PASSWORD)
    dep.cli("card", "bind", "alice", str(files["good"]))
    dep.cli("card", "bind", "admin", str(files["hsm"]))
    pki_dir = str(d / "pki")
    try:
        # deployment (a): gunicorn terminates TLS and asks for an optional client certificate
        direct_env = {**env, "IAM_ISSUER": dep.direct}
        dep.spawn(
            [
                *_iam_command(), "serve", "--host", "127.0.0.1", "--port", str(direct_port), "--workers", "1",
                "--certfile", f"{pki_dir}/server.pem", "--keyfile", f"{pki_dir}/server.key",
                "--ca-certs", f"{pki_dir}/tls-ca.pem", "--client-certs", "optional",
            ],
            "direct.log",
            direct_env,
        )  # fmt: skip
        # deployment (b): nginx in front of a plain backend
        dep.spawn(
            [*_iam_command(), "serve", "--host", "127.0.0.1", "--port", str(backend_port), "--workers", "1"],
            "backend.log",
        )
        (d / "tmp").mkdir()
        conf = d / "nginx.conf"
        conf.write_text(nginx_conf(d, nginx_port, pki_dir, backend_port))
        dep.spawn(["nginx", "-c", str(conf), "-p", str(d), "-g", "daemon off;"], "nginx.log")
        _wait(f"{dep.direct}/healthz", dep)
        _wait(f"{dep.backend}/healthz", dep)
        _wait(f"{dep.nginx}/healthz", dep)
        yield dep
    finally:
        for proc in dep.procs:
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in dep.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        responder.stop()


def _context(browser: Any, origin: str, deploy: CardDeployment, card: str | None) -> Any:
    certs = (
        [
            {
                "origin": origin,
                "certPath": str(deploy.files[card]),
                "keyPath": str(deploy.files[card].with_suffix(".key")),
            }
        ]
        if card
        else []
    )
    ctx = browser.new_context(ignore_https_errors=True, client_certificates=certs, locale="en-GB")
    ctx.set_default_timeout(15_000)
    return ctx


def _card_sign_in(browser: Any, origin: str, deploy: CardDeployment, card: str) -> Any:
    ctx = _context(browser, origin, deploy, card)
    page = ctx.new_page()
    page.goto(f"{origin}/card/login")
    assert "Card User" in page.inner_text("#card-subject") or page.inner_text("#card-subject")
    page.click("#card-login button")
    page.wait_for_load_state()
    return ctx, page


@pytest.mark.parametrize("route", ["direct", "nginx"])
def test_chromium_signs_in_with_a_card(browser: Any, deploy: CardDeployment, route: str) -> None:
    origin = deploy.direct if route == "direct" else deploy.nginx
    ctx, page = _card_sign_in(browser, origin, deploy, "good")
    try:
        assert page.url.endswith("/account"), page.content()[:2000]
        assert "Signed in as Alice" in page.inner_text("h1")
    finally:
        ctx.close()
    ok = [e for e in deploy.audit("login.succeeded") if e["details"].get("amr") == ["sc"]]
    assert ok, deploy.logs()
    # no card in the browser: the page says so and nobody is signed in
    ctx = _context(browser, origin, deploy, None)
    try:
        page = ctx.new_page()
        page.goto(f"{origin}/card/login")
        assert page.locator("#no-card").is_visible()
    finally:
        ctx.close()


def _serial(deploy: CardDeployment, card: str) -> str:
    return format(deploy.pki.issued[card].cert.serial_number, "x")


def _refused(deploy: CardDeployment, card: str) -> list[dict[str, Any]]:
    """``card.login_refused`` events of this card (read through `iam audit list`)."""
    return [
        e for e in deploy.audit("card.login_refused") if e["details"].get("serial") == _serial(deploy, card)
    ]


def _refused_on_the_card_page(browser: Any, origin: str, deploy: CardDeployment, card: str) -> str:
    """Open the card page with ``card`` in the browser, press "Sign in"; the error shown."""
    ctx = _context(browser, origin, deploy, card)
    try:
        page = ctx.new_page()
        page.goto(f"{origin}/card/login")
        assert page.locator("#card-subject").is_visible(), page.content()[:2000]
        page.click("#card-login button")
        page.wait_for_selector("#form-error")
        assert not page.url.endswith("/account")
        return str(page.inner_text("#form-error"))
    finally:
        ctx.close()


#: card → (what the provider's page says, details.reason, nginx's $ssl_client_verify)
REFUSALS = {
    "expired": ("The certificate has expired.", "expired", "FAILED:certificate has expired"),
    "not_yet_valid": ("The certificate is not valid yet.", "not_yet_valid", "FAILED:certificate is not yet valid"),
    "wrong_eku": ("not meant for signing in", "wrong_eku", "FAILED:unsuitable certificate purpose"),
    "server_eku": ("not meant for signing in", "wrong_eku", "FAILED:unsuitable certificate purpose"),
    "no_signature": ("does not allow signing in", "wrong_key_usage", "FAILED:unsuitable certificate purpose"),
    "unmapped": ("No account is linked to this certificate.", "no_account", "SUCCESS"),
    "foreign": (
        "not issued by a trusted authority", "untrusted", "FAILED:unable to verify the first certificate"
    ),
}  # fmt: skip
#: what gunicorn's TLS handshake lets through to the provider (Python's ssl cannot be told to
#: skip the chain or the purpose; see test_handshake_refusals_under_gunicorn_tls_are_audited)
DIRECT_REACHES_PROVIDER = ("expired", "not_yet_valid", "unmapped")


@pytest.mark.parametrize(
    ("route", "card"),
    [("nginx", card) for card in REFUSALS] + [("direct", card) for card in DIRECT_REACHES_PROVIDER],
)
def test_a_card_the_tls_layer_dislikes_gets_the_providers_reason(
    browser: Any, deploy: CardDeployment, route: str, card: str
) -> None:
    """Issue 19: expired, not yet valid, wrong purpose, foreign CA — the person reads the reason
    on the provider's card page and the auditor finds card.login_refused with it."""
    origin = deploy.direct if route == "direct" else deploy.nginx
    before = len(_refused(deploy, card))
    message, reason, nginx_verdict = REFUSALS[card]
    assert message in _refused_on_the_card_page(browser, origin, deploy, card)
    events = _refused(deploy, card)
    assert len(events) == before + 1, deploy.logs()
    event = events[-1]
    assert event["details"]["reason"] == reason
    assert event["outcome"] == "failure"
    assert event["ip"] == "127.0.0.1"
    if route == "nginx":  # nginx's own verdict travels along, from the trusted proxy only
        assert event["details"]["proxy_verify"] == nginx_verdict
    else:
        assert "proxy_verify" not in event["details"]


def _new_card(deploy: CardDeployment, name: str, **kw: Any) -> str:
    """A card issued now (no server process has a cached revocation answer for it)."""
    card = deploy.pki.user(name, upn="card.user@example.test", **kw)
    (deploy.dir / "pki" / f"{name}.pem").write_bytes(card.pem)
    (deploy.dir / "pki" / f"{name}.key").write_bytes(card.key_pem)
    deploy.files[name] = deploy.dir / "pki" / f"{name}.pem"
    return name


@pytest.mark.parametrize("method", ["ocsp", "crl"])
@pytest.mark.parametrize("route", ["direct", "nginx"])
def test_chromium_refuses_a_revoked_card(
    browser: Any, deploy: CardDeployment, route: str, method: str
) -> None:
    """Revoked, found by OCSP, or by the CRL when the OCSP responder does not answer."""
    origin = deploy.direct if route == "direct" else deploy.nginx
    responder = deploy.responder
    card = _new_card(deploy, f"revoked_{route}_{method}", revoked=True)
    ocsp_before = responder.ocsp_requests
    responder.ocsp_down = method == "crl"
    try:
        assert "The certificate has been revoked." in _refused_on_the_card_page(browser, origin, deploy, card)
    finally:
        responder.ocsp_down = False
    assert responder.ocsp_requests > ocsp_before  # asked first (ocsp_then_crl)
    # with OCSP answering 503 only the CRL can have said "revoked" (else: revocation_unknown)
    events = _refused(deploy, card)
    assert len(events) == 1
    assert events[0]["details"]["reason"] == "revoked"
    if route == "nginx":
        assert events[0]["details"]["proxy_verify"] == "SUCCESS"  # nginx checks no revocation


def _tls_refusals(deploy: CardDeployment) -> list[dict[str, Any]]:
    return deploy.audit("card.tls_refused")


def _with_card(deploy: CardDeployment, card: str) -> ssl.SSLContext:
    """A TLS client presenting ``card`` (the server's certificate is not checked here)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(deploy.files[card], deploy.files[card].with_suffix(".key"))
    return ctx


@pytest.mark.parametrize(
    ("card", "reason", "message"),
    [
        ("wrong_eku", "wrong_purpose", "unsuitable certificate purpose"),
        ("server_eku", "wrong_purpose", "unsuitable certificate purpose"),
        ("no_signature", "wrong_purpose", "unsuitable certificate purpose"),
        ("foreign", "untrusted", "unable to get local issuer certificate"),
    ],
)
def test_handshake_refusals_under_gunicorn_tls_are_audited(
    deploy: CardDeployment, card: str, reason: str, message: str
) -> None:
    """What Python's TLS stack still refuses never reaches a page; the auditor finds it."""
    before = len(_tls_refusals(deploy))
    with pytest.raises(httpx.TransportError), httpx.Client(verify=_with_card(deploy, card), timeout=10) as c:
        c.get(f"{deploy.direct}/card/login")
    deadline = time.monotonic() + 15
    while True:
        events = _tls_refusals(deploy)
        if len(events) > before or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(events) == before + 1, deploy.logs()
    event = events[-1]
    assert event["details"]["reason"] == reason
    assert event["details"]["tls_message"] == message
    assert event["details"]["peer"] == "127.0.0.1" and event["ip"] == "127.0.0.1"
    assert event["outcome"] == "failure"
    # the good card is still accepted by the same handshake
    with httpx.Client(verify=_with_card(deploy, "good"), timeout=10) as c:
        assert 'id="card-subject"' in c.get(f"{deploy.direct}/card/login").text


def test_bind_a_card_in_the_browser_then_sign_in_with_it(browser: Any, deploy: CardDeployment) -> None:
    ctx = _context(browser, deploy.nginx, deploy, "email_only")
    try:
        page = ctx.new_page()
        page.goto(f"{deploy.nginx}/login")
        page.fill("#username", "bob")
        page.fill("#password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/account$"))
        page.goto(f"{deploy.nginx}/card/bind")
        page.fill("#card-bind #password", DEMO_PASSWORD)
        page.click("#card-bind button")
        page.wait_for_selector("#card-bindings")
    finally:
        ctx.close()
    ctx, page = _card_sign_in(browser, deploy.nginx, deploy, "email_only")
    try:
        assert "Signed in as Bob" in page.inner_text("h1")
    finally:
        ctx.close()


def test_forged_header_from_an_untrusted_address_is_ignored(deploy: CardDeployment) -> None:
    """The backend listens on 127.0.0.1; a caller from 127.0.0.2 is not the proxy."""
    forged = {
        "X-SSL-Client-Cert": urllib.parse.quote(deploy.files["good"].read_text(), safe=""),
        "X-SSL-Client-Verify": "SUCCESS",
    }
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, base_url=deploy.backend) as c:
        page = c.get("/card/login", headers=forged)
        assert 'id="no-card"' in page.text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/login").text)
        assert token
        resp = c.post("/card/login", data={"csrf_token": token.group(1)}, headers=forged)
        assert resp.status_code == 400
        assert c.get("/account").status_code == 302  # not signed in
    ignored = deploy.audit("card.untrusted_header_ignored")
    assert ignored and ignored[-1]["details"]["peer"] == "127.0.0.2"
    # the same header from the proxy's address is believed (and validated)
    with httpx.Client(base_url=deploy.backend) as c:
        assert 'id="card-subject"' in c.get("/card/login", headers=forged).text
    # sent to nginx by a client without a card: nginx replaces it (always set, empty here)
    with httpx.Client(base_url=deploy.nginx, verify=False) as c:  # noqa: S501
        assert 'id="no-card"' in c.get("/card/login", headers=forged).text


def test_forged_header_on_a_connection_gunicorn_terminates_is_ignored_and_recorded(
    deploy: CardDeployment,
) -> None:
    """gunicorn terminating TLS has no proxy in front: a certificate header is the client's own
    invention, whatever its address (127.0.0.1 is a trusted proxy here), and is recorded."""
    forged = {"X-SSL-Client-Cert": urllib.parse.quote(deploy.files["good"].read_text(), safe="")}
    before = [
        e for e in deploy.audit("card.untrusted_header_ignored") if e["details"].get("tls_terminated_here")
    ]
    with httpx.Client(base_url=deploy.direct, verify=False) as c:  # noqa: S501 — no client certificate
        assert 'id="no-card"' in c.get("/card/login", headers=forged).text
        assert c.get("/account").status_code == 302
    after = [
        e for e in deploy.audit("card.untrusted_header_ignored") if e["details"].get("tls_terminated_here")
    ]
    assert len(after) == len(before) + 1
    assert after[-1]["details"]["peer"] == "127.0.0.1"


def _softhsm(deploy: CardDeployment) -> dict[str, str]:
    for tool in ("softhsm2-util", "pkcs11-tool"):
        if not shutil.which(tool):
            need(f"{tool} is not installed (apt-get install softhsm2 opensc)")
    if not Path(SOFTHSM_MODULE).exists() or not list(Path("/usr/lib").glob("*/engines-3/pkcs11.so")):
        need(
            "the SoftHSM2 module or the OpenSSL PKCS#11 engine is missing (softhsm2, libengine-pkcs11-openssl)"
        )
    hsm = deploy.dir / "hsm"
    (hsm / "tokens").mkdir(parents=True, exist_ok=True)
    conf = hsm / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {hsm}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}

    def run(*args: str) -> None:
        out = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
        assert out.returncode == 0, out.stderr + out.stdout

    run(
        "softhsm2-util", "--init-token", "--free", "--label", "card", "--so-pin", "12345678", "--pin", HSM_PIN
    )
    key_der = hsm / "key.der"
    run(
        "openssl",
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        str(deploy.files["hsm"].with_suffix(".key")),
        "-outform",
        "DER",
        "-out",
        str(key_der),
    )
    run(
        "pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "card", "--login", "--pin", HSM_PIN,
        "--write-object", str(key_der), "--type", "privkey", "--id", "01", "--label", "holder",
    )  # fmt: skip
    cert_der = hsm / "cert.der"
    run("openssl", "x509", "-in", str(deploy.files["hsm"]), "-outform", "DER", "-out", str(cert_der))
    run(
        "pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "card", "--login", "--pin", HSM_PIN,
        "--write-object", str(cert_der), "--type", "cert", "--id", "01", "--label", "holder",
    )  # fmt: skip
    key_der.unlink()  # from here on the key exists only inside the token
    deploy.files["hsm"].with_suffix(".key").unlink()
    return env


def test_soft_smart_card_signs_in_through_nginx_with_curl(deploy: CardDeployment) -> None:
    env = _softhsm(deploy)
    jar = deploy.dir / "curl-cookies.txt"
    base = [
        "curl", "-sS", "--cacert", str(deploy.dir / "pki" / "tls-ca.pem"), "-b", str(jar), "-c", str(jar),
        "--engine", "pkcs11", "--key-type", "ENG",
        "--key", f"pkcs11:token=card;object=holder;type=private;pin-value={HSM_PIN}",
        "--cert", str(deploy.files["hsm"]),
    ]  # fmt: skip

    def curl(*args: str) -> str:
        out = subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
        assert out.returncode == 0, out.stderr
        return out.stdout

    page = curl(f"{deploy.nginx}/card/login")
    assert "Soft Card Holder" in page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token, page
    status = curl(
        "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-e", f"{deploy.nginx}/card/login",
        "-d", f"csrf_token={token.group(1)}", f"{deploy.nginx}/card/login",
    )  # fmt: skip
    assert status.startswith("302 ") and status.endswith("/account"), status
    assert "Signed in as" in curl(f"{deploy.nginx}/account")
    ok = [e for e in deploy.audit("login.succeeded") if e["details"].get("amr") == ["sc", "hwk"]]
    assert ok, "a card whose CA states a hardware-bound key signs in with amr sc + hwk"


@pytest.mark.samba
def test_chromium_card_signs_in_the_ad_user_named_by_its_upn(
    browser: Any, deploy: CardDeployment, request: pytest.FixtureRequest
) -> None:
    """The real Samba AD DC behind gunicorn-terminated TLS: the card's UPN names the account."""
    from iam.directory.ad import ActiveDirectory
    from iam.directory.base import NewUser
    from tests.e2e.conftest import directory_env, samba_fixture, unique

    samba_ad = samba_fixture(request, "samba_ad")
    ou = samba_fixture(request, "ad_ou")
    settings = samba_ad.model_copy(update={"users_ou": ou, "groups_ou": ou})
    directory = ActiveDirectory(settings)
    try:
        name = unique("card")
        upn = f"{name}@example.test"
        user = directory.create_user(
            NewUser(username=name, upn=upn, given_name="Kartica", family_name="Čitač", enabled=True)
        )
    finally:
        directory.close()
    card = deploy.pki.user(name, upn=upn, hardware=True)
    (deploy.dir / "pki" / f"{name}.pem").write_bytes(card.pem)
    (deploy.dir / "pki" / f"{name}.key").write_bytes(card.key_pem)
    deploy.files[name] = deploy.dir / "pki" / f"{name}.pem"
    port = free_port()
    origin = f"https://127.0.0.1:{port}"
    env = {**deploy.env, **directory_env(settings), "IAM_ISSUER": origin}
    pki_dir = str(deploy.dir / "pki")
    proc = deploy.spawn(
        [
            *_iam_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--certfile", f"{pki_dir}/server.pem", "--keyfile", f"{pki_dir}/server.key",
            "--ca-certs", f"{pki_dir}/tls-ca.pem", "--client-certs", "optional",
        ],
        "ad.log",
        env,
    )  # fmt: skip
    try:
        _wait(f"{origin}/healthz", deploy)
        ctx, page = _card_sign_in(browser, origin, deploy, name)
        try:
            assert page.url.endswith("/account"), page.content()[:2000]
            assert "Kartica Čitač" in page.inner_text("h1")
        finally:
            ctx.close()
        ok = [e for e in deploy.audit("login.succeeded") if e["subject"] == user.id]
        assert ok and ok[-1]["details"]["amr"] == ["sc", "hwk"]
    finally:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
        deploy.procs.remove(proc)
