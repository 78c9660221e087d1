"""The end of elevations: cancelled by the requester, revoked by an approver or officer, expired
at the end of the window (job and sweep), lapsed when undecided; the password shown once; the
review of break-glass uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from iam.errors import Conflict, Forbidden, ValidationFailed
from iam.i18n import N_
from iam.models.jobs import Job, JobStatus
from pim.models import FINAL_STATES, LIVE_STATES, AdminAccount, ElevationRequest, State
from pim.roles import get_role
from pim.service.common import (
    SYSTEM,
    Actor,
    is_security_officer,
    may_approve,
    notify,
    record,
    refuse,
    require_officer,
    unseal,
)
from pim.service.requests import _load, _transition

if TYPE_CHECKING:
    from iam.services import Services


def _end(
    session: Session,
    req: ElevationRequest,
    actor: Actor,
    to: State,
    reason: str,
    severity: audit.Severity,
    *,
    outcome: str = "success",
) -> None:
    was_live = req.state in LIVE_STATES
    now = clock.now()
    allowed = [State.REQUESTED, *LIVE_STATES] if to in (State.CANCELLED, State.REVOKED) else list(LIVE_STATES)
    if to is State.LAPSED:
        allowed = [State.REQUESTED]
    _transition(
        session, req, allowed, to, ended_at=now, ended_by=actor.username, end_reason=reason[:256], secret=None
    )
    if was_live:
        jobs.enqueue(
            session,
            "pim.ad.deactivate",
            {"request_id": req.id},
            dedup_key=f"pim.deactivate:{req.id}",
            priority=jobs.URGENT,
        )
        account = session.get(AdminAccount, req.requester_sub)
        if account is not None and account.account_id and not _other_live(session, req):
            # SSO: sessions and refresh tokens of the admin account end now
            events.identity_disabled.send(account.account_id, session=session, reason=f"pim.{to}")
    record(
        session,
        f"pim.{to}",
        actor,
        severity=severity,
        outcome=outcome,
        subject=req.requester_sub,
        details={"request": req.id, "role": req.role, "reason": reason[:256], "was_active": was_live},
    )
    notify(session, req, str(to))


def _other_live(session: Session, req: ElevationRequest) -> bool:
    return (
        session.scalar(
            select(ElevationRequest.id).where(
                ElevationRequest.requester_sub == req.requester_sub,
                ElevationRequest.id != req.id,
                ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
            )
        )
        is not None
    )


def cancel(
    session: Session, services: Services, *, actor: Actor, request_id: str, reason: str = ""
) -> ElevationRequest:
    """The requester withdraws a pending request or ends an elevation early."""
    req = _load(session, request_id)
    if actor.sub != req.requester_sub and not actor.system:
        refuse(session, "pim.cancel_refused", actor, details={"request": req.id})
        raise Forbidden(N_("Only the requester can cancel a request."))
    if req.state in FINAL_STATES:
        raise Conflict(N_("The request is already %(state)s."), state=req.state)
    _end(session, req, actor, State.CANCELLED, reason or "ended_by_requester", audit.Severity.SIGNIFICANT)
    return req


def revoke(
    session: Session, services: Services, *, actor: Actor, request_id: str, reason: str
) -> ElevationRequest:
    """An approver of the role or a security officer ends an elevation early."""
    req = _load(session, request_id)
    role = get_role(session, services, req.role)
    allowed = is_security_officer(services, actor) or (
        role is not None and may_approve(services, role, actor) and actor.sub != req.requester_sub
    )
    if not allowed:
        refuse(session, "pim.revoke_refused", actor, details={"request": req.id})
        raise Forbidden(N_("Only an approver of this role or a security officer can revoke."))
    if req.state not in LIVE_STATES:
        raise Conflict(
            N_("The request is %(state)s; only an active elevation can be revoked."), state=req.state
        )
    if not reason.strip():
        raise ValidationFailed(N_("Give a reason for the revocation."))
    _end(session, req, actor, State.REVOKED, reason.strip(), audit.Severity.CRITICAL)
    return req


def expire(session: Session, services: Services, request_id: str) -> bool:
    """End one elevation whose window is over (idempotent; used by job and sweep)."""
    req = session.get(ElevationRequest, request_id)
    if req is None or req.state not in LIVE_STATES or req.ends_at is None or req.ends_at > clock.now():
        return False
    _end(session, req, SYSTEM, State.EXPIRED, "window_ended", audit.Severity.SIGNIFICANT)
    return True


def sweep(session: Session, services: Services) -> dict[str, int]:
    """Everything overdue: live elevations past their end, pending requests past their lifetime.
    Run every ``pim.sweep_interval`` seconds and at once when the worker starts."""
    now = clock.now()
    expired = lapsed = 0
    overdue = session.scalars(
        select(ElevationRequest.id).where(
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES]), ElevationRequest.ends_at <= now
        )
    ).all()
    for rid in overdue:
        try:
            with session.begin_nested():
                expired += int(expire(session, services, rid))
        except Conflict:
            continue
    failed = 0
    for req, error in _activation_given_up(session):
        try:
            with session.begin_nested():
                fail(session, req, f"the directory write was given up after retries ({error})")
                failed += 1
        except Conflict:
            continue
    stale = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.state == State.REQUESTED, ElevationRequest.pending_until <= now
        )
    ).all()
    for req in stale:
        try:
            with session.begin_nested():
                _end(session, req, SYSTEM, State.LAPSED, "not_decided_in_time", audit.Severity.NORMAL)
                lapsed += 1
        except Conflict:
            continue
    return {"expired": expired, "lapsed": lapsed, "failed": failed}


def fail(session: Session, req: ElevationRequest, reason: str) -> None:
    """The grant could not be written to (or read back from) the directory: the request ends
    ``failed`` with the reason, what was written is taken back, the requester and the
    approvers are told and the security officers alerted (critical)."""
    _end(session, req, SYSTEM, State.FAILED, reason, audit.Severity.CRITICAL, outcome="failure")


def _activation_given_up(session: Session) -> list[tuple[ElevationRequest, str]]:
    """Approved requests whose activation job died (the directory stayed out of reach)."""
    dead = session.execute(
        select(Job.dedup_key, Job.last_error).where(
            Job.kind == "pim.ad.activate", Job.status == JobStatus.DEAD, Job.dedup_key.is_not(None)
        )
    ).all()
    out = []
    for key, error in dead:
        req = session.get(ElevationRequest, str(key).removeprefix("pim.activate:"))
        if req is not None and req.state == State.APPROVED:
            out.append((req, (error or "no error recorded")[:160]))
    return out


def reveal_secret(session: Session, services: Services, *, actor: Actor, request_id: str) -> str:
    """The admin account's password for this elevation, shown once to the requester."""
    req = _load(session, request_id)
    if actor.sub != req.requester_sub:
        refuse(session, "pim.password_refused", actor, details={"request": req.id})
        raise Forbidden(N_("Only the requester can see this password."))
    if req.state != State.ACTIVE or not req.secret or req.secret_shown_at is not None:
        raise Conflict(
            "There is no password to show (it is shown only once, once the directory confirms "
            "the elevation is active)."
        )
    value = unseal(services, req.secret, context=req.id)
    req.secret_shown_at = clock.now()
    if req.applied_at is not None:
        req.secret = None
    record(
        session,
        "pim.password_shown",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=actor.sub,
        details={"request": req.id},
    )
    return value


def review(
    session: Session, services: Services, *, actor: Actor, request_id: str, note: str
) -> ElevationRequest:
    """A security officer closes the mandatory review of a break-glass use."""
    require_officer(session, services, actor, action="break_glass_review")
    req = _load(session, request_id)
    if not req.break_glass:
        raise ValidationFailed(N_("Only break-glass uses are reviewed here."))
    if req.reviewed_at is not None:
        raise Conflict(N_("This break-glass use was already reviewed."))
    if len(note.strip()) < 5:
        raise ValidationFailed(N_("Write what the review found (at least 5 characters)."))
    req.reviewed_at = clock.now()
    req.reviewed_by = actor.username
    req.review_note = note.strip()[:4000]
    record(
        session,
        "pim.break_glass_reviewed",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=req.requester_sub,
        details={"request": req.id},
    )
    return req
