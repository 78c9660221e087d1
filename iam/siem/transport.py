"""How records reach a collector: RFC 5425 syslog over TLS, or JSON lines over HTTPS.

A batch counts as delivered only when the collector confirms it. HTTPS: a 2xx answer. Syslog
has no acknowledgement, so each batch is sent on a connection of its own, which we then close
for writing and wait for the collector to close too: a collector closes only after it has read
(and queued) every record before the close, so a collector that dies mid-batch leaves us
without that confirmation, and the batch is sent again (at least once; the ids let the
collector drop the repeats).
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx


class DeliveryFailed(Exception):  # noqa: N818 — reads as what happened
    """The collector did not take the batch (unreachable, refused, no confirmation)."""


def tls_context(ca_file: Path | None, client_cert: Path | None, client_key: Path | None) -> ssl.SSLContext:
    """Verify the collector (its CA, or the system's), and present a client certificate if given."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        ctx.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    return ctx


def frame(record: bytes) -> bytes:
    """RFC 5425 §4.3 octet counting: ``MSG-LEN SP SYSLOG-MSG``."""
    return str(len(record)).encode() + b" " + record


class SyslogTls:
    """``syslog+tls://host:port``."""

    def __init__(self, url: str, context: ssl.SSLContext, *, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = str(parts.hostname), int(parts.port or 6514)
        self.context, self.timeout = context, timeout

    def send(self, records: list[bytes]) -> None:
        data = b"".join(frame(r) for r in records)
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as raw:
                with self.context.wrap_socket(raw, server_hostname=self.host) as tls:
                    tls.sendall(data)
                    self._confirm(tls)
        except (OSError, ssl.SSLError) as exc:
            raise DeliveryFailed(f"{self.host}:{self.port}: {exc.strerror or exc}") from exc

    def _confirm(self, tls: ssl.SSLSocket) -> None:
        """Close our side and wait until the collector closes its side (see the module)."""
        try:
            tls.unwrap()  # close_notify, answered by the collector's close_notify
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return  # the collector closed the connection after reading everything
        except (OSError, ssl.SSLError) as exc:  # reset: it died before reading it all
            raise DeliveryFailed(f"no confirmation from the collector: {exc}") from exc


class Https:
    """``https://…``: one POST of JSON lines (``application/x-ndjson``) per batch."""

    def __init__(
        self, url: str, context: ssl.SSLContext, *, timeout: float, headers: dict[str, str] | None = None
    ) -> None:
        self.url, self.context, self.timeout = url, context, timeout
        self.headers = {"Content-Type": "application/x-ndjson", **(headers or {})}

    def send(self, records: list[bytes]) -> None:
        body = b"\n".join(records) + b"\n"
        try:
            resp = httpx.post(
                self.url, content=body, headers=self.headers, verify=self.context, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{urlsplit(self.url).netloc}: {type(exc).__name__}") from exc
        if not 200 <= resp.status_code < 300:
            raise DeliveryFailed(f"{urlsplit(self.url).netloc} answered {resp.status_code}")
