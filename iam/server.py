"""``iam serve``: gunicorn, in-process (no shell wrapper), with the app built once per worker."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import ssl
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication

if TYPE_CHECKING:
    from iam.services import Services


CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


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
        "worker_class": "gthread" if threads > 1 else "sync",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "forwarded_allow_ips": ",".join(srv.trusted_proxies) or "127.0.0.1",
        "certfile": certfile,
        "keyfile": keyfile,
        # client certificates (smart cards) when gunicorn terminates TLS itself: verified
        # against ca_certs during the handshake, read by the app from environ["gunicorn.socket"]
        # and validated again there (chain, usages, revocation)
        "ca_certs": ca_certs,
        "cert_reqs": CERT_REQS[client_certs] if certfile else None,
        "control_socket_disable": True,  # gunicorn ≥ 25; ignored by older versions
    }
    # one metrics registry across worker processes (read by /metrics)
    metrics_dir = services.settings.var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    _Gunicorn(services, options).run()
