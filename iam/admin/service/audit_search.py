"""The console's audit search: filters, keyset pages (newest first by ``(at, id)``, never
OFFSET), people named by name instead of GUID, the CSV export, and the chain's last
verification.

A person filter matches events where one of the person's accounts is the actor or the
subject — by directory id, and by the username typed at a refused sign-in (``login.failed``
records what was typed). Each of the two is its own index range (``actor``/``subject`` lead an
index ending in ``at, id``): two bounded queries merged here, so a page costs the same on a
million rows as on a thousand.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, or_, select, tuple_
from sqlalchemy.orm import Session

from iam import persons
from iam.errors import ValidationFailed
from iam.models.audit import AuditEvent, AuditVerification, Severity
from iam.models.identity import Identity

if TYPE_CHECKING:
    from iam.services import Services

OUTCOMES = ("success", "failure")
SEVERITIES = tuple(s.value for s in Severity)


@dataclass(frozen=True)
class Matched:
    """A person the name filter found."""

    sub: str
    username: str
    name: str


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    person: str = ""
    """A name, username or e-mail (resolved to accounts), never a GUID the user must know."""
    client_id: str = ""
    event: str = ""
    """An event name, or a prefix ending in ``.`` or ``*`` (``login.`` = every sign-in event)."""
    severity: str = ""
    outcome: str = ""
    ip: str = ""
    accounts: tuple[str, ...] = ()
    """Account ids (a person's page): instead of a name, exactly these accounts."""

    def check(self) -> None:
        if self.severity and self.severity not in SEVERITIES:
            raise ValidationFailed("Unknown severity.")
        if self.outcome and self.outcome not in OUTCOMES:
            raise ValidationFailed("Unknown outcome.")
        if self.since and self.until and self.since >= self.until:
            raise ValidationFailed("The start of the time range must be before its end.")
        for value in (self.person, self.client_id, self.event, self.ip):
            if len(value) > 256:
                raise ValidationFailed("A filter is too long.")


@dataclass(frozen=True)
class Cursor:
    at: dt.datetime
    id: int

    def encode(self) -> str:
        raw = f"{self.at.astimezone(dt.UTC).isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            at, _, ident = raw.partition("|")
            moment = dt.datetime.fromisoformat(at)
            return cls(moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC), int(ident))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ValidationFailed("The page link is not valid; start the search again.") from None


@dataclass
class Page:
    rows: list[AuditEvent]
    next: Cursor | None
    matched: list[Matched] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    """sub → "Display Name (username)" for the actors and subjects on the page."""


def resolve_people(services: Services, session: Session, text: str, *, limit: int = 20) -> list[Matched]:
    """People whose name, username or e-mail contains ``text``: accounts the provider knows
    (signed in at least once) and the directory's (which also knows employee numbers)."""
    words = text.split()
    if not words:
        return []
    from iam.admin.service.people import matches

    longest = max(words, key=len)

    def like(word: str) -> str:
        return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"

    found: dict[str, Matched] = {}
    every_word = [
        or_(
            Identity.username.ilike(like(w), escape="\\"),
            Identity.display_name.ilike(like(w), escape="\\"),
            Identity.email.ilike(like(w), escape="\\"),
        )
        for w in words
    ]
    for row in session.scalars(select(Identity).where(*every_word).order_by(Identity.username).limit(limit)):
        found[row.sub] = Matched(row.sub, row.username, row.display_name or row.username)
    try:
        users = services.directory.search_users(query=longest, page_size=limit * 5)
        for user in itertools.islice((u for u in users if matches(u, words)), limit):
            found.setdefault(user.id, Matched(user.id, user.username, user.name))
        close = getattr(users, "close", None)
        if close is not None:
            close()
    except Exception:  # noqa: BLE001, S110 — the directory down: the provider's own names still match
        pass
    return list(found.values())[:limit]


def _person_keys(
    services: Services, session: Session, matched: Sequence[Matched]
) -> tuple[set[str], set[str]]:
    """(ids, names): every account of the matched people (linked accounts too) and the names a
    refused sign-in records as its actor."""
    ids: set[str] = set()
    for m in matched:
        ids |= persons.accounts_of(session, m.sub)
    ids, names = _account_keys(session, ids)
    return ids, names | {m.username for m in matched}


def _account_keys(session: Session, ids: set[str]) -> tuple[set[str], set[str]]:
    names = set(session.scalars(select(Identity.username).where(Identity.sub.in_(ids))))
    return ids, names


def _filtered(f: Filters, cursor: Cursor | None) -> Select[Any]:
    q = select(AuditEvent)
    if f.since:
        q = q.where(AuditEvent.at >= f.since)
    if f.until:
        q = q.where(AuditEvent.at < f.until)
    if f.client_id:
        q = q.where(AuditEvent.client_id == f.client_id.strip())
    if f.event:
        name = f.event.strip()
        if name.endswith(("*", ".")):
            prefix = name.rstrip("*")
            # a range, not LIKE: it uses the (event, at, id) index under any collation
            q = q.where(AuditEvent.event >= prefix, AuditEvent.event < prefix + "\U0010ffff")
        else:
            q = q.where(AuditEvent.event == name)
    if f.severity:
        q = q.where(AuditEvent.severity == f.severity)
    if f.outcome:
        q = q.where(AuditEvent.outcome == f.outcome)
    if f.ip:
        q = q.where(AuditEvent.ip == f.ip.strip())
    if cursor is not None:
        q = q.where(tuple_(AuditEvent.at, AuditEvent.id) < tuple_(cursor.at, cursor.id))
    return q.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())


