"""Audit reports: which events (a period, a person, an application, a severity) and their rows
in words — readable event names, severities and outcomes in the reader's language, times in
the organisation's zone — as CSV. The PDF is :mod:`iam.audit_report.pdf`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from iam.audit_report.labels import event_label, outcome_label, severity_label
from iam.errors import ValidationFailed
from iam.models.audit import AuditEvent, Severity

#: The most rows one report holds (a longer period is split by the reader).
MAX_ROWS = 100_000

COLUMNS: list[tuple[str, Any]] = [
    ("at", _l("Time")),
    ("event", _l("Event")),
    ("severity", _l("Severity")),
    ("outcome", _l("Outcome")),
    ("actor", _l("Done by")),
    ("subject", _l("Concerning")),
    ("client_id", _l("Application")),
    ("ip", _l("Address")),
    ("details", _l("Details")),
    ("id", _l("Event number")),
]


@dataclass(frozen=True)
class ReportQuery:
    start: dt.datetime
    end: dt.datetime
    person: str | None = None
    client: str | None = None
    severity: str | None = None
    """Only this severity and above (``significant`` includes ``critical``)."""

    def describe(self) -> dict[str, str]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            **({"person": self.person} if self.person else {}),
            **({"client": self.client} if self.client else {}),
            **({"severity": self.severity} if self.severity else {}),
        }


def parse_query(
    start: str,
    end: str,
    *,
    person: str | None = None,
    client: str | None = None,
    severity: str | None = None,
    zone: str = "UTC",
) -> ReportQuery:
    """Build a query from text (dates ``2026-11-01`` in the organisation's zone, the end day
    included, or ISO times); a bad value is a :class:`ValidationFailed` with one sentence."""
    tz = zoneinfo.ZoneInfo(zone)

    def moment(text: str, *, end_of_day: bool) -> dt.datetime:
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                value = dt.datetime.combine(day, dt.time(), tzinfo=tz)
                return value + dt.timedelta(days=1) if end_of_day else value
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValidationFailed(
                f"{text!r} is not a date (2026-11-30) or a time (2026-11-30T14:00)."
            ) from None
        return value if value.tzinfo else value.replace(tzinfo=tz)

    s, e = moment(start, end_of_day=False), moment(end, end_of_day=True)
    if e <= s:
        raise ValidationFailed("The end of the period is before its start.")
    if severity and severity not in {x.value for x in Severity}:
        raise ValidationFailed(f"Unknown severity {severity!r}: normal, significant or critical.")
    return ReportQuery(
        s.astimezone(dt.UTC), e.astimezone(dt.UTC), person or None, client or None, severity or None
    )


def _severities(minimum: str | None) -> list[str]:
    order = [Severity.NORMAL, Severity.SIGNIFICANT, Severity.CRITICAL]
    if not minimum:
        return [s.value for s in order]
    return [s.value for s in order[order.index(Severity(minimum)) :]]


def events(session: Session, q: ReportQuery, *, limit: int = MAX_ROWS) -> list[AuditEvent]:
    """The events of the report, oldest first (the person is the one who acted or was acted on)."""
    stmt = select(AuditEvent).where(AuditEvent.at >= q.start, AuditEvent.at < q.end)
    if q.person:
        stmt = stmt.where(or_(AuditEvent.actor == q.person, AuditEvent.subject == q.person))
    if q.client:
        stmt = stmt.where(AuditEvent.client_id == q.client)
    if q.severity:
        stmt = stmt.where(AuditEvent.severity.in_(_severities(q.severity)))
    return list(session.scalars(stmt.order_by(AuditEvent.at, AuditEvent.id).limit(limit)))


def _details(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    return "; ".join(f"{str(k).replace('_', ' ')}: {v}" for k, v in details.items())


def rows(evs: list[AuditEvent], *, zone: str = "UTC") -> Iterator[dict[str, str]]:
    """Each event in words, with the time in ``zone``."""
    tz = zoneinfo.ZoneInfo(zone)
    for ev in evs:
        local = ev.at.astimezone(tz)
        yield {
            "at": f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}",
            "event": event_label(ev.event),
            "severity": severity_label(ev.severity),
            "outcome": outcome_label(ev.outcome),
            "actor": ev.actor or "",
            "subject": ev.subject or "",
            "client_id": ev.client_id or "",
            "ip": ev.ip or "",
            "details": _details(ev.details),
            "id": str(ev.id),
            "code": ev.event,
        }


def to_csv(evs: list[AuditEvent], *, zone: str = "UTC") -> str:
    """CSV with a header row of readable column names (plus the event code, for filtering)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([str(label) for _, label in COLUMNS] + [str(_l("Event code"))])
    for row in rows(evs, zone=zone):
        writer.writerow([_safe(row[key]) for key, _ in COLUMNS] + [row["code"]])
    return out.getvalue()


def _safe(value: str) -> str:
    """No formula injection when the CSV is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
