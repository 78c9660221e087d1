"""Evidence for the conformance report from PIM (R-PIM)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from iam.conformance.evidence import MET, NOT_CONFIGURED, NOT_MET, Context, Evidence, evidence
from pim.models import AdminAccount, Alert, ElevationRequest
from pim.roles import all_roles


@evidence("pim.separate_accounts")
def separate_accounts(ctx: Context, p: dict[str, Any]) -> Evidence:
    with ctx.services.reader() as session:
        roles = all_roles(session, ctx.services)
        accounts = session.scalar(select(func.count()).select_from(AdminAccount)) or 0
    if not roles:
        return Evidence(
            "pim.separate_accounts", NOT_CONFIGURED, "No privileged role is defined (policies/pim)."
        )
    return Evidence(
        "pim.separate_accounts",
        MET,
        f"{len(roles)} privileged roles are activated only on separate administrator accounts"
        f" ({accounts} adm- accounts); "
        "ordinary accounts never hold them",
        query="iam pim roles list --json; SELECT * FROM pim_admin_accounts",
    )


@evidence("pim.overstay")
def overstay(ctx: Context, p: dict[str, Any]) -> Evidence:
    """Elevations whose groups were taken back later than their end plus ``grace_minutes``."""
    import datetime as dt

    grace = dt.timedelta(minutes=float(p.get("grace_minutes", 5)))
    with ctx.services.reader() as session:
        rows = session.execute(
            select(
                ElevationRequest.id,
                ElevationRequest.requester_username,
                ElevationRequest.role,
                ElevationRequest.ends_at,
                ElevationRequest.removed_at,
            ).where(
                ElevationRequest.ends_at.is_not(None),
                ElevationRequest.ends_at >= ctx.start,
                ElevationRequest.ends_at < ctx.end,
                ElevationRequest.applied_at.is_not(None),
            )
        ).all()
    late = []
    for req_id, who, role, ends, removed in rows:
        if ends is None:
            continue
        done = removed or (ctx.now if ends < ctx.now else None)
        if done is not None and done - ends > grace:
            late.append(
                f"{who} {role} (request {req_id}): ended {ends:%Y-%m-%d %H:%M}, "
                + (f"removed {removed:%Y-%m-%d %H:%M}" if removed else "still not removed")
            )
    return Evidence(
        "pim.overstay",
        NOT_MET if late else MET,
        f"{len(late)} of {len(rows)} elevations outlived their end by more than {grace}"
        if late
        else f"All {len(rows)} elevations ended on time",
        items=late,
        query="SELECT id, requester_username, role, ends_at, removed_at FROM pim_requests"
        " WHERE removed_at > ends_at",
    )


@evidence("pim.break_glass")
def break_glass(ctx: Context, p: dict[str, Any]) -> Evidence:
    with ctx.services.reader() as session:
        roles = [r for r in all_roles(session, ctx.services).values() if r.break_glass]
        used = (
            session.scalar(
                select(func.count())
                .select_from(ElevationRequest)
                .where(
                    ElevationRequest.break_glass.is_(True),
                    ElevationRequest.requested_at >= ctx.start,
                    ElevationRequest.requested_at < ctx.end,
                )
            )
            or 0
        )
        unreviewed = (
            session.scalar(
                select(func.count())
                .select_from(ElevationRequest)
                .where(
                    ElevationRequest.break_glass.is_(True),
                    ElevationRequest.reviewed_at.is_(None),
                    ElevationRequest.review_due < ctx.now,
                )
            )
            or 0
        )
    if not roles:
        return Evidence("pim.break_glass", NOT_CONFIGURED, "No emergency (break-glass) role is defined.")
    return Evidence(
        "pim.break_glass",
        NOT_MET if unreviewed else MET,
        f"{len(roles)} emergency role(s); used {used} times in the period;"
        f" {unreviewed} use(s) not reviewed in time",
        query="SELECT * FROM pim_requests WHERE break_glass",
    )


@evidence("pim.outside")
def outside(ctx: Context, p: dict[str, Any]) -> Evidence:
    """Privileged members found outside PIM in the period and how fast they were handled."""
    with ctx.services.reader() as session:
        rows = session.execute(
            select(Alert.username, Alert.group, Alert.detected_at, Alert.resolved_at).where(
                Alert.detected_at >= ctx.start, Alert.detected_at < ctx.end
            )
        ).all()
    open_ = [f"{u} in {g} (found {d:%Y-%m-%d %H:%M}, not handled)" for u, g, d, r in rows if r is None]
    handled = [(r - d).total_seconds() / 60 for _, _, d, r in rows if r is not None]
    summary = f"{len(rows)} privileged changes outside PIM found; {len(open_)} not handled"
    if handled:
        summary += f"; handled in {min(handled):.0f}–{max(handled):.0f} min"
    return Evidence(
        "pim.outside",
        NOT_MET if open_ else MET,
        summary,
        items=open_,
        query="SELECT * FROM pim_alerts WHERE resolved_at IS NULL",
    )
