"""The SIEM stream's cursor per destination, its lease, a pass over the backlog, the backlog.

A pass (:func:`pump`) for one destination: take the lease on its cursor row with one
conditional UPDATE (free, expired, or already ours) and commit, so two workers never send the
same batch at once; read the next sealed events after ``last_seq`` in chain order; send them
(outside any transaction); then move the cursor — only while the lease is still ours. The
sealed chain has no gaps and grows only at its end (sealers serialise on the head row), so a
cursor on ``seq`` never skips an event that commits late, which a cursor on ``id`` would.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import SiemDestination, SiemSettings
from iam.db import insert_if_absent
from iam.jobs import worker_id
from iam.models.audit import AuditEvent, AuditHead
from iam.models.audit_ops import SiemCursor
from iam.siem import formats
from iam.siem.transport import DeliveryFailed, Https, SyslogTls, tls_context

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.siem")

#: Batches one pass sends to one destination before it gives the others their turn.
MAX_BATCHES = 20


@dataclass(frozen=True)
class PassResult:
    destination: str
    delivered: int
    error: str | None = None


def transport(siem: SiemSettings, dest: SiemDestination) -> SyslogTls | Https:
    ctx = tls_context(
        dest.ca_file or siem.ca_file,
        dest.client_cert or siem.client_cert,
        dest.client_key or siem.client_key,
    )
    if dest.url.startswith("syslog+tls://"):
        return SyslogTls(dest.url, ctx, timeout=siem.timeout)
    return Https(dest.url, ctx, timeout=siem.timeout, headers=dest.headers)


def encode(siem: SiemSettings, dest: SiemDestination, events: list[dict[str, Any]]) -> list[bytes]:
    """The records of one batch for ``dest`` (events, then the chain head if one is given)."""
    host = siem.hostname or socket.gethostname()
    out: list[bytes] = []
    for data in events:
        if dest.url.startswith("syslog+tls://"):
            if data.get("kind") == "anchor":
                out.append(formats.syslog_anchor(data, at=clock.now(), hostname=host, app_name=siem.app_name))
            else:
                out.append(formats.syslog_event(data, fmt=dest.format, hostname=host, app_name=siem.app_name))
        else:
            out.append(formats.line(data, fmt=dest.format))
    return out


def take_lease(session: Session, name: str, *, me: str, seconds: int) -> bool:
    """Hold ``name``'s cursor for ``seconds`` (True), unless another worker holds it."""
    insert_if_absent(session, SiemCursor, {"destination": name, "last_seq": 0, "head_seq": 0, "delivered": 0})
    now = clock.now()
    result = session.execute(
        update(SiemCursor)
        .where(
            SiemCursor.destination == name,
            or_(SiemCursor.lease_owner.is_(None), SiemCursor.lease_until < now, SiemCursor.lease_owner == me),
        )
        .values(lease_owner=me, lease_until=now + dt.timedelta(seconds=seconds))
    )
    return int(getattr(result, "rowcount", 0)) == 1


def release_lease(session: Session, name: str, *, me: str) -> None:
    session.execute(
        update(SiemCursor)
        .where(SiemCursor.destination == name, SiemCursor.lease_owner == me)
        .values(lease_owner=None, lease_until=None)
    )


def _next_batch(session: Session, name: str, limit: int) -> tuple[int, list[dict[str, Any]], int]:
    """(last_seq, the next events as data, last head seq sent) — plus the head if it moved."""
    cursor = session.get(SiemCursor, name)
    last, head_sent = (cursor.last_seq, cursor.head_seq) if cursor else (0, 0)
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(limit)
    ).all()
    batch = [formats.event_dict(ev) for ev in rows]
    head = session.get(AuditHead, 1)
    if head is not None and head.seq > head_sent and len(rows) < limit:
        batch.append(formats.anchor_dict(head.seq, head.hash, head.mac))
    return last, batch, head_sent


