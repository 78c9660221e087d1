"""What each person may see: their own roles and history, the approver's inbox, the security
officer's overview. Every list is filtered here, not in the views (deny by default)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import clock, persons
from iam.audit import Severity
from iam.errors import Forbidden, NotFound
from iam.i18n import N_
from pim.models import LIVE_STATES, Alert, Decision, ElevationRequest, Eligibility, State
from pim.roles import Role, all_roles
from pim.service.accounts import eligible_roles
from pim.service.common import (
    Actor,
    is_security_officer,
    may_approve,
    refuse,
    remaining,
    require_officer,
)

if TYPE_CHECKING:
    from iam.services import Services


FAILED_VISIBLE_DAYS = 30
"""The officer's overview lists failed activations of the last this many days (those not
followed by a newer request of the same person for the same role)."""


def request_dict(req: ElevationRequest, *, decisions: list[Decision] | None = None) -> dict[str, Any]:
    left = remaining(req) if req.state in LIVE_STATES else None
    out: dict[str, Any] = {
        "id": req.id,
        "role": req.role,
        "requester": req.requester_username,
        "state": req.state,
        "justification": req.justification,
        "ticket": req.ticket,
        "minutes": req.duration // 60,
        "level": req.level,
        "break_glass": req.break_glass,
        "approvals_required": req.approvals_required,
        "requested_at": req.requested_at,
        "pending_until": req.pending_until,
        "starts_at": req.starts_at,
        "ends_at": req.ends_at,
        "ended_at": req.ended_at,
        "ended_by": req.ended_by,
        "end_reason": req.end_reason,
        "admin_account": req.admin_username,
        "groups": list(req.groups or []),
        "applied_at": req.applied_at,
        "removed_at": req.removed_at,
        "remaining_seconds": int(left.total_seconds()) if left is not None else None,
        "password_available": bool(req.secret) and req.secret_shown_at is None and req.state == State.ACTIVE,
        "review_due": req.review_due,
        "reviewed_at": req.reviewed_at,
        "reviewed_by": req.reviewed_by,
    }
    if decisions is not None:
        out["decisions"] = [
            {"approver": d.approver_username, "approve": d.approve, "comment": d.comment, "at": d.at}
            for d in decisions
        ]
    return out


def role_dict(role: Role) -> dict[str, Any]:
    return role.model_dump()


def _latest_failed(rows: Sequence[ElevationRequest]) -> list[ElevationRequest]:
    """Requests that failed and are still the latest of their requester for their role: the
    problem stands until the role is requested again (rows newest first)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in rows:
        key = (r.requester_sub, r.role)
        if key in seen:
            continue
        seen.add(key)
        if r.state == State.FAILED:
            out.append(r)
    return out


def mine(session: Session, services: Services, actor: Actor) -> dict[str, Any]:
    rows = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.requester_sub == actor.sub)
        .order_by(ElevationRequest.requested_at.desc())
        .limit(200)
    ).all()
    return {
        "failed": [request_dict(r) for r in _latest_failed(rows)],
        "eligible": [role_dict(r) for r, _ in eligible_roles(session, services, actor)],
        "active": [request_dict(r) for r in rows if r.state in LIVE_STATES],
        "pending": [request_dict(r) for r in rows if r.state == State.REQUESTED],
        "history": [request_dict(r) for r in rows if r.state not in (*LIVE_STATES, State.REQUESTED)],
    }


def inbox(session: Session, services: Services, actor: Actor) -> list[dict[str, Any]]:
    """Pending requests this actor may decide: never their own, only roles they approve."""
    roles = all_roles(session, services)
    out = []
    now = clock.now()
    for req in session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.state == State.REQUESTED)
        .order_by(ElevationRequest.requested_at)
    ):
        role = roles.get(req.role)
        if role is None or req.pending_until <= now:
            continue
        if req.requester_sub == actor.sub or persons.same_person(session, actor.sub, req.requester_sub):
            continue
        if not may_approve(services, role, actor):
            continue
        decided = session.scalar(
            select(Decision.id).where(Decision.request_id == req.id, Decision.approver_sub == actor.sub)
        )
        if decided is None:
            out.append(request_dict(req))
    return out


def show(session: Session, services: Services, actor: Actor, request_id: str) -> dict[str, Any]:
    """One request, to its requester, an approver of its role or a security officer."""
    req = session.get(ElevationRequest, request_id)
    if req is None:
        raise NotFound(N_("There is no such request."))
    role = all_roles(session, services, include_disabled=True).get(req.role)
    visible = (
        req.requester_sub == actor.sub
        or (role is not None and may_approve(services, role, actor))
        or is_security_officer(services, actor)
    )
    if not visible:
        raise NotFound(N_("There is no such request."))  # no hint that it exists
    decisions = list(
        session.scalars(select(Decision).where(Decision.request_id == req.id).order_by(Decision.at))
    )
    return request_dict(req, decisions=decisions)


def overview(session: Session, services: Services, actor: Actor) -> dict[str, Any]:
    require_officer(session, services, actor, action="overview")
    live = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.state.in_([str(s) for s in LIVE_STATES]))
        .order_by(ElevationRequest.ends_at)
    ).all()
    pending = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.state == State.REQUESTED)
        .order_by(ElevationRequest.requested_at)
    ).all()
    reviews = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.break_glass.is_(True), ElevationRequest.reviewed_at.is_(None))
        .order_by(ElevationRequest.requested_at)
    ).all()
    alerts = session.scalars(
        select(Alert).where(Alert.resolved_at.is_(None)).order_by(Alert.detected_at)
    ).all()
    recent = session.scalars(
        select(ElevationRequest).order_by(ElevationRequest.requested_at.desc()).limit(50)
    ).all()
    latest = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.requested_at >= clock.now() - dt.timedelta(days=FAILED_VISIBLE_DAYS))
        .order_by(ElevationRequest.requested_at.desc())
    ).all()
    return {
        "failed": [request_dict(r) for r in _latest_failed(latest)],
        "active": [request_dict(r) for r in live],
        "pending": [request_dict(r) for r in pending],
        "reviews_due": [request_dict(r) for r in reviews],
        "alerts": [
            {
                "id": a.id,
                "kind": a.kind,
                "group": a.group,
                "account": a.username,
                "detected_at": a.detected_at,
                "removal_queued": a.removed,
            }
            for a in alerts
        ],
        "recent": [request_dict(r) for r in recent],
        "eligibility": [
            {"role": e.role, "username": e.username, "permanent": e.permanent, "since": e.created_at}
            for e in session.scalars(select(Eligibility).order_by(Eligibility.role, Eligibility.username))
        ],
        "roles": sorted(all_roles(session, services)),
    }


def ensure_visible_role(session: Session, services: Services, actor: Actor, name: str) -> Role:
    roles = all_roles(session, services)
    role = roles.get(name)
    if role is None:
        raise NotFound(N_("There is no such privileged role."))
    if is_security_officer(services, actor):
        return role
    if not any(r.name == name for r, _ in eligible_roles(session, services, actor)):
        refuse(session, "pim.role_read_refused", actor, severity=Severity.NORMAL, details={"role": name})
        raise Forbidden(N_("You are not eligible for this role."))
    return role
