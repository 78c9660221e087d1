"""The audit log's external anchor (R-AUD-3, R-AUD-5): what the database cannot take back.

Someone with write access to the database can delete rows, the head, or put back an older head
whose MAC is still valid. Each of those leaves the database self-consistent; only a copy kept
*outside* the database shows it. After each transaction that wrote audit events commits, and
after each seal, one JSON line is appended to an append-only file on the provider host
(``audit.anchor_file``) and sent to the SIEM stream when one is configured (``audit.anchor_syslog``,
and the :data:`iam.events.audit_anchored` signal for other streams):

- ``{"kind": "genesis"}`` — the chain started (the head row was created);
- ``{"kind": "rows", "rows": [[id, row_hash, event], …]}`` — these rows were committed, before
  they are sealed, so a row deleted in the second before the worker seals it is still missed;
- ``{"kind": "seal", "seq", "hash", "head_mac"}`` — the head after a seal;
- ``{"kind": "restore", "seq", "hash", "max_id", "backup"}`` — ``iam backup restore`` put the
  database back to a backup whose chain ends at ``seq``; rows the anchor listed after it
  (ids above ``max_id``) were lost with the restore, which ``iam backup restore`` reported, and
  the chain continues from the restored head.

Each line carries ``mac``, an HMAC keyed from the secret key: a line forged or edited by someone
without the key is reported. ``iam audit verify`` reads the anchor and names what the database
lacks; the worker refuses to seal onto a head that is behind the anchor or absent after genesis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iam import clock

log = logging.getLogger("iam.audit.anchor")


def anchor_key(audit_key: bytes) -> bytes:
    return hmac.new(audit_key, b"iam-audit-anchor", hashlib.sha256).digest()


def _body(entry: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in entry.items() if k != "mac"}, sort_keys=True, separators=(",", ":")
    ).encode()


class Anchor:
    """One append-only anchor file (plus the optional syslog/SIEM copy) of one process."""

    def __init__(self, path: Path, audit_key: bytes, *, syslog: str = "") -> None:
        self.path = path
        self._key = anchor_key(audit_key)
        self._syslog_address = syslog
        self._syslog: logging.Handler | None = None
        self._lock = threading.Lock()
        self._fd: tuple[int, int] | None = None  # (pid, fd): reopened after a fork
        self._last_seal: dict[str, Any] | None = None
        self._scanned = False

    # -- writing --------------------------------------------------------------------------
    def mac(self, entry: dict[str, Any]) -> str:
        return hmac.new(self._key, b"anchor\n" + _body(entry), hashlib.sha256).hexdigest()

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` (one line each) and copy them to the SIEM stream. Never raises:
        a failure is logged to the ``security`` logger (the database already committed)."""
        from iam import events

        lines = []
        for entry in entries:
            entry = {"at": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **entry}
            entry["mac"] = self.mac(entry)
            lines.append(json.dumps(entry, sort_keys=True, separators=(",", ":")))
            events.audit_anchored.send(entry["kind"], entry=entry)
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            try:
                os.write(self._open(), data)  # O_APPEND: one write, never interleaved mid-line
            except OSError as exc:
                logging.getLogger("security").critical(
                    "audit anchor %s could not be written: %s", self.path, exc.strerror
                )
            for entry in entries:
                if entry["kind"] in ("seal", "genesis", "restore"):
                    self._last_seal = entry
            self._to_syslog(lines)

    def _open(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._fd[0] != pid:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            self._fd = (pid, fd)
        return self._fd[1]

    def _to_syslog(self, lines: list[str]) -> None:
        if not self._syslog_address:
            return
        if self._syslog is None:
            self._syslog = _syslog_handler(self._syslog_address)
        for line in lines:
            self._syslog.handle(
                logging.LogRecord(
                    "iam.audit.anchor", logging.INFO, __file__, 0, "iam-audit-anchor: %s", (line,), None
                )
            )

    def forget(self) -> None:
        """Drop what this process remembers (after the file was replaced, e.g. in tests)."""
        with self._lock:
            if self._fd is not None and self._fd[0] == os.getpid():
                os.close(self._fd[1])
            self._fd, self._last_seal, self._scanned = None, None, False

    # -- reading --------------------------------------------------------------------------
    def entries(self, path: Path | None = None) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(line number, entry) for each line; entry None when the line is not a valid anchor
        (unparseable, or its MAC is wrong: edited or forged without the key)."""
        try:
            handle = (path or self.path).open("rb")
        except FileNotFoundError:
            return
        with handle:
            for n, raw in enumerate(handle, start=1):
                try:
                    entry = json.loads(raw)
                except ValueError:
                    yield n, None
                    continue
                ok = isinstance(entry, dict) and hmac.compare_digest(
                    str(entry.get("mac", "")), self.mac(entry)
                )
                yield n, entry if ok else None

    def latest_seal(self) -> dict[str, Any] | None:
        """The newest valid genesis/seal line (read once per process, then kept up to date)."""
        with self._lock:
            if not self._scanned:
                for _, entry in self.entries():
                    if entry is not None and entry.get("kind") in ("seal", "genesis", "restore"):
                        self._last_seal = entry
                self._scanned = True
            return self._last_seal


def _syslog_handler(address: str) -> logging.Handler:
    """``host:port`` (UDP) or the path of a Unix socket such as ``/dev/log``."""
    target: Any = address
    if not address.startswith("/"):
        host, _, port = address.rpartition(":")
        target = (host or "127.0.0.1", int(port or 514))
    handler = logging.handlers.SysLogHandler(address=target, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler
