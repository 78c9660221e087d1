"""Append-only, tamper-evident audit log with severity (R-AUD-1..3).

Writing is one INSERT in the caller's transaction, so the audit row commits or rolls back
together with the change it records, and the hot path (every token issued is audited) never
waits for other writers. Each row carries ``row_hash`` = HMAC-SHA-256 of its content, keyed
with a key derived from the secret key: a changed row is detected at once, by anyone holding
the key, and nobody without the key can forge one. :func:`seal` (run every second by the
worker, and by ``iam audit verify``) links sealed rows into a chain — ``hash`` = HMAC over
the previous hash, the sequence number and the row hash — and moves the head row, so a deleted
or inserted row is detected as soon as its neighbours are sealed.

What the database alone cannot show — every row and the head deleted, an older head put back,
a row deleted before it was sealed — the external anchor shows (:mod:`iam.audit_anchor`): after
each commit that wrote events and after each seal, a line goes to an append-only file outside the
database (and to the SIEM stream); :func:`verify` compares the database with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, event, func, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from iam import clock, events, jobs
from iam.audit_anchor import Anchor
from iam.db import insert_if_absent
from iam.models.audit import AuditEvent, AuditHead, Severity

__all__ = [
    "Anchor",
    "Severity",
    "VerifyResult",
    "audit_key",
    "install_anchor",
    "record",
    "record_many",
    "record_refusal",
    "seal",
    "verify",
]

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


def _clip(value: str | None, size: int) -> str | None:
    """Caller-supplied text (a claimed client_id, a user agent) fitted to its column: cut to
    ``size`` and without NUL (PostgreSQL refuses it), so recording a refusal never fails."""
    return value.replace("\x00", "\ufffd")[:size] or None if value else None


class TamperedHead(Exception):  # noqa: N818
    """The chain head's MAC is wrong, or the head is behind (or absent after) the external
    anchor: someone rewound, replaced or deleted it. Sealing stops."""


# -- the external anchor: written after commit, never for work that rolled back -----------------
_ROWS = "iam.audit_anchor_rows"
_HEADS = "iam.audit_anchor_heads"
_ANCHOR = "iam.audit_anchor"


def _anchor(session: Session) -> Anchor | None:
    anchor = session.info.get(_ANCHOR)
    return anchor if isinstance(anchor, Anchor) else None


def _before_commit(session: Session) -> None:
    rows: list[tuple[int, str, str, bool]] = session.info.get(_ROWS) or []
    if any(nested for *_, nested in rows):  # a savepoint may have rolled some back
        ids = [r[0] for r in rows]
        alive = set(
            session.connection().execute(select(AuditEvent.id).where(AuditEvent.id.in_(ids))).scalars()
        )
        session.info[_ROWS] = [r for r in rows if r[0] in alive]


def _after_commit(session: Session) -> None:
    rows: list[tuple[int, str, str, bool]] = session.info.pop(_ROWS, None) or []
    heads: list[dict[str, Any]] = session.info.pop(_HEADS, None) or []
    anchor = _anchor(session)
    if anchor is None or not (rows or heads):
        return
    entries = [{"kind": "rows", "rows": [[i, h, e] for i, h, e, _ in rows]}] if rows else []
    anchor.write(entries + heads)


def _after_rollback(session: Session) -> None:
    session.info.pop(_ROWS, None)
    session.info.pop(_HEADS, None)


def install_anchor(factory: sessionmaker[Session], anchor: Anchor) -> None:
    """Give ``factory``'s sessions the anchor; committed events and seals are written to it."""
    from sqlalchemy import event

    factory.kw.setdefault("info", {})[_ANCHOR] = anchor
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_rollback", _after_rollback)


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
        "actor": _clip(actor, 256),
        "subject": _clip(subject, 256),
        "client_id": _clip(client_id, 128),
        "ip": _clip(ip, 64),
        "user_agent": _clip(user_agent, 512),
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
    if _ANCHOR in session.info:
        nested = session.in_nested_transaction()
        session.info.setdefault(_ROWS, []).append((event_id, row["row_hash"], event, nested))
    if severity is Severity.CRITICAL:
        security_log.warning("critical audit event %s actor=%s subject=%s", event, actor, subject)
        jobs.enqueue(session, "iam.notify_critical", {"event_id": event_id}, priority=jobs.URGENT)
    return event_id


