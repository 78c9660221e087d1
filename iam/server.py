"""``iam serve``: gunicorn, in-process (no shell wrapper), with the app built once per worker.

When gunicorn terminates TLS and asks for client certificates (smart cards), the handshake is
only a first filter: :func:`ssl_context` leaves the dates to the application (an expired or
not yet valid card reaches the card page and its reason), and the workers below record every
certificate the handshake still refuses (unknown CA, wrong purpose) through
:data:`iam.events.client_certificate_refused` — the person sees the browser's TLS error, the
auditor finds the attempt. ``deploy/gunicorn.conf.py`` uses the same hook and workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker
from gunicorn.workers.sync import SyncWorker as _GSyncWorker

from iam import events

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.server")

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (no name in Python's ``ssl.VerifyFlags``; the
#: ``verify_flags`` setter passes the bits to OpenSSL as they are).
NO_CHECK_TIME = 0x200000


def ssl_context(conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """gunicorn's ``ssl_context`` hook: gunicorn's context, but when client certificates are
    asked for, the handshake does not check their dates — the provider checks them against
    its own clock and shows "The certificate has expired." instead of a TLS error. The chain
    and the purpose (clientAuth) are still checked by OpenSSL; Python offers no way to ask for
    a certificate without verifying those."""
    context = default_ssl_context_factory()
    if context.verify_mode != ssl.CERT_NONE:
        context.verify_flags = ssl.VerifyFlags(context.verify_flags | NO_CHECK_TIME)
    return context


def record_tls_refusal(app: Any, addr: Any, exc: ssl.SSLCertVerificationError) -> None:
    """A client certificate refused in the handshake: audited by whoever subscribes to
    :data:`iam.events.client_certificate_refused` (the card sign-in), in its own transaction.
    Never raises (the worker goes on serving)."""
    peer = str(addr[0]) if isinstance(addr, tuple) and addr else str(addr or "")
    code, message = int(exc.verify_code or 0), str(exc.verify_message or "")
    log.warning("TLS: client certificate of %s refused in the handshake: %s (%d)", peer, message, code)
    services = getattr(app, "extensions", {}).get("iam.services")
    if services is None:
        return
    try:
        with services.transaction() as session:
            events.client_certificate_refused.send(
                peer, session=session, verify_code=code, verify_message=message[:200]
            )
    except Exception:  # noqa: BLE001 — recording must not take the worker down
        log.exception("TLS: the refused client certificate could not be recorded")


class _RecordsTlsRefusals:
    """Worker mixin: a handshake that refused the client's certificate is recorded."""

    wsgi: Any

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            record_tls_refusal(self.wsgi, addr, exc)
        super().handle_error(req, client, addr, exc)  # type: ignore[misc]


class SyncWorker(_RecordsTlsRefusals, _GSyncWorker):  # type: ignore[misc]
    """gunicorn's sync worker, recording refused client certificates."""


class ThreadWorker(_RecordsTlsRefusals, _GThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, recording refused client certificates."""


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, services: Services, options: dict[str, Any]) -> None:
        self.services = services
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None and key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from iam.app import create_app

        # each worker gets its own engine (connections must not cross fork)
        self.services.engine.dispose(close=False)
        return create_app(services=self.services)


def run(
    services: Services,
    *,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int,
    certfile: str | None = None,
    keyfile: str | None = None,
    ca_certs: str | None = None,
    client_certs: str = "none",
) -> None:
    srv = services.settings.server
    workers = workers or srv.workers or multiprocessing.cpu_count()
    options: dict[str, Any] = {
        "bind": f"{host or srv.host}:{port or srv.port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "iam.server.ThreadWorker" if threads > 1 else "iam.server.SyncWorker",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "forwarded_allow_ips": ",".join(srv.trusted_proxies) or "127.0.0.1",
        "certfile": certfile,
        "keyfile": keyfile,
        # client certificates (smart cards) when gunicorn terminates TLS itself: chain and
        # purpose checked against ca_certs during the handshake (dates not: see ssl_context),
        # read by the app from environ["gunicorn.socket"] and validated fully there
        "ca_certs": ca_certs,
        "cert_reqs": CERT_REQS[client_certs] if certfile else None,
        "ssl_context": ssl_context,
        "control_socket_disable": True,  # gunicorn ≥ 25; ignored by older versions
    }
    # one metrics registry across worker processes (read by /metrics)
    metrics_dir = services.settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    _Gunicorn(services, options).run()
