"""Append-only, tamper-evident audit log with severity (R-AUD-1..3).

Writing is one INSERT in the caller's transaction, so the audit row commits or rolls back
together with the change it records, and the hot path (every token issued is audited) never
waits for other writers. Each row carries ``row_hash`` = HMAC-SHA-256 of its content, keyed
with a key derived from the secret key: a changed row is detected at once, by anyone holding
the key, and nobody without the key can forge one. :func:`seal` (run every second by the
worker, and by ``iam audit verify``) links sealed rows into a chain — ``hash`` = HMAC over
the previous hash, the sequence number and the row hash — and moves the head row, so a deleted
or inserted row is detected as soon as its neighbours are sealed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from iam import clock
from iam.db import insert_if_absent, survive_rollback
from iam.models.audit import AuditEvent, AuditHead, Severity

__all__ = ["Severity", "VerifyResult", "audit_key", "record", "record_many", "seal", "verify"]

log = logging.getLogger("iam.audit")
security_log = logging.getLogger("security")

GENESIS = "0" * 64
_SECRET_WORDS = ("password", "secret", "token", "assertion", "verifier", "credential")
_SECRET_KEYS = {"code", "otp", "pin"}
CONTENT = (
    "nonce",
    "at",
    "event",
    "severity",
    "outcome",
    "actor",
    "subject",
    "client_id",
    "ip",
    "user_agent",
    "details",
)


def audit_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"iam-audit-chain\x00" + secret_key.encode()).digest()


def _key(session: Session) -> bytes:
    key = session.info.get("iam.audit_key")
    if not isinstance(key, bytes):
        raise TypeError("session has no audit key; create sessions through iam.services")
    return key


def _canonical(row: dict[str, Any]) -> bytes:
    body = {k: row[k] for k in CONTENT}
    body["at"] = row["at"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _row_hash(key: bytes, row: dict[str, Any]) -> str:
    return hmac.new(key, b"row\n" + _canonical(row), hashlib.sha256).hexdigest()


def _link(key: bytes, prev: str, seq: int, row_hash: str) -> str:
    return hmac.new(key, f"{prev}\n{seq}\n{row_hash}".encode(), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, digest: str) -> str:
    return hmac.new(key, f"head\n{seq}\n{digest}".encode(), hashlib.sha256).hexdigest()


def _secret_keys(details: Any, path: str = "") -> list[str]:
    """Keys anywhere in ``details`` that look like they carry a secret (R-AUD-4)."""
    found: list[str] = []
    if isinstance(details, dict):
        for k, v in details.items():
            name = str(k).lower()
            if name in _SECRET_KEYS or any(w in name for w in _SECRET_WORDS):
                found.append(path + str(k))
            found.extend(_secret_keys(v, f"{path}{k}."))
    elif isinstance(details, list | tuple):
        for item in details:
            found.extend(_secret_keys(item, path))
    return found


class TamperedHead(Exception):  # noqa: N818
    """The chain head's MAC is wrong: someone rewound or replaced it. Sealing stops."""


_INSERT_EVENT = insert(AuditEvent).returning(AuditEvent.id)


def _event_row(
    session: Session,
    event: str,
    *,
    severity: Severity = Severity.NORMAL,
    outcome: str = "success",
    actor: str | None = None,
    subject: str | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    details = dict(details or {})
    leaked = _secret_keys(details)
    if leaked:
        raise ValueError(f"audit details must not carry secrets: {sorted(leaked)}")
    row: dict[str, Any] = {
        "nonce": secrets.token_hex(16),
        "at": clock.now(),
        "event": event,
        "severity": str(severity),
        "outcome": outcome,
        "actor": actor,
        "subject": subject,
        "client_id": client_id,
        "ip": ip,
        "user_agent": (user_agent or "")[:512] or None,
        "details": details,
    }
    row["row_hash"] = _row_hash(_key(session), row)
    return row


def record(
    session: Session,
    event: str,
    *,
    severity: Severity = Severity.NORMAL,
    outcome: str = "success",
    actor: str | None = None,
    subject: str | None = None,
    client_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one event in the current transaction and return its row id."""
    row = _event_row(
        session,
        event,
        severity=severity,
        outcome=outcome,
        actor=actor,
        subject=subject,
        client_id=client_id,
        ip=ip,
        user_agent=user_agent,
        details=details,
    )
    event_id = int(session.connection().execute(_INSERT_EVENT, row).scalar_one())
    if severity is Severity.CRITICAL:
        security_log.warning("critical audit event %s actor=%s subject=%s", event, actor, subject)
        from iam import jobs  # late import: jobs imports audit for its own events

        jobs.enqueue(session, "iam.notify_critical", {"event_id": event_id})
    return event_id


def record_many(session: Session, event: str, events: Iterable[dict[str, Any]], *, batch: int = 1000) -> int:
    """Append many events of one kind (e.g. one per item of a bulk decision) with multi-row
    INSERTs: each is a row of its own, exactly as :func:`record` writes it. ``events`` are
    :func:`record`'s keyword arguments; not for critical events (those notify one by one).
    Returns how many were written."""
    rows: list[dict[str, Any]] = []
    written = 0
    for kw in events:
        if kw.get("severity") is Severity.CRITICAL:
            raise ValueError("critical audit events are recorded one by one (audit.record)")
        rows.append(_event_row(session, event, **kw))
        if len(rows) >= batch:
            session.connection().execute(insert(AuditEvent), rows)
            written += len(rows)
            rows = []
    if rows:
        session.connection().execute(insert(AuditEvent), rows)
        written += len(rows)
    return written


def record_refusal(session: Session, event: str, **kw: Any) -> int:
    """A refused attempt (R-AUD-1: rejected attempts are recorded): written now, and written
    again in a transaction of its own if the refusal rolls ``session`` back."""
    kw.setdefault("outcome", "refused")

    def again(other: Session) -> None:
        record(other, event, **kw)

    survive_rollback(session, again)
    return record(session, event, **kw)


_LOCK_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq)
    .returning(AuditHead.seq, AuditHead.hash, AuditHead.mac)
)


def _create_head(session: Session, key: bytes) -> None:
    """Insert the genesis head unless a concurrent sealer just did."""
    values = {"id": 1, "seq": 0, "hash": GENESIS, "mac": _head_mac(key, 0, GENESIS)}
    insert_if_absent(session, AuditHead, values)


_SEAL_ROW = (
    update(AuditEvent)
    .where(AuditEvent.id == bindparam("row_id"))
    .values(seq=bindparam("new_seq"), prev_hash=bindparam("new_prev"), hash=bindparam("new_hash"))
)


def seal(session: Session, *, limit: int = 5000) -> int:
    """Link committed, unsealed rows into the chain (in id order); return how many."""
    key = _key(session)
    conn = session.connection()
    head = conn.execute(_LOCK_HEAD).one_or_none()  # the row lock serialises sealers
    if head is None:
        _create_head(session, key)
        head = conn.execute(_LOCK_HEAD).one()
    seq, prev, mac = int(head[0]), str(head[1]), str(head[2])
    if not hmac.compare_digest(mac, _head_mac(key, seq, prev)):
        security_log.critical("audit chain head was tampered with; sealing stopped")
        raise TamperedHead("The audit chain head was changed outside the application.")
    rows = conn.execute(
        select(AuditEvent.id, AuditEvent.row_hash)
        .where(AuditEvent.seq.is_(None))
        .order_by(AuditEvent.id)
        .limit(limit)
    ).all()
    if not rows:
        return 0
    params = []
    for row_id, row_hash in rows:
        seq += 1
        digest = _link(key, prev, seq, row_hash)
        params.append({"row_id": row_id, "new_seq": seq, "new_prev": prev, "new_hash": digest})
        prev = digest
    conn.execute(_SEAL_ROW, params)
    conn.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev, mac=_head_mac(key, seq, prev))
    )
    return len(rows)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    unsealed: int = 0


def iter_events(session: Session, *, batch: int = 1000, sealed: bool = True) -> Iterator[AuditEvent]:
    """Sealed events in chain order (or unsealed ones in id order)."""
    order = AuditEvent.seq if sealed else AuditEvent.id
    cond = AuditEvent.seq.is_not(None) if sealed else AuditEvent.seq.is_(None)
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(cond, order > last).order_by(order).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = int(getattr(rows[-1], "seq" if sealed else "id") or 0)


def _content(ev: AuditEvent) -> dict[str, Any]:
    return {c: getattr(ev, c) for c in CONTENT}


def verify(session: Session) -> VerifyResult:
    """Check every row's HMAC and the whole chain; report the first problem found."""
    key = _key(session)
    prev, expected, checked = GENESIS, 1, 0
    for ev in iter_events(session):
        if ev.seq != expected:
            return VerifyResult(False, checked, f"sealed row {expected} is missing", expected)
        if not hmac.compare_digest(ev.row_hash, _row_hash(key, _content(ev))):
            return VerifyResult(False, checked, f"row {ev.seq} was changed", ev.seq)
        if ev.prev_hash != prev or not hmac.compare_digest(
            ev.hash or "", _link(key, prev, expected, ev.row_hash)
        ):
            return VerifyResult(False, checked, f"the chain is broken at row {ev.seq}", ev.seq)
        prev, expected, checked = ev.hash or "", expected + 1, checked + 1
    unsealed = 0
    for ev in iter_events(session, sealed=False):
        unsealed += 1
        if not hmac.compare_digest(ev.row_hash, _row_hash(key, _content(ev))):
            return VerifyResult(False, checked, f"unsealed row id {ev.id} was changed", None, unsealed)
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head is not None and not hmac.compare_digest(head.mac, _head_mac(key, head.seq, head.hash)):
        return VerifyResult(False, checked, "the chain head was changed", None, unsealed)
    if head is None and checked:
        return VerifyResult(False, checked, "the chain head was deleted", None, unsealed)
    if head_seq != checked or not hmac.compare_digest(head_hash, prev):
        return VerifyResult(
            False,
            checked,
            f"sealed rows after {checked} were deleted (the head says {head_seq})",
            checked + 1,
            unsealed,
        )
    return VerifyResult(True, checked, unsealed=unsealed)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
