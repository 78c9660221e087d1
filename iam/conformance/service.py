"""Build one conformance report: every article of a rulebook, its status and live evidence.

The report is a JSON document (the source of the HTML and PDF forms); its SHA-256 over the
canonical JSON is recorded in the audit log (``conformance.report``), so a printed report can
be checked against the log later. Built twice for the same period from the same records, it
has the same hash, apart from ``generated_at``, which is outside the hashed body.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from iam import audit, clock
from iam.conformance import catalogue
from iam.conformance.evidence import MET, NOT_CONFIGURED, NOT_MET, Context, gather

if TYPE_CHECKING:
    from iam.services import Services

OUTSIDE = "outside the system"


def parse_period(text: str | None, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime, str]:
    """``2026`` (a year), ``2026-Q3``, ``2026-05`` (a month), ``2026-01-01..2026-06-30``; default:
    the twelve months up to now. Returns [start, end) in UTC and the label."""
    now = now or clock.now()
    if not text:
        return now - dt.timedelta(days=365), now, f"{(now - dt.timedelta(days=365)):%Y-%m-%d}..{now:%Y-%m-%d}"

    def day(s: str) -> dt.datetime:
        return dt.datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=dt.UTC)

    if m := re.fullmatch(r"(\d{4})", text):
        y = int(m[1])
        return dt.datetime(y, 1, 1, tzinfo=dt.UTC), dt.datetime(y + 1, 1, 1, tzinfo=dt.UTC), text
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
        y, q = int(m[1]), int(m[2])
        start = dt.datetime(y, 3 * q - 2, 1, tzinfo=dt.UTC)
        end = dt.datetime(y + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=dt.UTC)
        return start, end, text
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        y, mo = int(m[1]), int(m[2])
        start = dt.datetime(y, mo, 1, tzinfo=dt.UTC)
        return start, start + dt.timedelta(days=calendar.monthrange(y, mo)[1]), text
    if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text):
        return day(m[1]), day(m[2]) + dt.timedelta(days=1), text
    raise ValueError(f"{text!r} is not a period: give 2026, 2026-Q3, 2026-05 or 2026-01-01..2026-06-30.")


def _worst(statuses: list[str]) -> str:
    for status in (NOT_MET, NOT_CONFIGURED):
        if status in statuses:
            return status
    return MET


def build(
    services: Services, rulebook: str, *, period: str | None = None, language: str = "en"
) -> dict[str, Any]:
    """The report as a dictionary (see the module's docstring)."""
    from iam.app import load_feature_jobs

    load_feature_jobs()  # the feature packages register their evidence
    book = catalogue.load(rulebook)
    start, end, label = parse_period(period)
    ctx = Context(services, start, end, language)
    cache: dict[str, Any] = {}
    articles = []
    for article in book.articles:
        entry: dict[str, Any] = {
            "ref": article.ref,
            "rule": article.words(language),
            "rules": article.rules,
        }
        if article.outside:
            entry.update(status=OUTSIDE, outside=article.outside, evidence=[])
        else:
            found = []
            for check in article.checks:
                key = json.dumps([check.check, check.params], sort_keys=True)
                if key not in cache:
                    cache[key] = gather(ctx, check.check, check.params).as_dict()
                found.append(cache[key])
            entry.update(status=_worst([e["status"] for e in found]), evidence=found)
        articles.append(entry)
    totals: dict[str, int] = {}
    for a in articles:
        totals[a["status"]] = totals.get(a["status"], 0) + 1
    body = {
        "rulebook": {"id": book.id, "title": book.title, "title_en": book.title_en},
        "organisation": services.settings.organisation,
        "issuer": services.settings.issuer,
        "period": {"label": label, "start": start.isoformat(), "end": end.isoformat()},
        "language": language,
        "totals": totals,
        "articles": articles,
    }
    digest = hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    return {**body, "generated_at": clock.now().isoformat(), "sha256": digest}


def record(services: Services, report: dict[str, Any], *, actor: str, fmt: str) -> None:
    """Put the report's hash in the audit log (``conformance.report``)."""
    with services.transaction() as session:
        audit.record(
            session,
            "conformance.report",
            severity=audit.Severity.SIGNIFICANT,
            actor=actor,
            details={
                "rulebook": report["rulebook"]["id"],
                "period": report["period"]["label"],
                "sha256": report["sha256"],
                "format": fmt,
                "totals": report["totals"],
            },
        )