def search(
    services: Services, session: Session, f: Filters, *, size: int, cursor: Cursor | None = None
) -> Page:
    """One page of events matching ``f``, newest first, after ``cursor``."""
    f.check()
    matched: list[Matched] = []
    if f.person.strip() or f.accounts:
        if f.accounts:
            ids, names = _account_keys(session, set(f.accounts))
        else:
            matched = resolve_people(services, session, f.person)
            if not matched:
                return Page([], None, [])
            ids, names = _person_keys(services, session, matched)
        base = _filtered(f, cursor)
        branches = [
            base.where(AuditEvent.actor.in_(sorted(ids | names))),
            base.where(AuditEvent.subject.in_(sorted(ids))),
        ]
        merged: dict[int, AuditEvent] = {}
        for branch in branches:
            for row in session.scalars(branch.limit(size + 1)):
                merged[row.id] = row
        rows = sorted(merged.values(), key=lambda r: (r.at, r.id), reverse=True)[: size + 1]
    else:
        rows = list(session.scalars(_filtered(f, cursor).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    nxt = Cursor(rows[-1].at, rows[-1].id) if more and rows else None
    return Page(rows, nxt, matched, display_names(session, rows, services.directory))


def display_names(
    session: Session, rows: Sequence[AuditEvent], directory: Any = None, *, ask: int = 10
) -> dict[str, str]:
    """The people behind the ids on a page, as "Name (username)": accounts the provider knows,
    then (up to ``ask`` of the rest, when ``directory`` is given) the directory's — an admin
    account that never signed in here is named too, not shown as a GUID."""
    ids = {v for r in rows for v in (r.actor, r.subject) if v}
    if not ids:
        return {}
    out: dict[str, str] = {}

    def label(name: str | None, username: str) -> str:
        return f"{name} ({username})" if name and name != username else username

    for row in session.scalars(select(Identity).where(Identity.sub.in_(ids))):
        out[row.sub] = label(row.display_name, row.username)
    if directory is not None:
        unknown = sorted(i for i in ids - set(out) if _looks_like_id(i))[:ask]
        for sub in unknown:
            try:
                user = directory.get_user(sub)
            except Exception:  # noqa: BLE001 — the directory down: the id stays as it is
                break
            if user is not None:
                out[sub] = label(user.name, user.username)
    return out


def _looks_like_id(value: str) -> bool:
    """A directory id (objectGUID) — not a typed username, ``system`` or ``client:…``."""
    return len(value) == 36 and value.count("-") == 4


CSV_COLUMNS = (
    "id",
    "at",
    "event",
    "severity",
    "outcome",
    "actor",
    "actor_name",
    "subject",
    "subject_name",
    "client_id",
    "ip",
    "details",
)


def export(services: Services, session: Session, f: Filters, *, batch: int = 1000) -> Iterator[list[Any]]:
    """Every matching event (header row first), read in keyset pages of ``batch``."""
    import json

    yield list(CSV_COLUMNS)
    cursor: Cursor | None = None
    while True:
        page = search(services, session, f, size=batch, cursor=cursor)
        for r in page.rows:
            yield [
                r.id,
                r.at.astimezone(dt.UTC).isoformat(),
                r.event,
                r.severity,
                r.outcome,
                r.actor or "",
                page.names.get(r.actor or "", ""),
                r.subject or "",
                page.names.get(r.subject or "", ""),
                r.client_id or "",
                r.ip or "",
                json.dumps(r.details or {}, sort_keys=True, ensure_ascii=False),
            ]
        if page.next is None:
            return
        cursor = page.next
        session.expunge_all()  # a long export keeps no rows in memory


@dataclass(frozen=True)
class Verification:
    at: dt.datetime
    ok: bool
    checked: int
    problem: str | None


def last_verification(session: Session) -> Verification | None:
    """The chain's latest verification."""
    row = session.scalars(select(AuditVerification).order_by(AuditVerification.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Verification(row.at, row.ok, row.checked, row.problem)


def verify_and_record(services: Services, *, actor: str) -> Verification:
    """Verify the whole chain (:func:`iam.audit.verify`) and keep the result; a failure is also
    a critical audit event (the security officer is told)."""
    from iam import audit, clock

    with services.reader() as session:
        result = audit.verify(session)
    now = clock.now()
    with services.transaction() as session:
        session.add(
            AuditVerification(
                at=now,
                ok=result.ok,
                checked=result.checked,
                unsealed=result.unsealed,
                problem=result.problem,
                actor=actor,
            )
        )
        if not result.ok:
            audit.record(
                session,
                "audit.verify_failed",
                severity=audit.Severity.CRITICAL,
                outcome="failure",
                actor=actor,
                details={"checked": result.checked, "problem": result.problem},
            )
    return Verification(now, result.ok, result.checked, result.problem)


def verify_if_due(services: Services, interval: float) -> Verification | None:
    """The worker's periodic check: verify when the latest verification is older than
    ``interval`` seconds (kept in the database, so a restarted worker does not verify again)."""
    from iam import clock

    with services.reader() as session:
        last = last_verification(session)
    if last is not None and (clock.now() - last.at).total_seconds() < interval:
        return None
    return verify_and_record(services, actor="system")
