"""The weekly signed archive of the audit log (R-AUD-3, Čačak Član 28; issue 15 part 2 of ours).

Each ISO week (Monday 00:00 UTC to the next Monday) the worker writes the week's segment of the
*sealed* chain to ``audit_archive.folder`` as ``iam-audit-2026-W49.jsonl.gz``: gzip of JSON
lines —

1. a header: the week, the segment's first and last ``seq``, the chain hash it continues from
   (``prev_hash``: the last hash of the previous week's file) and ends with (``last_hash``),
   the number of events, and the Ed25519 public key that signed the file with its key id;
2. one line per event, every column: content, ``row_hash``, ``seq``, ``prev_hash``, ``hash``;
3. the signature: Ed25519 over ``b"iam-audit-archive-v1\\n"`` + SHA-256 of every byte before it.

A file verifies on its own (``iam audit verify --archive FILE``, no database): the signature,
the header's counts, and the chain links inside the file (each row's ``prev_hash`` is the
hash before it, the first one the header's ``prev_hash``). An auditor pins the public key
(``iam audit archive-key`` prints it and its id; ``--public-key`` checks against it) and joins
consecutive weeks by ``last_hash`` → ``prev_hash``. On the provider host, ``--check-macs`` also
recomputes every row HMAC and chain link with the audit key. A week whose archive is still
missing a day after ``grace_hours`` raises a critical audit event (``audit.archive_missed``),
mailed to the security officer like every critical event.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.models.audit import AuditEvent
from iam.models.audit_ops import AuditArchive

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.audit.archive")

MAGIC = "iam-audit-archive"
SIGNED_PREFIX = b"iam-audit-archive-v1\n"
_COLUMNS = (
    "id",
    "seq",
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
    "row_hash",
    "prev_hash",
    "hash",
)
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class ArchiveError(Exception):
    """An archive could not be written, or a file does not verify (one sentence)."""


# -- weeks ---------------------------------------------------------------------------------------
def week_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%G-W%V")


def week_bounds(week: str) -> tuple[dt.datetime, dt.datetime]:
    """Monday 00:00 UTC of ``week`` (``2026-W49``) and of the week after."""
    m = _WEEK.match(week)
    if not m:
        raise ArchiveError(f"{week!r} is not an ISO week such as 2026-W49.")
    try:
        start = dt.datetime.fromisocalendar(int(m.group(1)), int(m.group(2)), 1).replace(tzinfo=dt.UTC)
    except ValueError:
        raise ArchiveError(f"{week!r} is not an ISO week such as 2026-W49.") from None
    return start, start + dt.timedelta(days=7)


# -- the signing key -------------------------------------------------------------------------------
def _key_path(services: Services) -> Path:
    s = services.settings
    return s.audit_archive.signing_key_file or s.var_dir / "audit-archive-signing.key"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signing_key(services: Services) -> Ed25519PrivateKey:
    """The archive signing key: read (decrypted with the encryption key) or made on first use;
    its public key is written next to it as ``….pub`` (PEM) for auditors."""
    path = _key_path(services)
    context = b"iam-audit-archive-key"
    if path.is_file():
        pem = services.cipher.decrypt(path.read_bytes(), context=context)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ArchiveError(f"{path} is not an Ed25519 key.")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(services.cipher.encrypt(pem, context=context))
    path.with_name(path.name + ".pub").write_bytes(public_pem(key.public_key()))
    log.info("audit archive signing key created (key id %s)", key_id(key.public_key()))
    return key


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed(body_digest: bytes) -> bytes:
    return SIGNED_PREFIX + body_digest


# -- writing -----------------------------------------------------------------------------------------
def folder(services: Services) -> Path:
    return services.settings.audit_archive.folder or services.settings.var_dir / "audit-archive"


def file_name(week: str) -> str:
    return f"iam-audit-{week}.jsonl.gz"


def _row(ev: AuditEvent) -> dict[str, Any]:
    out = {c: getattr(ev, c) for c in _COLUMNS}
    out["at"] = ev.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def _dumps(data: dict[str, Any]) -> bytes:
    return (
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        + b"\n"
    )


def write_week(services: Services, session: Session, week: str) -> AuditArchive:
    """Write ``week``'s archive file and record it (caller commits). The segment runs from the
    event after the previous archive's last one to the last event recorded before the week's
    end, so consecutive files join without a gap even when the first archive is made late (an
    event of the week sealed only after its file was written opens the next week's file)."""
    start, end = week_bounds(week)
    if clock.now() < end:
        raise ArchiveError(f"The week {week} has not ended yet.")
    done = session.get(AuditArchive, week)
    if done is not None and done.status == "written":
        raise ArchiveError(f"The week {week} is already archived ({done.file_name}).")
    later = session.scalar(
        select(func.min(AuditArchive.week)).where(AuditArchive.week > week, AuditArchive.status == "written")
    )
    if later:
        raise ArchiveError(f"A later week ({later}) is already archived; weeks are archived in order.")
    prev = session.scalar(
        select(AuditArchive)
        .where(AuditArchive.status == "written")
        .order_by(AuditArchive.last_seq.desc())
        .limit(1)
    )
    first_seq = (prev.last_seq if prev else 0) + 1
    prev_hash = prev.last_hash if prev and prev.last_hash else audit.GENESIS
    last_seq = int(
        session.scalar(
            select(func.max(AuditEvent.seq)).where(AuditEvent.at < end, AuditEvent.seq.is_not(None))
        )
        or 0
    )
    last_seq = max(last_seq, first_seq - 1)
    key = signing_key(services)
    public = key.public_key()
    events = last_seq - first_seq + 1
    last_hash = prev_hash
    if events:
        last_hash = str(session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == last_seq)))
    header = {
        "kind": MAGIC,
        "version": 1,
        "week": week,
        "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "first_seq": first_seq,
        "last_seq": last_seq,
        "events": events,
        "prev_hash": prev_hash,
        "last_hash": last_hash,
        "organisation": services.settings.organisation,
        "created_at": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "alg": "Ed25519",
        "key_id": key_id(public),
        "public_key": base64.b64encode(
            public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).decode(),
    }
    target = folder(services) / file_name(week)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with tmp.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for chunk in _lines(session, header, first_seq, last_seq):
            digest.update(chunk)
            gz.write(chunk)
        signature = key.sign(_signed(digest.digest()))
        gz.write(
            _dumps(
                {
                    "kind": "signature",
                    "alg": "Ed25519",
                    "key_id": header["key_id"],
                    "signature": base64.b64encode(signature).decode(),
                }
            )
        )
    os.replace(tmp, target)
    file_sha = hashlib.sha256(target.read_bytes()).hexdigest()
    row = done or AuditArchive(week=week)
    row.status, row.file_name, row.sha256 = "written", target.name, file_sha
    row.first_seq, row.last_seq, row.events, row.last_hash = first_seq, last_seq, events, last_hash
    row.written_at = clock.now()
    if done is None:
        session.add(row)
    audit.record(
        session,
        "audit.archive_written",
        actor="system",
        details={
            "week": week,
            "file": target.name,
            "sha256": file_sha,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "events": events,
            "key_id": header["key_id"],
        },
    )
    session.flush()
    return row


