"""The monthly review (Čačak Član 30): the security officer reads the month's significant and
critical events and signs the month off — recorded (``audit_reviews``) and audited
(``audit.review_signed``). A month not signed off by ``audit_review.due_day`` of the next month
is overdue: the security officer is reminded by mail every ``reminder_days`` and each reminder
is recorded (``audit.review_overdue``). Months are the organisation's calendar months."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam import audit, clock, i18n, jobs
from iam.audit_report.service import ReportQuery, events
from iam.errors import Conflict, ValidationFailed
from iam.models.audit import AuditEvent, Severity
from iam.models.audit_ops import AuditReview

if TYPE_CHECKING:
    from iam.services import Services

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def may_review(services: Services, sub: str, username: str) -> bool:
    """Security officers (as PIM and access reviews name them: their lists and groups, and any
    test a feature registered in :mod:`iam.privileged`) and ``audit_review.reviewers``."""
    from iam.directory.errors import DirectoryError
    from iam.privileged import is_security_officer

    s = services.settings
    name = username.casefold()
    named = [*s.audit_review.reviewers, *s.reviews.security_officers, *s.pim.security_officers]
    if name in {n.casefold() for n in named} or is_security_officer(services, sub):
        return True
    groups = {g.casefold() for g in (s.reviews.security_officer_group, s.pim.security_officer_group) if g}
    if not groups:
        return False
    try:
        return any(g.casefold() in groups for g in services.directory.user_groups(sub))
    except DirectoryError:
        return False  # deny while the directory cannot say


def may_read(services: Services, sub: str, username: str) -> bool:
    """Who may read audit reports: the reviewers and ``audit_review.auditors`` (read only)."""
    auditors = {n.casefold() for n in services.settings.audit_review.auditors}
    return username.casefold() in auditors or may_review(services, sub, username)


def month_bounds(month: str, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Start and end (UTC) of ``month`` (``2026-11``) in the organisation's zone."""
    m = _MONTH.match(month)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValidationFailed(f"{month!r} is not a month such as 2026-11.")
    tz = zoneinfo.ZoneInfo(zone)
    year, mon = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, mon, 1, tzinfo=tz)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def month_of(moment: dt.datetime, zone: str) -> str:
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m")


def previous_month(zone: str) -> str:
    first = clock.now().astimezone(zoneinfo.ZoneInfo(zone)).replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def due_at(month: str, zone: str, due_day: int) -> dt.datetime:
    _, end = month_bounds(month, zone)
    local = end.astimezone(zoneinfo.ZoneInfo(zone))
    return (local + dt.timedelta(days=due_day)).astimezone(dt.UTC)


@dataclass(frozen=True)
class MonthReview:
    month: str
    query: ReportQuery
    events: list[AuditEvent]
    signed: AuditReview | None
    ended: bool
    due: dt.datetime
    overdue: bool

    def last_day(self, zone: str) -> str:
        """The last day (in ``zone``) on which the sign-off is in time: ``2026-12-10``."""
        return (self.due - dt.timedelta(seconds=1)).astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d")


def load(services: Services, session: Session, month: str) -> MonthReview:
    zone = services.settings.timezone
    start, end = month_bounds(month, zone)
    q = ReportQuery(start, end, severity=Severity.SIGNIFICANT.value)
    row = session.get(AuditReview, month)
    signed = row if row is not None and row.signed_at is not None else None
    due = due_at(month, zone, services.settings.audit_review.due_day)
    now = clock.now()
    return MonthReview(month, q, events(session, q), signed, now >= end, due, signed is None and now >= due)


def sign_off(
    services: Services,
    session: Session,
    *,
    month: str,
    actor: str,
    comment: str = "",
    ip: str | None = None,
    user_agent: str | None = None,
) -> AuditReview:
    """Record that ``actor`` read the month's significant and critical events (caller commits)."""
    review = load(services, session, month)
    if not review.ended:
        raise ValidationFailed(f"The month {month} has not ended yet; it is signed off after its end.")
    if review.signed is not None:
        raise Conflict(f"The month {month} was already signed off by {review.signed.signed_by}.")
    last_seq = session.scalar(select(func.max(AuditEvent.seq)))
    row = session.get(AuditReview, month) or AuditReview(month=month, events=0, reminders=0)
    row.signed_by, row.signed_at, row.comment = actor, clock.now(), (comment or "").strip()[:4000] or None
    row.events, row.last_seq = len(review.events), last_seq
    session.add(row)
    audit.record(
        session,
        "audit.review_signed",
        actor=actor,
        ip=ip,
        user_agent=user_agent,
        details={"month": month, "events": len(review.events), "comment": row.comment or ""},
    )
    session.flush()
    return row


def remind_overdue(services: Services) -> list[str]:
    """Remind the security officer of each overdue month (the last 12), at most every
    ``reminder_days``; each reminder is audited. Returns the months reminded."""
    s = services.settings
    zone = s.timezone
    now = clock.now()
    reminded = []
    month = previous_month(zone)
    with services.transaction() as session:
        for _ in range(12):
            start, _end = month_bounds(month, zone)
            row = session.get(AuditReview, month)
            first_event = session.scalar(select(func.min(AuditEvent.at)))
            if first_event is None or first_event >= _end:
                break  # nothing was recorded yet in that month or before
            due = due_at(month, zone, s.audit_review.due_day)
            signed = row is not None and row.signed_at is not None
            recent = (
                row is not None
                and row.reminded_at is not None
                and (now - row.reminded_at < dt.timedelta(days=s.audit_review.reminder_days))
            )
            if not signed and now >= due and not recent:
                if row is None:
                    row = AuditReview(month=month, events=0, reminders=0)
                    session.add(row)
                row.reminded_at, row.reminders = now, (row.reminders or 0) + 1
                audit.record(
                    session,
                    "audit.review_overdue",
                    severity=Severity.SIGNIFICANT,
                    outcome="failure",
                    actor="system",
                    details={
                        "month": month,
                        "due": (due - dt.timedelta(seconds=1)).strftime("%Y-%m-%d"),
                        "reminder": row.reminders,
                    },
                )
                to = s.audit.security_officer_email
                if to:
                    subject, text = _overdue_mail(
                        services, i18n.for_recipient(s, session, email=to), month, due
                    )
                    jobs.enqueue(session, "iam.mail", {"to": to, "subject": subject, "text": text})
                reminded.append(month)
            first = start.astimezone(zoneinfo.ZoneInfo(zone))
            month = (first - dt.timedelta(days=1)).strftime("%Y-%m")
    return reminded


def _overdue_mail(services: Services, t: i18n.Translator, month: str, due: dt.datetime) -> tuple[str, str]:
    """The reminder of an overdue month, in the officer's language."""
    zone = zoneinfo.ZoneInfo(services.settings.timezone)
    page = f"{services.settings.issuer}/audit/review/{month}"
    last_day = i18n.format_moment(due - dt.timedelta(seconds=1), zone, t.catalogue, "date")
    text = (
        t.gettext(
            "The monthly review of the audit log for %(month)s was due on %(day)s and has not been "
            "signed off.",
            month=month,
            day=last_day,
        )
        + "\n\n"
        + t.gettext("Read and sign it off at %(url)s", url=page)
        + "\n"
    )
    return "[IAM] " + t.gettext("Monthly audit review %(month)s is overdue", month=month), text
