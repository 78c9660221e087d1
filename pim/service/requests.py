"""The elevation request state machine (R-PIM-3, R-PIM-4, R-PIM-8).

requested → approved (window starts at approval; the directory write is queued) → active (the
write completed) → expired | revoked | cancelled; requested → denied | cancelled | lapsed.

Every transition is one conditional UPDATE on ``(id, version, state)``: of two approvers acting
at the same instant exactly one moves the request, the other gets :class:`Conflict` and its
whole transaction (its decision row too) rolls back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs, persons
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from iam.i18n import N_
from pim import assurance
from pim.models import (
    LIVE_STATES,
    AdminAccount,
    Decision,
    ElevationRequest,
    State,
)
from pim.roles import Role, get_role
from pim.service.common import (
    Actor,
    eligibility,
    may_approve,
    notify,
    random_password,
    record,
    refuse,
    seal,
)

if TYPE_CHECKING:
    from iam.services import Services


class StepUpRequired(Forbidden):
    """The actor's sign-in level is below what the role needs; sign in again, stronger."""

    def __init__(self, required: str, achieved: str) -> None:
        super().__init__(
            N_(
                "This role needs sign-in level '%(required)s'; this session has '%(achieved)s'. "
                "Sign in again with a stronger method."
            ),
            required=required,
            achieved=achieved,
        )
        self.required = required
        self.achieved = achieved


def required_level(services: Services, role: Role) -> str:
    s = services.settings.pim
    needed = [role.min_level, s.minimum_level]
    if role.break_glass:
        needed.append(s.break_glass_level)
    return assurance.strongest(*needed, levels=s.levels)


def _load(session: Session, request_id: str) -> ElevationRequest:
    req = session.get(ElevationRequest, request_id)
    if req is None:
        raise NotFound(N_("There is no such request."))
    return req