def _lines(session: Session, header: dict[str, Any], first: int, last: int) -> Iterator[bytes]:
    yield _dumps(header)
    pos = first - 1
    while pos < last:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq > pos, AuditEvent.seq <= last)
            .order_by(AuditEvent.seq)
            .limit(2000)
        ).all()
        if not rows:
            break
        for ev in rows:
            yield _dumps(_row(ev))
        pos = int(rows[-1].seq or last)


# -- verifying (no database) ---------------------------------------------------------------------
@dataclass
class ArchiveCheck:
    ok: bool
    problem: str | None = None
    header: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    key_id: str | None = None


def verify_file(
    path: Path, *, public_key: bytes | None = None, audit_key: bytes | None = None
) -> ArchiveCheck:
    """Check one archive file on its own: gzip integrity, the Ed25519 signature (against
    ``public_key`` PEM when given, else the key the file names — compare its ``key_id`` with
    the published one), the header, and the chain links; with ``audit_key`` also each row's
    HMAC and each link's HMAC."""
    try:
        data = gzip.decompress(path.read_bytes())
    except FileNotFoundError:
        return ArchiveCheck(False, f"{path} does not exist")
    except (OSError, EOFError, zlib.error) as exc:
        return ArchiveCheck(False, f"the file is damaged (not a complete gzip file: {exc})")
    body, _, tail = data.rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    try:
        sig = json.loads(tail)
        header = json.loads(body.split(b"\n", 1)[0])
    except ValueError:
        return ArchiveCheck(False, "the file is damaged (a line is not JSON)")
    if (
        not isinstance(header, dict)
        or header.get("kind") != MAGIC
        or not isinstance(sig, dict)
        or sig.get("kind") != "signature"
    ):
        return ArchiveCheck(False, "this is not an iam audit archive (header or signature line missing)")
    try:
        embedded = Ed25519PublicKey.from_public_bytes(base64.b64decode(str(header["public_key"])))
        pinned = serialization.load_pem_public_key(public_key) if public_key else embedded
        if not isinstance(pinned, Ed25519PublicKey):
            return ArchiveCheck(False, "the public key given is not an Ed25519 key", header)
        pinned.verify(base64.b64decode(str(sig["signature"])), _signed(hashlib.sha256(body).digest()))
    except InvalidSignature:
        who = "the public key given" if public_key else f"the key it names ({header.get('key_id')})"
        return ArchiveCheck(
            False,
            f"the signature does not match {who}: the file was changed or signed by another key",
            header,
        )
    except (KeyError, ValueError) as exc:
        return ArchiveCheck(False, f"the signature or key is malformed ({exc})", header)
    if key_id(embedded) != header.get("key_id"):
        return ArchiveCheck(False, "the header's key id does not match its public key", header)
    prev, expected, count = str(header["prev_hash"]), int(header["first_seq"]), 0
    for raw in body.split(b"\n")[1:-1]:
        row = json.loads(raw)
        if row.get("seq") != expected:
            return ArchiveCheck(False, f"sealed row {expected} is missing from the file", header, count)
        if row.get("prev_hash") != prev:
            return ArchiveCheck(False, f"the chain is broken at row {expected}", header, count)
        if audit_key is not None:
            content = dict(row)
            content["at"] = dt.datetime.fromisoformat(str(row["at"]).replace("Z", "+00:00"))
            if not hmac.compare_digest(str(row["row_hash"]), audit._row_hash(audit_key, content)):
                return ArchiveCheck(
                    False, f"row {expected} was changed (its HMAC does not match)", header, count
                )
            if not hmac.compare_digest(
                str(row["hash"]), audit._link(audit_key, prev, expected, str(row["row_hash"]))
            ):
                return ArchiveCheck(
                    False, f"the chain link of row {expected} does not match the audit key", header, count
                )
        prev, expected, count = str(row["hash"]), expected + 1, count + 1
    if (
        count != header.get("events")
        or expected - 1 != header.get("last_seq")
        or prev != header.get("last_hash")
    ):
        return ArchiveCheck(
            False, "the header does not match the rows (count, last seq or last hash)", header, count
        )
    return ArchiveCheck(True, None, header, count, str(header.get("key_id")))


# -- the worker: archive due weeks, alert on missed ones, prune -------------------------------------
def due_weeks(services: Services, session: Session) -> list[str]:
    """Weeks that have ended (plus ``grace_hours``) and have no written archive, oldest first,
    from the week after the last archive (or the week of the first event)."""
    grace = dt.timedelta(hours=services.settings.audit_archive.grace_hours)
    now = clock.now()
    last = session.scalar(select(func.max(AuditArchive.week)).where(AuditArchive.status == "written"))
    if last:
        cursor = week_bounds(last)[1]
    else:
        first_at = session.scalar(select(func.min(AuditEvent.at)))
        if first_at is None:
            return []
        cursor = week_bounds(week_of(first_at))[0]
    weeks = []
    while cursor + dt.timedelta(days=7) + grace <= now:
        weeks.append(week_of(cursor))
        cursor += dt.timedelta(days=7)
    return weeks


def seal_all(services: Services) -> None:
    """Seal what is committed, in short transactions of its own (not while a file is written:
    the head row's lock would hold up every other sealer)."""
    while True:
        with services.transaction() as session:
            if not audit.seal(session):
                return


def run(services: Services) -> dict[str, Any]:
    """Archive every due week, raise the alert for weeks still missing a day after they were
    due, delete files past retention. Returns what was done."""
    done: list[str] = []
    failed: dict[str, str] = {}
    seal_all(services)
    with services.transaction() as session:
        weeks = due_weeks(services, session)
    for week in weeks:
        try:
            with services.transaction() as session:
                write_week(services, session, week)
            done.append(week)
        except (ArchiveError, OSError) as exc:
            log.exception("audit archive of %s failed", week)
            failed[week] = str(exc)
            break  # weeks are archived in order
    alerted = _alert_missed(services, failed)
    pruned = prune(services)
    return {"written": done, "failed": failed, "alerted": alerted, "pruned": pruned}


def _alert_missed(services: Services, failed: dict[str, str]) -> list[str]:
    s = services.settings.audit_archive
    now = clock.now()
    alerted = []
    with services.transaction() as session:
        for week in due_weeks(services, session):
            if week_bounds(week)[1] + dt.timedelta(hours=s.grace_hours + 24) > now:
                continue
            row = session.get(AuditArchive, week)
            if row is not None and row.alerted_at is not None:
                continue
            if row is None:
                row = AuditArchive(week=week, status="missed", first_seq=0, last_seq=0, events=0)
                session.add(row)
            row.alerted_at = now
            audit.record(
                session,
                "audit.archive_missed",
                severity=audit.Severity.CRITICAL,
                outcome="failure",
                actor="system",
                details={"week": week, "folder": str(folder(services)), "error": failed.get(week, "")[:300]},
            )
            alerted.append(week)
    return alerted


def prune(services: Services) -> list[str]:
    """Delete weekly files older than ``retention_weeks`` (0: keep all)."""
    weeks = services.settings.audit_archive.retention_weeks
    where = folder(services)
    if not weeks or not where.is_dir():
        return []
    limit = week_of(clock.now() - dt.timedelta(weeks=weeks))
    gone = []
    for path in sorted(where.glob("iam-audit-*.jsonl.gz")):
        week = path.name.removeprefix("iam-audit-").removesuffix(".jsonl.gz")
        if _WEEK.match(week) and week < limit:
            path.unlink()
            gone.append(path.name)
    if gone:
        with services.transaction() as session:
            audit.record(
                session,
                "audit.archive_pruned",
                actor="system",
                details={"files": gone[:50], "count": len(gone)},
            )
    return gone