def record_many(session: Session, event: str, events: Iterable[dict[str, Any]], *, batch: int = 1000) -> int:
    """Append many events of one kind (e.g. one per item of a bulk decision) with multi-row
    INSERTs: each is a row of its own, exactly as :func:`record` writes it (and anchored like
    it). ``events`` are :func:`record`'s keyword arguments; not for critical events (those
    notify one by one). Returns how many were written."""
    rows: list[dict[str, Any]] = []
    written = 0

    def flush() -> None:
        ids = session.connection().execute(
            insert(AuditEvent).returning(AuditEvent.id, sort_by_parameter_order=True), rows
        )
        if _ANCHOR in session.info:
            nested = session.in_nested_transaction()
            for event_id, row in zip(ids.scalars(), rows, strict=True):
                session.info.setdefault(_ROWS, []).append((int(event_id), row["row_hash"], event, nested))

    for kw in events:
        if kw.get("severity") is Severity.CRITICAL:
            raise ValueError("critical audit events are recorded one by one (audit.record)")
        rows.append(_event_row(session, event, **kw))
        if len(rows) >= batch:
            flush()
            written += len(rows)
            rows = []
    if rows:
        flush()
        written += len(rows)
    return written


_REFUSALS = "iam.audit.refusals"
_NOT_CONTENT = ("id", "seq", "prev_hash", "hash")


def record_refusal(
    session: Session,
    event: str,
    *,
    severity: Severity = Severity.SIGNIFICANT,
    outcome: str = "failure",
    **kw: Any,
) -> int:
    """Record a refusal: an event that stays on record even when the caller's transaction rolls
    back — which is what usually follows a refusal (an exception ends the unit of work).

    The row is written in the current transaction like any other (so a refusal that commits
    costs nothing more). When the outermost transaction ends, a refusal row that did not
    commit — rolled back, or written in a savepoint that was rolled back — is written again,
    unchanged (same nonce, time and ``row_hash``), in a transaction of its own. Takes the
    arguments of :func:`record`."""
    event_id = record(session, event, severity=severity, outcome=outcome, **kw)
    table = AuditEvent.__table__
    row = session.connection().execute(select(table).where(table.c.id == event_id)).mappings().one()
    session.info.setdefault(_REFUSALS, []).append({k: v for k, v in row.items() if k not in _NOT_CONTENT})
    return event_id


@event.listens_for(Session, "after_transaction_end")
def _keep_refusals(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or not session.info.get(_REFUSALS):
        return
    pending: list[dict[str, Any]] = session.info.pop(_REFUSALS)
    try:
        with Session(bind=session.get_bind(), info=dict(session.info)) as own, own.begin():
            conn = own.connection()
            for row in pending:
                if conn.execute(select(AuditEvent.id).where(AuditEvent.row_hash == row["row_hash"])).first():
                    continue  # it committed with the caller's transaction
                event_id = int(conn.execute(_INSERT_EVENT, row).scalar_one())
                if row["severity"] == Severity.CRITICAL:
                    jobs.enqueue(own, "iam.notify_critical", {"event_id": event_id}, priority=jobs.URGENT)
    except Exception:  # never mask the refusal itself; say loudly what was lost
        security_log.exception(
            "refusal audit events could not be kept: %s", ", ".join(str(r["event"]) for r in pending)
        )


def _job_dead(job_id: Any, *, session: Session, kind: str, attempts: int, **_: Any) -> None:
    """A background job gave up after its last attempt (sent by :mod:`iam.jobs` in the
    transaction that marks it dead): a significant event, so the console and the SIEM see it."""
    record(
        session,
        "job.dead",
        severity=Severity.SIGNIFICANT,
        outcome="failure",
        details={"job": job_id, "kind": kind, "attempts": attempts},
    )


events.job_dead.connect(_job_dead)

_LOCK_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq)
    .returning(AuditHead.seq, AuditHead.hash, AuditHead.mac)
)


def _create_head(session: Session, key: bytes) -> None:
    """Insert the genesis head unless a concurrent sealer just did; anchor the genesis."""
    values = {"id": 1, "seq": 0, "hash": GENESIS, "mac": _head_mac(key, 0, GENESIS)}
    if insert_if_absent(session, AuditHead, values) and _anchor(session) is not None:
        session.info.setdefault(_HEADS, []).append({"kind": "genesis", "seq": 0, "hash": GENESIS})


