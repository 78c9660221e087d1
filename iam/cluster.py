"""Several nodes on one database: what one process changes, every other process learns at once.

Caches that are per process (client registrations, signing keys, trust anchors) are dropped
in every process when the thing they hold changes:

- The changing transaction calls :func:`notify` (``pg_notify`` on PostgreSQL: delivered at
  commit, never for a rollback, in commit order).
- Every process (each gunicorn worker, each ``iam worker``) runs one :class:`Listener` thread
  with its own psycopg 3 connection doing ``LISTEN``; it calls the receivers registered with
  :func:`on` for the topic. After (re)connecting it calls every receiver with ``key=""``
  ("drop everything"): notifications sent while it was disconnected are not replayed.
- Each cache keeps its own short time-to-live as the fallback bound, for the moments the
  listener is disconnected: client registrations 2 s, signing keys 10 s, trust anchors
  ``x509.reload_interval`` (30 s).

SQLite is one node: a change made in this process already reaches its caches through the
in-process signals, and other processes on the same machine use the time-to-live.

Why not Redis: PostgreSQL is already the one component every node needs; ``NOTIFY`` is
transactional (a rolled-back change notifies nobody; a committed one notifies everyone), so
there is no second service to run, secure, monitor and fail over, and no window in which the
database and the message bus disagree.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from iam.db import is_postgres

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.cluster")

CHANNEL = "iam_changes"
"""The PostgreSQL notification channel."""

APPLICATION_NAME = "iam-listener"
"""How the listeners' connections show in ``pg_stat_activity``."""

ALL = ""
"""The key receivers get when they must drop everything (the listener (re)connected)."""

Receiver = Callable[[str], None]
_receivers: dict[str, list[Receiver]] = {}


def on(topic: str, receiver: Receiver) -> None:
    """Call ``receiver(key)`` in this process whenever any process notifies ``topic``."""
    if receiver not in _receivers.setdefault(topic, []):
        _receivers[topic].append(receiver)


def off(topic: str, receiver: Receiver) -> None:
    """Stop calling ``receiver`` for ``topic``."""
    if receiver in _receivers.get(topic, []):
        _receivers[topic].remove(receiver)


def notify(session: Session, topic: str, key: str = ALL) -> None:
    """Tell every process, when the current transaction commits, that ``topic``/``key`` changed.

    On SQLite (one node) nothing is sent: the caller's in-process signal is enough."""
    if ":" in topic:
        raise ValueError("a topic has no colon")
    if is_postgres(session):
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": f"{topic}:{key}"}
        )


def dispatch(topic: str, key: str) -> None:
    """Run the receivers of ``topic`` (all topics' receivers when ``topic`` is empty)."""
    receivers = [r for t in _receivers for r in _receivers[t]] if not topic else _receivers.get(topic, [])
    for receiver in list(receivers):
        try:
            receiver(key)
        except Exception:
            log.exception("change receiver for %s failed", topic or "all topics")


def libpq_dsn(engine: Engine) -> str:
    """The engine's connection parameters as a libpq connection string, exactly as the engine's
    own connections get them: several hosts (``?host=a:5432&host=b:5432`` with
    ``target_session_attrs=read-write``), ``sslmode=verify-full``, ``sslrootcert`` …"""
    from psycopg.conninfo import make_conninfo

    _, params = engine.dialect.create_connect_args(engine.url)
    return make_conninfo("", **{k: v for k, v in params.items() if isinstance(v, str | int)})


class Listener(threading.Thread):
    """One per process: ``LISTEN`` on its own connection, reconnecting with backoff."""

    def __init__(self, dsn: str, *, check_every: float = 5.0, max_backoff: float = 5.0) -> None:
        super().__init__(name="iam-cluster-listener", daemon=True)
        self.dsn = dsn
        self.check_every = check_every
        self.max_backoff = max_backoff
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self.received = 0
        self.reconnects = 0

    def run(self) -> None:
        import psycopg

        backoff = 0.2
        down_logged = False
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=APPLICATION_NAME,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if down_logged:
                        log.info("change notifications: listening again")
                    down_logged = False
                    backoff = 0.2
                    dispatch(ALL, ALL)  # anything may have changed while we were not listening
                    self.connected.set()
                    while not self.stop_event.is_set():
                        for n in conn.notifies(timeout=self.check_every):
                            topic, _, key = n.payload.partition(":")
                            self.received += 1
                            dispatch(topic, key)
                        conn.execute("SELECT 1")  # a dead connection raises here
            except Exception as exc:
                self.connected.clear()
                if self.stop_event.is_set():
                    break
                if not down_logged:
                    log.warning(
                        "change notifications: connection lost (%s); caches fall back to their "
                        "time-to-live until it is back",
                        type(exc).__name__,
                    )
                    down_logged = True
                self.reconnects += 1
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self.connected.clear()

    def stop(self) -> None:
        self.stop_event.set()


_lock = threading.Lock()
_listeners: dict[tuple[int, int], Listener] = {}


def listen(services: Services) -> Listener | None:
    """Start this process's listener for ``services``' database (PostgreSQL only; idempotent,
    fork-safe: a forked child starts its own)."""
    key = (os.getpid(), id(services.engine))
    listener = _listeners.get(key)
    if listener is not None and listener.is_alive():
        return listener
    settings = services.settings
    if not settings.cluster.listen or services.engine.dialect.name != "postgresql":
        return None
    with _lock:
        listener = _listeners.get(key)
        if listener is None or not listener.is_alive():
            listener = Listener(
                libpq_dsn(services.engine),
                check_every=settings.cluster.check_interval,
                max_backoff=settings.cluster.reconnect_max,
            )
            _listeners[key] = listener
            listener.start()
    return listener


def stop_listening(services: Services) -> None:
    """Stop this process's listener for ``services`` (``Services.dispose``)."""
    listener = _listeners.pop((os.getpid(), id(services.engine)), None)
    if listener is not None:
        listener.stop()


def listener_state(services: Services) -> dict[str, Any]:
    """For ``/readyz``: whether this process receives change notifications."""
    if services.engine.dialect.name != "postgresql":
        return {"status": "single-node"}
    listener = _listeners.get((os.getpid(), id(services.engine)))
    if listener is None:
        return {"status": "off"}
    return {"status": "ok" if listener.connected.is_set() else "reconnecting"}