def pump(services: Services, dest: SiemDestination, *, me: str | None = None) -> PassResult:
    """Send what ``dest`` has not received yet (up to :data:`MAX_BATCHES` batches)."""
    siem = services.settings.siem
    me = me or worker_id()
    sender = transport(siem, dest)
    delivered = 0
    with services.reader() as session:
        cursor = session.get(SiemCursor, dest.name)
        failed_at = cursor.last_error_at if cursor is not None and cursor.last_error else None
    if failed_at is not None and clock.now() - failed_at < dt.timedelta(seconds=siem.retry_after):
        return PassResult(dest.name, 0, "waiting to retry")
    for _ in range(MAX_BATCHES):
        with services.transaction() as session:
            if not take_lease(session, dest.name, me=me, seconds=siem.lease):
                return PassResult(dest.name, delivered)  # another worker is sending
            last, batch, head_sent = _next_batch(session, dest.name, siem.batch_size)
        if not batch:
            with services.transaction() as session:
                release_lease(session, dest.name, me=me)
            return PassResult(dest.name, delivered)
        try:
            sender.send(encode(siem, dest, batch))
        except DeliveryFailed as exc:
            _failed(services, dest.name, me, str(exc))
            return PassResult(dest.name, delivered, str(exc))
        events = [d for d in batch if d.get("kind") != "anchor"]
        heads = [int(d["seq"]) for d in batch if d.get("kind") == "anchor"]
        with services.transaction() as session:
            _delivered(session, dest.name, me, last, events, max(heads, default=head_sent))
        delivered += len(events)
    with services.transaction() as session:
        release_lease(session, dest.name, me=me)
    return PassResult(dest.name, delivered)


def _delivered(
    session: Session, name: str, me: str, last: int, events: list[dict[str, Any]], head_seq: int
) -> None:
    cursor = session.get(SiemCursor, name, with_for_update=True)
    if cursor is None or cursor.lease_owner != me or cursor.last_seq != last:
        log.warning("SIEM destination %s: lease lost while sending; the batch may repeat", name)
        return
    was_failing = cursor.last_error is not None
    cursor.last_seq = int(events[-1]["seq"]) if events else last
    cursor.head_seq = head_seq
    cursor.delivered += len(events)
    cursor.last_success_at = clock.now()
    cursor.last_error = None
    if was_failing:
        audit.record(session, "siem.resumed", details={"destination": name})


def _failed(services: Services, name: str, me: str, error: str) -> None:
    log.warning("SIEM destination %s unreachable, events wait: %s", name, error)
    with services.transaction() as session:
        cursor = session.get(SiemCursor, name, with_for_update=True)
        if cursor is None:
            return
        if cursor.last_error is None:
            audit.record(
                session,
                "siem.unreachable",
                severity=audit.Severity.SIGNIFICANT,
                outcome="failure",
                details={"destination": name, "error": error[:300]},
            )
        cursor.last_error, cursor.last_error_at = error[:2000], clock.now()
        if cursor.lease_owner == me:
            cursor.lease_owner, cursor.lease_until = None, None


def pump_all(services: Services) -> list[PassResult]:
    """One pass over every configured destination (the worker's periodic task)."""
    results = []
    for dest in services.settings.siem.destinations:
        try:
            results.append(pump(services, dest))
        except Exception:
            log.exception("SIEM destination %s: pass failed", dest.name)
            results.append(PassResult(dest.name, 0, "internal error"))
    return results


@dataclass(frozen=True)
class DestinationStatus:
    name: str
    url: str
    format: str
    last_seq: int
    backlog: int
    delivered: int
    last_success_at: dt.datetime | None
    last_error: str | None
    degraded: bool


def status(session: Session, siem: SiemSettings) -> list[DestinationStatus]:
    """Each destination's position and backlog (events sealed but not yet accepted). Cheap:
    the head's ``seq`` minus the cursor's, no scan of the log."""
    head = session.get(AuditHead, 1)
    head_seq = head.seq if head else 0
    unsealed = 0
    if siem.destinations:
        unsealed = len(
            session.scalars(select(AuditEvent.id).where(AuditEvent.seq.is_(None)).limit(10000)).all()
        )
    cursors = {c.destination: c for c in session.scalars(select(SiemCursor))}
    out = []
    for dest in siem.destinations:
        c = cursors.get(dest.name)
        last = c.last_seq if c else 0
        backlog = max(head_seq - last, 0) + unsealed
        out.append(
            DestinationStatus(
                name=dest.name,
                url=dest.url,
                format=dest.format,
                last_seq=last,
                backlog=backlog,
                delivered=c.delivered if c else 0,
                last_success_at=c.last_success_at if c else None,
                last_error=c.last_error if c else None,
                degraded=backlog > siem.backlog_threshold,
            )
        )
    return out


def metrics_text(session: Session, siem: SiemSettings) -> bytes:
    """Prometheus text of the backlog and deliveries per destination (a registry of its own,
    filled at each scrape, so it is right in every process)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    backlog = Gauge(
        "iam_siem_backlog_events",
        "Audit events not yet accepted by the SIEM destination",
        ["destination"],
        registry=registry,
    )
    delivered = Gauge(
        "iam_siem_delivered_events",
        "Audit events the SIEM destination accepted",
        ["destination"],
        registry=registry,
    )
    for st in status(session, siem):
        backlog.labels(st.name).set(st.backlog)
        delivered.labels(st.name).set(st.delivered)
    return generate_latest(registry)
