"""Evidence for the conformance report from detection, AD change analysis and statistics."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from detect.models import Alert, Cursor, DirectoryChange, StatClient
from iam.conformance.evidence import MET, NOT_CONFIGURED, NOT_MET, Context, Evidence, evidence


@evidence("alerts.handling")
def alerts_handling(ctx: Context, p: dict[str, Any]) -> Evidence:
    """R-AUD-2: alerts raised in the period and how fast they were taken in hand
    (acknowledged or closed); an alert left untouched past ``max_minutes`` is not met."""
    bound = dt.timedelta(minutes=float(p.get("max_minutes", 60)))
    with ctx.services.reader() as session:
        rows = session.execute(
            select(Alert.id, Alert.title, Alert.first_at, Alert.handled_at, Alert.state).where(
                Alert.first_at >= ctx.start, Alert.first_at < ctx.end
            )
        ).all()
    late, times = [], []
    for alert_id, title, first, handled, state in rows:
        took = (handled or ctx.now) - first
        if handled is not None:
            times.append(took)
        if took > bound:
            when = f"handled after {took}" if handled else f"not handled ({state})"
            late.append(f"alert {alert_id}: {title} — raised {first:%Y-%m-%d %H:%M}, {when}")
    summary = f"{len(rows)} alerts in the period"
    if times:
        summary += f"; taken in hand in {min(times)} – {max(times)}"
    return Evidence(
        "alerts.handling",
        NOT_MET if late else MET,
        summary + (f"; {len(late)} over {bound}" if late else ""),
        items=late,
        query="iam detect alerts --json",
    )


@evidence("ad.changes")
def ad_changes(ctx: Context, p: dict[str, Any]) -> Evidence:
    """Cluj: AD transactions analysed — the change feed is on and current."""
    s = ctx.services.settings
    if s.directory.kind != "ad" or not s.detect.ad_changes:
        return Evidence(
            "ad.changes", NOT_CONFIGURED, "AD change analysis is off (detect.ad_changes) or no AD."
        )
    with ctx.services.reader() as session:
        cursor = session.scalars(select(Cursor).where(Cursor.name == "ad_usn")).first()
        n = session.scalar(
            select(func.count())
            .select_from(DirectoryChange)
            .where(DirectoryChange.at >= ctx.start, DirectoryChange.at < ctx.end)
        )
    stale = cursor is None or ctx.now - cursor.updated_at > dt.timedelta(hours=1)
    return Evidence(
        "ad.changes",
        NOT_MET if stale else MET,
        f"{n} changes made outside the provider recorded in the period; feed "
        + (
            "not read for over an hour"
            if stale
            else f"read {cursor.updated_at:%Y-%m-%d %H:%M}"
            if cursor
            else ""
        ),
        query="iam detect changes --json",
    )


@evidence("stats.per_agency")
def stats_per_agency(ctx: Context, p: dict[str, Any]) -> Evidence:
    """LGSP Điều 5.11–5.12: per connecting unit, connections and request counts are kept."""
    with ctx.services.reader() as session:
        clients = session.scalars(select(StatClient)).all()
    if not clients:
        return Evidence("stats.per_agency", NOT_CONFIGURED, "No connecting unit has been counted yet.")
    items = [
        f"{c.client_id} ({c.agency}): first {c.first_at:%Y-%m-%d}, last {c.last_at:%Y-%m-%d}" for c in clients
    ]
    return Evidence(
        "stats.per_agency",
        MET,
        f"Connection history and request counts kept for {len(clients)} connecting units (metadata only)",
        items=items,
        query="GET /api/v1/stats; iam detect stats --json",
    )
