"""Per-agency statistics (R-AUD-4, LGSP Điều 5.11–5.12), metadata only (Điều 5.3).

The worker's task :func:`run` reads sealed audit events after its own cursor and adds them to
compact counters — (day, client, agency code, metric) → count — with one upsert per distinct
counter per batch; pages and the API read only the counters, never the audit log."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from detect.models import StatClient, StatCounter
from detect.service import cursor
from iam.db import is_postgres

if TYPE_CHECKING:
    from iam.services import Services

CURSOR = "stats"
NO_CLIENT = "-"
"""Counter rows for events of no application (a sign-in at the provider's own pages)."""
_UNSAFE = re.compile(r"[^a-z0-9_.:-]+")
REFUSALS = ("token.", "authorize.", "login.", "mfa.", "card.")


def _clean(value: object, size: int = 60) -> str:
    return _UNSAFE.sub("_", str(value).lower())[:size] or "other"


def metrics_of(event: str, outcome: str, details: dict[str, Any]) -> list[str]:
    """The counters one audit event adds to (none for most events)."""
    if event == "token.issued":
        grant = _clean(details.get("grant_type") or "unknown")
        out = [f"token:{grant}"]
        if grant == "authorization_code":
            out.append("signin")
        return out
    if event == "login.succeeded":
        return ["login"]
    if outcome == "failure" and event.startswith(REFUSALS):
        reason = details.get("reason") or details.get("error") or event
        return [f"refused:{_clean(reason)}"]
    return []


@dataclass
class Batch:
    counts: Counter[tuple[dt.date, str, str, str]] = field(default_factory=Counter)
    seen: dict[tuple[str, str], tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)


class Agencies:
    """Client id → agency code, read once per pass."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._codes: dict[str, str] | None = None

    def __call__(self, client_id: str) -> str:
        if self._codes is None:
            from sso.models import Client

            rows = self.session.execute(select(Client.client_id, Client.agency_code)).all()
            self._codes = {str(c): str(a or "") for c, a in rows}
        return self._codes.get(client_id, "")


def aggregate(rows: Iterable[Sequence[Any]], agency_of: Agencies) -> Batch:
    batch = Batch()
    for _id, _seq, at, event, outcome, _actor, _subject, client_id, _ip, details in rows:
        names = metrics_of(event, outcome, details or {})
        if not names:
            continue
        client = str(client_id) if client_id else NO_CLIENT
        agency = agency_of(client) if client_id else ""
        day = at.date()
        for name in names:
            batch.counts[(day, client, agency, name)] += 1
        if client_id:
            first, last = batch.seen.get((client, agency), (at, at))
            batch.seen[(client, agency)] = (min(first, at), max(last, at))
    return batch


def _insert(session: Session) -> Any:
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def store(session: Session, batch: Batch) -> None:
    """Add the batch to the counters (upserts; the same code on SQLite and PostgreSQL)."""
    insert = _insert(session)
    if batch.counts:
        rows = [
            {"day": d, "client_id": c, "agency": a, "metric": m, "count": n}
            for (d, c, a, m), n in sorted(batch.counts.items())
        ]
        stmt = insert(StatCounter)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "client_id", "agency", "metric"],
            set_={"count": StatCounter.count + stmt.excluded["count"]},
        )
        for i in range(0, len(rows), 1000):
            session.execute(stmt, rows[i : i + 1000])
    if batch.seen:
        least, greatest = (func.least, func.greatest) if is_postgres(session) else (func.min, func.max)
        rows = [
            {"client_id": c, "agency": a, "first_at": f, "last_at": la}
            for (c, a), (f, la) in sorted(batch.seen.items())
        ]
        stmt = insert(StatClient)
        stmt = stmt.on_conflict_do_update(
            index_elements=["client_id", "agency"],
            set_={
                "first_at": least(StatClient.first_at, stmt.excluded["first_at"]),
                "last_at": greatest(StatClient.last_at, stmt.excluded["last_at"]),
            },
        )
        session.execute(stmt, rows)


def run(services: Services, *, limit: int | None = None) -> int:
    """One pass: count the sealed events after the cursor; return how many were read."""
    with services.transaction() as session:
        pos = cursor.lock(session, CURSOR)
        rows = cursor.events_after(session, pos, limit or services.settings.detect.batch)
        if not rows:
            return 0
        store(session, aggregate(rows, Agencies(session)))
        cursor.move(session, CURSOR, int(rows[-1][1]))
        return len(rows)


# -- reading ---------------------------------------------------------------------------------------
class ClientStats(BaseModel):
    """One application (client) of one agency over the period."""

    client_id: str
    agency: str
    first_connection: dt.datetime | None
    last_connection: dt.datetime | None
    metrics: dict[str, int]
    """Counts by metric: ``signin``, ``login``, ``token:<grant>``, ``refused:<reason>``."""


class DailyCount(BaseModel):
    day: dt.date
    metric: str
    count: int


class StatsReport(BaseModel):
    """``GET /api/v1/stats``: per client and agency code, and the daily series (UTC days)."""

    start: dt.date
    end: dt.date
    client_id: str | None = None
    agency: str | None = None
    clients: list[ClientStats]
    daily: list[DailyCount]


def report(
    session: Session,
    *,
    start: dt.date,
    end: dt.date,
    client_id: str | None = None,
    agency: str | None = None,
) -> StatsReport:
    """Counters for ``start``..``end`` (inclusive), optionally one client or one agency."""
    cond = [StatCounter.day >= start, StatCounter.day <= end]
    if client_id:
        cond.append(StatCounter.client_id == client_id)
    if agency is not None:
        cond.append(StatCounter.agency == agency)
    totals = session.execute(
        select(StatCounter.client_id, StatCounter.agency, StatCounter.metric, func.sum(StatCounter.count))
        .where(*cond)
        .group_by(StatCounter.client_id, StatCounter.agency, StatCounter.metric)
    ).all()
    per: dict[tuple[str, str], dict[str, int]] = {}
    for c, a, m, n in totals:
        per.setdefault((str(c), str(a)), {})[str(m)] = int(n or 0)
    seen = {
        (str(r.client_id), str(r.agency)): r
        for r in session.scalars(select(StatClient).where(StatClient.client_id.in_([c for c, _ in per])))
    }
    clients = [
        ClientStats(
            client_id=c,
            agency=a,
            first_connection=seen[(c, a)].first_at if (c, a) in seen else None,
            last_connection=seen[(c, a)].last_at if (c, a) in seen else None,
            metrics=dict(sorted(m.items())),
        )
        for (c, a), m in sorted(per.items())
    ]
    daily_rows = session.execute(
        select(StatCounter.day, StatCounter.metric, func.sum(StatCounter.count))
        .where(*cond)
        .group_by(StatCounter.day, StatCounter.metric)
        .order_by(StatCounter.day, StatCounter.metric)
    ).all()
    daily = [DailyCount(day=d, metric=str(m), count=int(n or 0)) for d, m, n in daily_rows]
    return StatsReport(start=start, end=end, client_id=client_id, agency=agency, clients=clients, daily=daily)


CSV_HEADER = ["day", "client_id", "agency", "metric", "count"]


def csv_rows(
    session: Session, *, start: dt.date, end: dt.date, client_id: str | None = None, agency: str | None = None
) -> Iterable[list[str]]:
    cond = [StatCounter.day >= start, StatCounter.day <= end]
    if client_id:
        cond.append(StatCounter.client_id == client_id)
    if agency is not None:
        cond.append(StatCounter.agency == agency)
    stmt = (
        select(
            StatCounter.day, StatCounter.client_id, StatCounter.agency, StatCounter.metric, StatCounter.count
        )
        .where(*cond)
        .order_by(StatCounter.day, StatCounter.client_id, StatCounter.agency, StatCounter.metric)
    )
    for d, c, a, m, n in session.execute(stmt):
        yield [d.isoformat(), str(c), str(a), str(m), str(n)]


def prometheus_totals(session: Session, top: int) -> list[tuple[str, str, str, int]]:
    """All-time totals by (client, agency, metric), the ``top`` busiest clients by name and the
    rest summed as client ``other`` / agency ``other``: the label set stays bounded."""
    rows = session.execute(
        select(
            StatCounter.client_id, StatCounter.agency, StatCounter.metric, func.sum(StatCounter.count)
        ).group_by(StatCounter.client_id, StatCounter.agency, StatCounter.metric)
    ).all()
    volume: Counter[str] = Counter()
    for c, _a, _m, n in rows:
        volume[str(c)] += int(n or 0)
    keep = {c for c, _ in volume.most_common(top)}
    out: Counter[tuple[str, str, str]] = Counter()
    for c, a, m, n in rows:
        label = (str(c), str(a)) if str(c) in keep else ("other", "other")
        out[(*label, str(m))] += int(n or 0)
    return [(c, a, m, n) for (c, a, m), n in sorted(out.items())]