def _check_against_anchor(session: Session, seq: int | None) -> None:
    """Refuse to seal onto a head that the anchor shows was deleted (``seq`` None) or rewound."""
    anchor = _anchor(session)
    last = anchor.latest_seal() if anchor is not None else None
    if last is None:
        return
    if seq is None or seq < int(last["seq"]):
        what = "deleted" if seq is None else f"rewound to {seq}"
        security_log.critical(
            "audit chain head was %s; the anchor %s records seq %s; sealing stopped",
            what,
            anchor.path if anchor else "",
            last["seq"],
        )
        raise TamperedHead(f"The audit chain head was {what}; the anchor records seq {last['seq']}.")


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
        _check_against_anchor(session, None)
        _create_head(session, key)
        head = conn.execute(_LOCK_HEAD).one()
    seq, prev, mac = int(head[0]), str(head[1]), str(head[2])
    if not hmac.compare_digest(mac, _head_mac(key, seq, prev)):
        security_log.critical("audit chain head was tampered with; sealing stopped")
        raise TamperedHead("The audit chain head was changed outside the application.")
    _check_against_anchor(session, seq)
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
    head_mac = _head_mac(key, seq, prev)
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev, mac=head_mac))
    if _anchor(session) is not None:
        session.info.setdefault(_HEADS, []).append(
            {"kind": "seal", "seq": seq, "hash": prev, "head_mac": head_mac}
        )
    return len(rows)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    seq: int | None = None
    unsealed: int = 0
    missing: tuple[int, ...] = ()
    """Ids of committed rows the anchor lists and the database lacks."""
    anchor: str | None = field(default=None, compare=False)
    """The anchor file compared with the database (None: none could be read)."""


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


def verify(session: Session, *, anchor_file: Path | None = None) -> VerifyResult:
    """Check every row's HMAC and the whole chain, then compare the database with the external
    anchor (``anchor_file``, default the configured one); report the first problem found."""
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
    anchor = _anchor(session)
    if anchor is None:
        return VerifyResult(True, checked, unsealed=unsealed)
    return _compare_with_anchor(
        session, anchor, anchor_file or anchor.path, checked, head is not None, unsealed
    )


def _compare_with_anchor(
    session: Session, anchor: Anchor, path: Path, checked: int, has_head: bool, unsealed: int
) -> VerifyResult:
    """What the anchor file records and the database lacks: the head, sealed rows, committed rows."""
    where = str(path)
    if not path.is_file():
        return VerifyResult(True, checked, unsealed=unsealed)
    last: dict[str, Any] | None = None
    missing: list[int] = []
    described: list[str] = []
    batch: dict[int, tuple[str, str, str]] = {}

    def check_batch() -> None:
        query = select(AuditEvent.id, AuditEvent.row_hash).where(AuditEvent.id.in_(list(batch)))
        found = {int(row_id): str(row_hash) for row_id, row_hash in session.execute(query)}
        for row_id, (row_hash, event, at) in sorted(batch.items()):
            if found.get(row_id) != row_hash:
                missing.append(row_id)
                if len(described) < 10:
                    described.append(f"id {row_id} ({event}, committed {at})")
        batch.clear()

    for line, entry in anchor.entries(path):
        if entry is None:
            problem = f"line {line} of the anchor {where} is not a valid anchor (edited or forged)"
            return VerifyResult(False, checked, problem, None, unsealed, anchor=where)
        if entry.get("kind") in ("seal", "genesis"):
            last = entry
        elif entry.get("kind") == "restore":  # iam backup restore: rows after the backup were lost
            if batch:
                check_batch()
            max_id = int(entry.get("max_id", 0))
            missing = [m for m in missing if m <= max_id]
            described = [d for d in described if int(d.split()[1]) <= max_id]
            last = entry
        elif entry.get("kind") == "rows":
            for row_id, row_hash, event in entry.get("rows", []):
                batch[int(row_id)] = (str(row_hash), str(event), str(entry.get("at")))
            if len(batch) >= 500:
                check_batch()
    if batch:
        check_batch()
    if last is not None:
        seq, at = int(last["seq"]), last.get("at")
        if not has_head:
            problem = f"the chain head was deleted (the anchor {where} records the chain's start"
            problem += f" and seq {seq}, sealed {at})" if seq else ")"
            if seq > checked:
                problem += f"; sealed rows {checked + 1}..{seq} are missing"
            return VerifyResult(
                False, checked, problem, checked + 1 if seq > checked else None, unsealed, anchor=where
            )
        if seq > checked:
            problem = (
                f"sealed rows {checked + 1}..{seq} are missing: the anchor {where} records seq {seq} "
                f"(sealed {at}) but the database ends at {checked} (its head was rolled back)"
            )
            return VerifyResult(False, checked, problem, checked + 1, unsealed, anchor=where)
        if seq:
            row_hash = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
            if row_hash is None or not hmac.compare_digest(row_hash, str(last.get("hash"))):
                problem = f"sealed row {seq} differs from the anchor {where}: the chain was rewritten"
                return VerifyResult(False, checked, problem, seq, unsealed, anchor=where)
    if missing:
        more = f" and {len(missing) - len(described)} more" if len(missing) > len(described) else ""
        problem = (
            f"{len(missing)} committed row(s) the anchor {where} lists are missing from the database: "
            + ", ".join(described)
            + more
        )
        return VerifyResult(False, checked, problem, None, unsealed, tuple(missing), anchor=where)
    return VerifyResult(True, checked, unsealed=unsealed, anchor=where)


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