def _transition(
    session: Session, req: ElevationRequest, allowed: Iterable[State], to: State, **values: Any
) -> None:
    """Move ``req`` to ``to`` only if nobody moved it since we read it (one winner)."""
    allowed = tuple(allowed)
    if req.state not in allowed:
        raise Conflict(N_("The request is %(state)s; it cannot become %(to)s."), state=req.state, to=to)
    result = session.execute(
        update(ElevationRequest)
        .where(
            ElevationRequest.id == req.id,
            ElevationRequest.version == req.version,
            ElevationRequest.state.in_([str(s) for s in allowed]),
        )
        .values(state=str(to), version=req.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise Conflict(N_("Someone else changed this request at the same moment; nothing was done."))
    session.refresh(req)


def _role(session: Session, services: Services, name: str) -> Role:
    role = get_role(session, services, name)
    if role is None:
        raise NotFound(N_("There is no such privileged role."))
    return role


def _check_level(services: Services, role: Role, actor: Actor) -> None:
    need = required_level(services, role)
    if not assurance.meets(actor.level, need, services.settings.pim.levels):
        raise StepUpRequired(need, actor.level)


def _live_or_open(session: Session, role: str, sub: str) -> ElevationRequest | None:
    return session.scalar(
        select(ElevationRequest).where(
            ElevationRequest.role == role,
            ElevationRequest.requester_sub == sub,
            ElevationRequest.state.in_([State.REQUESTED, *LIVE_STATES]),
        )
    )


def request_elevation(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    role: str,
    minutes: int | None = None,
    justification: str = "",
    ticket: str | None = None,
) -> ElevationRequest:
    """Ask for a role. Without approval in the role, the window starts at once."""
    r = _role(session, services, role)
    if r.break_glass:
        raise ValidationFailed(N_("This is an emergency role; use break-glass."))
    return _create(session, services, r, actor, minutes, justification, ticket)


def break_glass(
    session: Session, services: Services, *, actor: Actor, role: str, justification: str
) -> ElevationRequest:
    """Emergency access (R-PIM-8): no approval, strongest level, fixed duration, alert, review."""
    r = _role(session, services, role)
    if not r.break_glass:
        raise ValidationFailed(N_("This role is not an emergency (break-glass) role."))
    return _create(session, services, r, actor, r.default_minutes, justification, None)


def _create(
    session: Session,
    services: Services,
    role: Role,
    actor: Actor,
    minutes: int | None,
    justification: str,
    ticket: str | None,
) -> ElevationRequest:
    justification = (justification or "").strip()
    ticket = (ticket or "").strip() or None
    if eligibility(session, role.name, actor) is None:
        refuse(session, "pim.request_refused", actor, details={"role": role.name})
        raise Forbidden(N_("You are not eligible for this role."))
    minutes = role.default_minutes if minutes is None else minutes
    if role.break_glass:
        minutes = role.default_minutes
    if not 1 <= minutes <= role.max_minutes:
        raise ValidationFailed(
            N_("The duration must be between 1 and %(max_minutes)s minutes."), max_minutes=role.max_minutes
        )
    if (role.justification_required or role.break_glass) and len(justification) < 10:
        raise ValidationFailed(N_("A justification of at least 10 characters is required."))
    if len(justification) > 2000:
        raise ValidationFailed(N_("The justification is too long (2000 characters at most)."))
    if role.ticket_required and not ticket:
        raise ValidationFailed(N_("A ticket number is required for this role."))
    if ticket and not re.fullmatch(role.ticket_pattern, ticket):
        raise ValidationFailed(N_("The ticket number does not have the expected form."))
    try:
        _check_level(services, role, actor)
    except StepUpRequired as exc:
        refuse(
            session,
            "pim.step_up_required",
            actor,
            severity=audit.Severity.NORMAL,
            details={"role": role.name, "level": actor.level, "required": exc.required, "for": "request"},
        )
        raise
    if _live_or_open(session, role.name, actor.sub) is not None:
        raise Conflict(N_("You already have a pending or active request for this role."))
    now = clock.now()
    pending = role.pending_minutes * 60 if role.pending_minutes else services.settings.pim.pending_lifetime
    req = ElevationRequest(
        role=role.name,
        requester_sub=actor.sub,
        requester_username=actor.username,
        state=State.REQUESTED,
        version=1,
        justification=justification,
        ticket=ticket,
        duration=minutes * 60,
        level=actor.level,
        approvals_required=role.approvals_required if role.needs_approval() else 0,
        break_glass=role.break_glass,
        requested_at=now,
        pending_until=now + dt.timedelta(seconds=pending),
        groups=list(role.groups),
    )
    session.add(req)
    session.flush()
    details = {
        "role": role.name,
        "request": req.id,
        "minutes": minutes,
        "ticket": ticket,
        "level": actor.level,
    }
    if role.break_glass:
        record(
            session,
            "pim.break_glass",
            actor,
            severity=audit.Severity.CRITICAL,
            subject=actor.sub,
            details=details,
        )
        req.review_due = now + dt.timedelta(days=services.settings.pim.break_glass_review_days)
        _start_window(session, services, req, actor)
        notify(session, req, "break_glass")
        events.review_requested.send(actor.sub, session=session, event="break_glass", actor="pim")
        return req
    record(session, "pim.requested", actor, subject=actor.sub, details=details)
    if not role.needs_approval():
        _start_window(session, services, req, actor)
    else:
        notify(session, req, "requested")
    return req


def _start_window(session: Session, services: Services, req: ElevationRequest, actor: Actor) -> None:
    """Approval: the access window starts now; the directory write is a durable job, and the
    request becomes ``active`` (audited ``pim.activated``) only once the job has read the grant
    back from the directory."""
    now = clock.now()
    account = session.get(AdminAccount, req.requester_sub)
    if account is None:
        raise Conflict(
            N_("The requester has no admin account yet; an officer must make them eligible again.")
        )
    secret = None
    if services.settings.pim.password_delivery == "show_once":  # noqa: S105 — a mode name
        secret = seal(services, random_password(), context=req.id)
    _transition(
        session,
        req,
        [State.REQUESTED],
        State.APPROVED,
        starts_at=now,
        ends_at=now + dt.timedelta(seconds=req.duration),
        admin_username=account.username,
        secret=secret,
    )
    jobs.enqueue(session, "pim.ad.activate", {"request_id": req.id}, dedup_key=f"pim.activate:{req.id}")
    jobs.enqueue(
        session,
        "pim.expire",
        {"request_id": req.id},
        run_at=req.ends_at,
        dedup_key=f"pim.expire:{req.id}",
        priority=jobs.URGENT,
    )
    record(
        session,
        "pim.approved",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=req.requester_sub,
        details={
            "role": req.role,
            "request": req.id,
            "admin_account": account.username,
            "groups": list(req.groups),
            "ends_at": req.ends_at.isoformat() if req.ends_at else None,
            "break_glass": req.break_glass,
        },
    )
    if not req.break_glass:
        notify(session, req, "approved")


def _same_person(session: Session, actor: Actor, req: ElevationRequest) -> bool:
    """The actor is the requester, through whichever of their accounts (R-PIM-3)."""
    return (
        actor.sub == req.requester_sub
        or actor.username.casefold() == req.requester_username.casefold()
        or persons.same_person(session, actor.sub, req.requester_sub)
    )


def decide(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    request_id: str,
    approve: bool,
    comment: str = "",
) -> ElevationRequest:
    """An approver's decision. Nobody decides their own request, through any of their accounts
    (their admin account, accounts HR links to them, a shared account they hold: persons are
    compared, not accounts); deciding needs the role's sign-in level, as requesting does; one
    person's approvals through several accounts count once (R-PIM-3, R-MFA-4)."""
    req = _load(session, request_id)
    role = _role(session, services, req.role)
    details = {"request": req.id, "role": req.role, "account": actor.username}
    if _same_person(session, actor, req):
        refuse(session, "pim.self_approval_refused", actor, subject=req.requester_sub, details=details)
        raise Forbidden(
            N_("You cannot decide your own request (not through another of your accounts either).")
        )
    if actor.system or not may_approve(services, role, actor):
        refuse(session, "pim.decision_refused", actor, subject=req.requester_sub, details=details)
        raise Forbidden(N_("You are not an approver of this role."))
    need = required_level(services, role)
    if not assurance.meets(actor.level, need, services.settings.pim.levels):
        refuse(
            session,
            "pim.step_up_required",
            actor,
            subject=req.requester_sub,
            details={**details, "level": actor.level, "required": need, "for": "decision"},
        )
        raise StepUpRequired(need, actor.level)
    earlier = session.scalars(select(Decision.approver_sub).where(Decision.request_id == req.id)).all()
    if actor.sub not in earlier and any(persons.same_person(session, actor.sub, e) for e in earlier):
        refuse(session, "pim.second_decision_refused", actor, subject=req.requester_sub, details=details)
        raise Forbidden(N_("You have already decided this request through another of your accounts."))
    if req.state != State.REQUESTED:
        raise Conflict(N_("The request is already %(state)s."), state=req.state)
    if req.pending_until <= clock.now():
        raise Conflict(N_("The request has expired while waiting for approval."))
    if len(comment) > 2000:
        raise ValidationFailed(N_("The comment is too long (2000 characters at most)."))
    exists = session.scalar(
        select(Decision).where(Decision.request_id == req.id, Decision.approver_sub == actor.sub)
    )
    if exists is not None:
        raise Conflict(N_("You have already decided this request."))
    session.add(
        Decision(
            request_id=req.id,
            approver_sub=actor.sub,
            approver_username=actor.username,
            approve=approve,
            comment=comment.strip(),
            at=clock.now(),
        )
    )
    session.flush()
    details = {"request": req.id, "role": req.role}
    if not approve:
        _transition(
            session, req, [State.REQUESTED], State.DENIED, ended_at=clock.now(), ended_by=actor.username
        )
        record(
            session,
            "pim.denied",
            actor,
            severity=audit.Severity.SIGNIFICANT,
            subject=req.requester_sub,
            details=details,
        )
        notify(session, req, "denied")
        return req
    approvers = session.scalars(
        select(Decision.approver_sub).where(Decision.request_id == req.id, Decision.approve.is_(True))
    ).all()
    approvals = persons.count_persons(session, approvers)  # one person's accounts count once
    record(
        session,
        "pim.approval",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=req.requester_sub,
        details=details,
    )
    if approvals >= req.approvals_required:
        _start_window(session, services, req, actor)
    else:
        # bump the version so a concurrent decision on the same snapshot conflicts
        _transition(session, req, [State.REQUESTED], State.REQUESTED)
    return req
