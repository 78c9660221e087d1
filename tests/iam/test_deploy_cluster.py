"""deploy/nginx/iam-cluster.conf (several nodes behind nginx) is a configuration nginx accepts,
with the retry snippet it includes; deploy/drill.py runs the same upstream settings live."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import need

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sso.example.gov")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem, keyfile = tmp / "server.pem", tmp / "server.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pem, keyfile


def test_cluster_conf_is_valid_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        need("nginx is not installed")
    pem, key = _self_signed(tmp_path)
    conf = (DEPLOY / "nginx" / "iam-cluster.conf").read_text()
    conf = (
        conf.replace("/etc/iam/tls/server.pem", str(pem))
        .replace("/etc/iam/tls/server.key", str(key))
        .replace("/etc/nginx/iam-retries.conf", str(DEPLOY / "nginx" / "iam-retries.conf"))
        .replace("listen 443 ssl;", f"listen 127.0.0.1:{_free_port()} ssl;")
    )
    directives = [line.split("#", 1)[0] for line in conf.splitlines()]
    assert not any("non_idempotent" in d for d in directives)
    (tmp_path / "cluster.conf").write_text(conf)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/cluster.conf; }}\n"
    )
    out = subprocess.run([nginx, "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr
