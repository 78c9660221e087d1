"""Append-only, hash-chained audit log with severity (R-AUD-1..3).

Each row's ``hash`` is HMAC-SHA-256 (keyed with a key derived from the secret key) over the
previous row's hash and the row's canonical content, so a changed, inserted or deleted row
breaks the chain; the head row holds the last sequence number so deleting the tail is seen
too. :func:`record` writes in the caller's transaction: the audit row commits or rolls back
together with the change it records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from iam import clock
from iam.models.audit import AuditEvent, AuditHead, Severity

__all__ = ["Severity", "record", "verify", "VerifyResult", "audit_key"]

log = logging.getLogger("iam.audit")
security_log = logging.getLogger("security")

GENESIS = "0" * 64
_FORBIDDEN_KEYS = {"password", "secret", "client_secret", "token", "code", "refresh_token"}


def audit_key(secret_key: str) -> bytes:
    return hashlib.sha256(b"iam-audit-chain\x00" + secret_key.encode()).digest()


def _key(session: Session) -> bytes:
    key = session.info.get("iam.audit_key")
    if not isinstance(key, bytes):
        raise TypeError("session has no audit key; create sessions through iam.services")
    return key


def _canonical(row: dict[str, Any]) -> bytes:
    at = row["at"]
    body = {
        "seq": row["seq"],
        "at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "event": row["event"],
        "severity": row["severity"],
        "outcome": row["outcome"],
        "actor": row["actor"],
        "subject": row["subject"],
        "client_id": row["client_id"],
        "ip": row["ip"],
        "user_agent": row["user_agent"],
        "details": row["details"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _chain(key: bytes, prev: str, row: dict[str, Any]) -> str:
    return hmac.new(key, prev.encode() + b"\n" + _canonical(row), hashlib.sha256).hexdigest()


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
    """Append one event in the current transaction and return its sequence number."""
    details = dict(details or {})
    leaked = _FORBIDDEN_KEYS.intersection(k.lower() for k in details)
    if leaked:
        raise ValueError(f"audit details must not carry secrets: {sorted(leaked)}")
    key = _key(session)
    at = clock.now()
    # Core statements built once (the hot path: every token issued is audited). The UPDATE
    # takes the head row's lock, so concurrent appenders queue and the chain never forks.
    conn = session.connection()
    head = conn.execute(_BUMP_HEAD).one_or_none()
    if head is None:
        conn.execute(insert(AuditHead).values(id=1, seq=1, hash=GENESIS))
        seq, prev = 1, GENESIS
    else:
        seq, prev = head
    row: dict[str, Any] = {
        "seq": seq,
        "at": at,
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
    digest = _chain(key, prev, row)
    conn.execute(_INSERT_EVENT, {**row, "prev_hash": prev, "hash": digest})
    conn.execute(_SET_HEAD_HASH, {"hash": digest})
    if severity is Severity.CRITICAL:
        security_log.warning("critical audit event %s actor=%s subject=%s", event, actor, subject)
        from iam import jobs  # late import: jobs imports audit for its own events

        jobs.enqueue(session, "iam.notify_critical", {"seq": seq})
    return seq


_BUMP_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + 1)
    .returning(AuditHead.seq, AuditHead.hash)
)
_INSERT_EVENT = insert(AuditEvent)
_SET_HEAD_HASH = update(AuditHead).where(AuditHead.id == 1).values(hash=bindparam("hash"))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None


def iter_events(session: Session, *, batch: int = 1000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session) -> VerifyResult:
    """Walk the whole chain; report the first changed, inserted or missing row."""
    key = _key(session)
    prev, expected, checked = GENESIS, 1, 0
    for ev in iter_events(session):
        if ev.seq != expected:
            return VerifyResult(False, checked, f"row {expected} is missing", expected)
        row = {c: getattr(ev, c) for c in _canonical_columns}
        if ev.prev_hash != prev or not hmac.compare_digest(ev.hash, _chain(key, prev, row)):
            return VerifyResult(False, checked, f"row {ev.seq} was changed", ev.seq)
        prev, expected, checked = ev.hash, expected + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is None:
        if checked:
            return VerifyResult(False, checked, "the chain head is missing")
        return VerifyResult(True, 0)
    if head.seq != checked or not hmac.compare_digest(head.hash, prev):
        return VerifyResult(
            False, checked, f"rows after {checked} were deleted (head says {head.seq})", checked + 1
        )
    return VerifyResult(True, checked)


_canonical_columns = (
    "seq",
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
