"""gunicorn terminating TLS with client certificates (issue 19): what the handshake lets
through to the provider, and how a refusal it still makes is recorded — with gunicorn's own
context factory and real OpenSSL handshakes on 127.0.0.1, audit rows on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from gunicorn import sock as gsock
from gunicorn.config import Config
from sqlalchemy import select

from iam.app import create_app
from iam.models.audit import AuditEvent
from iam.server import SyncWorker, ThreadWorker, _RecordsTlsRefusals, record_tls_refusal, ssl_context


def gunicorn_context(files: dict[str, Path], *, relaxed: bool) -> ssl.SSLContext:
    """The context gunicorn builds for ``iam serve --certfile … --ca-certs …
    --client-certs optional`` (``relaxed``: with iam's ssl_context hook, as iam serve runs)."""
    cfg = Config()
    cfg.set("certfile", str(files["server"]))
    cfg.set("keyfile", str(files["server"].with_suffix(".key")))
    cfg.set("ca_certs", str(files["tls_ca"]))
    cfg.set("cert_reqs", ssl.CERT_OPTIONAL)
    if relaxed:
        cfg.set("ssl_context", ssl_context)
    return gsock.ssl_context(cfg)


def handshake(files: dict[str, Path], card: str, *, relaxed: bool = True) -> Any:
    """The peer certificate the server saw (DER), or the server's handshake error."""
    server_ctx = gunicorn_context(files, relaxed=relaxed)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result: dict[str, Any] = {}

    def serve() -> None:
        conn, _ = listener.accept()
        tls = server_ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
            result["peer"] = tls.getpeercert(binary_form=True)
        except ssl.SSLError as exc:
            result["error"] = exc
        finally:
            tls.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    client_ctx.load_cert_chain(files[card], files[card].with_suffix(".key"))
    try:
        with socket.create_connection(("127.0.0.1", port)) as raw, client_ctx.wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            tls.recv(1)
    except OSError:
        pass  # the server refused the certificate
    thread.join(10)
    listener.close()
    return result.get("error", result.get("peer"))


@pytest.mark.parametrize("card", ["good", "expired", "not_yet_valid", "revoked", "unmapped"])
def test_the_handshake_leaves_these_cards_to_the_provider(
    pki_files: dict[str, Path], pki: Any, card: str
) -> None:
    peer = handshake(pki_files, card)
    assert peer == pki.issued[card].cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize(("card", "code"), [("expired", 10), ("not_yet_valid", 9)])
def test_without_the_hook_python_refuses_the_dates(pki_files: dict[str, Path], card: str, code: int) -> None:
    """Why the hook exists: gunicorn's own context ends these handshakes."""
    error = handshake(pki_files, card, relaxed=False)
    assert isinstance(error, ssl.SSLCertVerificationError) and error.verify_code == code


@pytest.mark.parametrize(
    ("card", "code", "reason"),
    [
        ("wrong_eku", 26, "wrong_purpose"),
        ("server_eku", 26, "wrong_purpose"),
        ("no_signature", 26, "wrong_purpose"),
        ("foreign", 20, "untrusted"),
    ],
)
def test_what_the_handshake_still_refuses_is_recorded(
    pki_files: dict[str, Path], card_services: Any, card: str, code: int, reason: str
) -> None:
    error = handshake(pki_files, card)
    assert isinstance(error, ssl.SSLCertVerificationError) and error.verify_code == code
    svc = card_services()
    app = create_app(services=svc)
    record_tls_refusal(app, ("10.7.7.7", 50123), error)
    with svc.transaction() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "card.tls_refused")))
    assert len(rows) == 1
    row = rows[0]
    assert row.outcome == "failure" and row.ip == "10.7.7.7"
    assert row.details == {
        "reason": reason,
        "peer": "10.7.7.7",
        "tls_verify_code": code,
        "tls_message": error.verify_message,
    }


def test_the_workers_record_handshake_refusals_and_nothing_else(
    pki_files: dict[str, Path], card_services: Any
) -> None:
    """iam serve's workers (and deploy/gunicorn.conf.py's) are gunicorn's, plus the recording."""
    assert issubclass(SyncWorker, _RecordsTlsRefusals) and issubclass(ThreadWorker, _RecordsTlsRefusals)
    handled: list[BaseException] = []

    class Base:
        def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
            handled.append(exc)

    class Worker(_RecordsTlsRefusals, Base):
        pass

    svc = card_services()
    worker = Worker()
    worker.wsgi = create_app(services=svc)
    error = handshake(pki_files, "foreign")
    worker.handle_error(None, None, ("10.8.8.8", 1), error)
    worker.handle_error(None, None, ("10.8.8.8", 1), ssl.SSLError(1, "some other TLS failure"))
    assert len(handled) == 2  # gunicorn's own handling still runs
    with svc.transaction() as s:
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "card.tls_refused")))
    assert [r.ip for r in rows] == ["10.8.8.8"]
