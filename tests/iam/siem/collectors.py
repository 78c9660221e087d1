"""Real collectors for the SIEM tests: Debian's rsyslog (imtcp + gnutls, RFC 5425) and a local
HTTPS server taking JSON lines, both behind a test CA made here with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


@dataclass(frozen=True)
class CollectorTls:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def make_ca(folder: Path, host: str = "localhost") -> CollectorTls:
    """A CA and a server certificate for ``host`` (and 127.0.0.1), as PEM files in ``folder``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iam test SIEM CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iam-siem-client")]))
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    out = CollectorTls(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
    )
    out.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    out.client_key.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out.key.chmod(0o600)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONF = """
global(
  workDirectory="{work}"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="{ca}"
  DefaultNetstreamDriverCertFile="{cert}"
  DefaultNetstreamDriverKeyFile="{key}"
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%msgid% %structured-data%\\n")
action(type="omfile" file="{out}" template="raw")
"""


@dataclass
class Rsyslog:
    """One rsyslogd listening with TLS on 127.0.0.1:``port``, writing what it receives to ``out``."""

    folder: Path
    tls: CollectorTls
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.folder / "received.log"

    def start(self) -> None:
        work = self.folder / "work"
        work.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "rsyslog.conf"
        conf.write_text(
            CONF.format(
                work=work, ca=self.tls.ca, cert=self.tls.cert, key=self.tls.key, port=self.port, out=self.out
            )
        )
        self.proc = subprocess.Popen(  # noqa: S603 — our own config file
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.folder / "rsyslogd.pid")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "rsyslogd.err", "ab"),  # noqa: SIM115 — closed with the process
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rsyslogd exited: " + (self.folder / "rsyslogd.err").read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        """Stop it as an administrator would (SIGTERM: it writes what it has taken)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []


class _Collector(http.server.BaseHTTPRequestHandler):
    server: HttpsCollector

    def do_POST(self) -> None:  # noqa: N802 — the stdlib's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.down:
            self.send_response(503)
            self.end_headers()
            return
        self.server.batches.append((dict(self.headers), body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class HttpsCollector(http.server.ThreadingHTTPServer):
    """A local HTTPS endpoint that keeps each POSTed body; ``down`` makes it answer 503."""

    def __init__(self, tls: CollectorTls, *, require_client_cert: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Collector)
        self.batches: list[tuple[dict[str, str], bytes]] = []
        self.down = False
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        if require_client_cert:  # mutual TLS: only clients with a certificate of the test CA
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(str(tls.ca))
        self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server_address[1]}/ingest"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def rsyslog_available() -> bool:
    return os.access(RSYSLOGD, os.X_OK) and Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
