"""Evidence for the conformance report from HR provisioning and access reviews (R-JML, R-REV)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from iam.conformance.evidence import MET, NOT_CONFIGURED, NOT_MET, Context, Evidence, evidence
from provisioning.models import EventKind, EventStatus, HrEvent
from provisioning.reviews.models import Campaign, CampaignItem, CampaignStatus


def _minutes(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


@evidence("jml.leaver_latency")
def leaver_latency(ctx: Context, p: dict[str, Any]) -> Evidence:
    """How long leavers' accounts stayed enabled: from the later of the leaving time and HR's
    message to the disable in the directory (R-JML-5); p50, p99, the slowest, and every leaver
    above ``max_minutes``."""
    bound = float(p.get("max_minutes", 120))
    with ctx.services.reader() as session:
        rows = session.execute(
            select(
                HrEvent.id,
                HrEvent.employee_number,
                HrEvent.effective_at,
                HrEvent.accepted_at,
                HrEvent.applied_at,
                HrEvent.status,
            ).where(
                HrEvent.kind == EventKind.LEAVER,
                HrEvent.effective_at >= ctx.start,
                HrEvent.effective_at < ctx.end,
            )
        ).all()
    if not rows:
        return Evidence("jml.leaver_latency", MET, "No leaver in the period", query=_leaver_query(ctx))
    delays: list[tuple[float, str]] = []
    for event_id, employee, effective, accepted, applied, status in rows:
        start = max(effective, accepted)
        end = applied if applied is not None and status == EventStatus.APPLIED else ctx.now
        delays.append(
            (
                _minutes(max(end - start, dt.timedelta(0))),
                f"{employee} (event {event_id}, leaving {effective:%Y-%m-%d %H:%M}, "
                + (
                    f"disabled {applied:%Y-%m-%d %H:%M})"
                    if applied is not None
                    else f"still not applied: {status})"
                ),
            )
        )
    delays.sort()
    p50 = delays[len(delays) // 2][0]
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))][0]
    slow = [f"{d} min — {what}" for d, what in delays if d > bound]
    slowest = delays[-1]
    summary = (
        f"{len(delays)} leavers; p50 {p50} min, p99 {p99} min, slowest {slowest[0]} min ({slowest[1]});"
        f" limit {bound:g} min"
    )
    return Evidence(
        "jml.leaver_latency",
        NOT_MET if slow else MET,
        (f"{len(slow)} leaver(s) over the limit. " if slow else "") + summary,
        items=slow,
        count=len(slow),
        query=_leaver_query(ctx),
    )


def _leaver_query(ctx: Context) -> str:
    return (
        "SELECT id, employee_number, effective_at, accepted_at, applied_at, status FROM hr_events "  # noqa: S608
        f"WHERE kind = 'leaver' AND effective_at >= '{ctx.start:%Y-%m-%d}'"
        f" AND effective_at < '{ctx.end:%Y-%m-%d}'"
    )


@evidence("jml.birthright")
def birthright(ctx: Context, p: dict[str, Any]) -> Evidence:
    s = ctx.services.settings.provisioning
    return Evidence(
        "jml.birthright",
        MET,
        "New accounts get only the birthright groups of their department and title"
        " (policies/provisioning); nothing else until granted",
        items=[f"birthright rules: {getattr(s, 'birthright_file', 'policies/provisioning')}"],
        query="iam hr rules --json",
    )


@evidence("jml.mover_review")
def mover_review(ctx: Context, p: dict[str, Any]) -> Evidence:
    with ctx.services.reader() as session:
        movers = session.scalar(
            select(func.count())
            .select_from(HrEvent)
            .where(
                HrEvent.kind == EventKind.MOVER,
                HrEvent.effective_at >= ctx.start,
                HrEvent.effective_at < ctx.end,
            )
        )
        reviews = session.scalar(
            select(func.count())
            .select_from(Campaign)
            .where(
                Campaign.trigger == "mover", Campaign.started_at >= ctx.start, Campaign.started_at < ctx.end
            )
        )
    ok = (reviews or 0) >= (movers or 0) or not movers
    return Evidence(
        "jml.mover_review",
        MET if ok else NOT_MET,
        f"{movers} movers, {reviews} mover reviews started in the period",
        query="SELECT count(*) FROM review_campaigns WHERE trigger = 'mover'",
    )


def _last_campaign(ctx: Context, privileged: bool) -> tuple[Campaign | None, int, int]:
    with ctx.services.reader() as session:
        query = select(Campaign).where(Campaign.status == CampaignStatus.CLOSED, Campaign.closed_at < ctx.end)
        rows = session.scalars(query.order_by(Campaign.closed_at.desc())).all()
        for c in rows:
            kind = (
                str((c.spec.get("scope") or {}).get("kind", "everyone"))
                if isinstance(c.spec, dict)
                else "everyone"
            )
            if privileged and kind != "privileged":
                continue
            if not privileged and kind == "privileged":
                continue
            total = (
                session.scalar(
                    select(func.count()).select_from(CampaignItem).where(CampaignItem.campaign_id == c.id)
                )
                or 0
            )
            decided = (
                session.scalar(
                    select(func.count())
                    .select_from(CampaignItem)
                    .where(CampaignItem.campaign_id == c.id, CampaignItem.decision.is_not(None))
                )
                or 0
            )
            return c, int(total), int(decided)
    return None, 0, 0


def _review_evidence(name: str, ctx: Context, p: dict[str, Any], privileged: bool) -> Evidence:
    days = int(p.get("max_days", 365))
    c, total, decided = _last_campaign(ctx, privileged)
    query = "iam review list --json   # closed campaigns" + (" of privileged scope" if privileged else "")
    if c is None or c.closed_at is None:
        return Evidence(name, NOT_MET, "No access review has been completed", query=query)
    age = ctx.now - c.closed_at
    coverage = f"{decided} of {total} items decided ({100 * decided // total if total else 100} %)"
    ok = age <= dt.timedelta(days=days)
    return Evidence(
        name,
        MET if ok else NOT_MET,
        f"Last completed review “{c.title}” closed {c.closed_at:%Y-%m-%d}: {coverage}"
        + ("" if ok else f"; older than {days} days"),
        items=[f"campaign {c.id}, started {c.started_at:%Y-%m-%d}, due {c.due_at:%Y-%m-%d}"],
        query=query,
    )


@evidence("reviews.last")
def reviews_last(ctx: Context, p: dict[str, Any]) -> Evidence:
    return _review_evidence("reviews.last", ctx, p, privileged=False)


@evidence("reviews.privileged")
def reviews_privileged(ctx: Context, p: dict[str, Any]) -> Evidence:
    return _review_evidence("reviews.privileged", ctx, p, privileged=True)


__all__ = ["NOT_CONFIGURED"]
