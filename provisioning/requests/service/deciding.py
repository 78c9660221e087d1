"""Deciding: each step's approver grants (the next step follows), grants a lesser item of the
catalogue, or refuses — each with a comment; never on their own access, whichever account they
act from. A step overdue is escalated; its approver is reminded before (working days). The last
grant gets its decision number and goes to the directory through a durable job."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from iam import audit, clock, i18n, jobs, persons
from iam.errors import Conflict, Forbidden, ValidationFailed
from provisioning.requests import catalogue
from provisioning.requests.calendar import WorkingCalendar
from provisioning.requests.models import OPEN, AccessRequest, Outcome, Status
from provisioning.requests.service import asking
from provisioning.requests.service.asking import start_step
from provisioning.requests.service.common import (
    MAX_TEXT,
    SYSTEM,
    Actor,
    event,
    get,
    item_title,
    moment,
    reviewers,
    step_name,
    tell,
)
from provisioning.reviews.service.decisions import Reviewer, person_key

if TYPE_CHECKING:
    from iam.services import Services

FULFIL_JOB = "requests.fulfil"
END_JOB = "requests.end"


def names_of(services: Services, session: Session, actor: Actor) -> tuple[frozenset[str], set[str]]:
    """Every account and (case-folded) username the acting person may act through."""
    return person_key(services, session, Reviewer(username=actor.username, sub=actor.sub))


def waiting_for(services: Services, session: Session, actor: Actor) -> list[AccessRequest]:
    """Open steps the actor decides: as approver, or escalated to them."""
    _, names = names_of(services, session, actor)
    rows = session.scalars(
        select(AccessRequest)
        .where(
            AccessRequest.status == Status.PENDING,
            # the approver's own steps (index), or escalated ones (few; their list is JSON)
            or_(func.lower(AccessRequest.approver).in_(names), AccessRequest.escalated_at.is_not(None)),
        )
        .order_by(AccessRequest.step_due_at)
    ).all()
    return [r for r in rows if _may_decide(r, names)]


def _may_decide(req: AccessRequest, names: set[str]) -> bool:
    if req.approver and req.approver.casefold() in names:
        return True
    return bool({n.casefold() for n in req.escalated_to or []} & names)


def decision_number(services: Services, req: AccessRequest, at: dt.datetime) -> str:
    year = WorkingCalendar.of(services.settings).local_date(at).year
    return f"{services.settings.requests.decision_prefix}/{year}/{req.id}"


def decide(
    services: Services,
    session: Session,
    *,
    request_id: int,
    actor: Actor,
    outcome: str,
    comment: str,
    reduce_to: str | None = None,
) -> AccessRequest:
    try:
        choice = Outcome(outcome)
    except ValueError:
        raise ValidationFailed("The outcome is grant, grant_reduced or refuse.") from None
    comment = comment.strip()
    if not comment:
        raise ValidationFailed("Add a comment: every outcome of an access request carries one.")
    if len(comment) > MAX_TEXT:
        raise ValidationFailed(f"A comment has at most {MAX_TEXT} characters.")
    req = get(session, request_id, lock=True)
    if req.status != Status.PENDING:
        raise Conflict(f"Access request {req.id} is already {req.status}.")
    accounts, names = names_of(services, session, actor)
    refusal = None
    if not _may_decide(req, names):
        refusal = "not the approver of this step"
    elif req.person_sub in accounts or (
        actor.sub and persons.same_person(session, actor.sub, req.person_sub)
    ):
        refusal = "own access"
    if refusal is not None:
        audit.record_refusal(
            session,
            "request.decision_refused",
            actor=actor.ref,
            subject=req.person_sub,
            ip=actor.ip,
            user_agent=actor.user_agent,
            details={"request": req.id, "reason": refusal},
        )
        raise Forbidden(
            "Nobody decides on their own access."
            if refusal == "own access"
            else "This step is not yours to decide."
        )
    now = clock.now()
    step = req.chain[req.step]
    if choice is Outcome.GRANT_REDUCED:
        item = catalogue.get(services, req.item)
        if not reduce_to or reduce_to not in item.reduced:
            allowed = ", ".join(item.reduced) or "none"
            raise ValidationFailed(f"Choose the lesser right to grant (for {item.name}: {allowed}).")
        lesser = catalogue.get(services, reduce_to)
        req.item, req.group = lesser.name, lesser.group
        if lesser.max_days is not None and (req.duration_days or lesser.max_days + 1) > lesser.max_days:
            req.duration_days = lesser.max_days
    req.history = [
        *req.history,
        {
            "step": step,
            "approver": req.approver,
            "by": actor.username,
            "decision": choice.value,
            **({"reduce_to": reduce_to} if choice is Outcome.GRANT_REDUCED else {}),
            "comment": comment,
            "at": now.isoformat(),
            **({"escalated": True} if req.approver and req.approver.casefold() not in names else {}),
        },
    ]
    event(
        session,
        "request.decided",
        req,
        actor,
        step=step,
        decision=choice.value,
        comment=comment,
        **({"reduce_to": reduce_to} if reduce_to else {}),
    )
    if choice is Outcome.REFUSE:
        _final(services, session, req, choice, actor, comment, now)
        req.status = Status.REFUSED
        tell(
            services,
            session,
            [req.requested_by, req.person_username],
            partial(_refused_mail, services, req, actor.username, comment),
        )
        return req
    req.step += 1
    if req.step < len(req.chain):
        start_step(services, session, req)
        return req
    _recheck_sod(services, session, req, actor)
    final = Outcome.GRANT_REDUCED if req.item != req.requested_item else Outcome.GRANT
    _final(services, session, req, final, actor, comment, now)
    req.status = Status.APPROVED
    req.decision_number = decision_number(services, req, now)
    jobs.enqueue(session, FULFIL_JOB, {"request": req.id}, dedup_key=f"request-fulfil:{req.id}")
    return req


def _recheck_sod(services: Services, session: Session, req: AccessRequest, actor: Actor) -> None:
    """Before granting, separation of duties is checked again against what the person holds
    now (a conflicting right may have come since the request was made, PABIANICE §4)."""
    item = catalogue.get(services, req.item)
    found = asking.conflicts(services, item, asking.target(services, session, req.person_sub).held)
    new = [c for c in found if c not in (req.sod_conflicts or [])]
    if not new:
        return
    if item.sod == "block":
        audit.record_refusal(
            session,
            "request.decision_refused",
            actor=actor.ref,
            subject=req.person_sub,
            details={"request": req.id, "reason": "separation of duties", "conflicts": new},
        )
        raise Conflict(
            "Separation of duties with rights held now: "
            + "; ".join(new)
            + ". Refuse, or grant a lesser right."
        )
    req.sod_conflicts, req.sod_exception = [*(req.sod_conflicts or []), *new], True


def _final(
    services: Services,
    session: Session,
    req: AccessRequest,
    outcome: Outcome,
    actor: Actor,
    comment: str,
    now: dt.datetime,
) -> None:
    req.outcome, req.comment, req.decided_by, req.decided_at = outcome.value, comment, actor.username, now
    req.approver, req.step_due_at = None, None


def withdraw(session: Session, *, request_id: int, actor: Actor) -> AccessRequest:
    """The person or whoever asked takes back an undecided request."""
    req = get(session, request_id, lock=True)
    if actor.username.casefold() not in {req.requested_by.casefold(), req.person_username.casefold()}:
        raise Forbidden("Only the person or whoever asked withdraws a request.")
    if req.status != Status.PENDING:
        raise Conflict(f"Access request {req.id} is already {req.status}.")
    req.status, req.approver, req.step_due_at = Status.WITHDRAWN, None, None
    event(session, "request.withdrawn", req, actor)
    return req


def on_identity_disabled(sub: str, *, session: Session, reason: str = "", **_: Any) -> None:
    """A person who leaves (or whose account is disabled) asks for nothing any more: their open
    requests are withdrawn in the same transaction (grants are taken away by the leaver)."""
    rows = session.scalars(
        select(AccessRequest).where(AccessRequest.person_sub == sub, AccessRequest.status.in_(OPEN))
    ).all()
    for req in rows:
        req.status, req.approver, req.step_due_at = Status.WITHDRAWN, None, None
        event(session, "request.withdrawn", req, SYSTEM, reason=f"account disabled: {reason}")


def tick(services: Services, session: Session) -> dict[str, int]:
    """Reminders before a step's deadline and escalation once it passed (working days)."""
    cal = WorkingCalendar.of(services.settings)
    settings = services.settings.requests
    now = clock.now()
    reminded = escalated = 0
    # only steps that may need something: n working days never span more than n weeks plus
    # three weeks of holidays (Tết), so later deadlines are not read at all
    window = now + dt.timedelta(days=7 * settings.remind_working_days + 21)
    rows = session.scalars(
        select(AccessRequest)
        .where(
            AccessRequest.status == Status.PENDING,
            AccessRequest.step_due_at.is_not(None),
            or_(
                and_(AccessRequest.reminded_at.is_(None), AccessRequest.step_due_at <= window),
                and_(AccessRequest.escalated_at.is_(None), AccessRequest.step_due_at <= now),
            ),
        )
        .with_for_update(skip_locked=True)
    ).all()
    addresses: dict[str, tuple[str | None, str | None]] = {}
    resolve = reviewers(services, session) if rows else None
    for req in rows:
        due = req.step_due_at
        assert due is not None
        step = req.chain[req.step]
        if req.reminded_at is None and now >= cal.remind_at(due, settings.remind_working_days) and now < due:
            req.reminded_at = now
            reminded += 1
            tell(
                services,
                session,
                [req.approver or ""],
                partial(_reminder_mail, services, req, step),
                cache=addresses,
            )
            event(
                session,
                "request.reminded",
                req,
                SYSTEM,
                step=step,
                approver=req.approver,
                due_at=due.isoformat(),
            )
        if req.escalated_at is None and now >= due:
            assert resolve is not None
            to = [
                n
                for n in dict.fromkeys(settings.escalate_to or resolve.officers)
                if n.casefold() != (req.approver or "").casefold() and resolve.person_of(n) != req.person_sub
            ]
            req.escalated_at, req.escalated_to = now, to
            escalated += 1
            tell(
                services,
                session,
                [*to, req.approver or ""],
                partial(_overdue_mail, services, req, step, to),
                cache=addresses,
            )
            audit.record(
                session,
                "request.escalated",
                severity=audit.Severity.SIGNIFICANT,
                actor=SYSTEM,
                subject=req.person_sub,
                details={"request": req.id, "step": step, "approver": req.approver, "escalated_to": to},
            )
    return {"reminded": reminded, "escalated": escalated}


def history_of(session: Session, sub: str) -> list[AccessRequest]:
    return list(
        session.scalars(
            select(AccessRequest).where(AccessRequest.person_sub == sub).order_by(AccessRequest.id.desc())
        )
    )


def asked_by(session: Session, username: str) -> list[AccessRequest]:
    return list(
        session.scalars(
            select(AccessRequest)
            .where(AccessRequest.requested_by == username)
            .order_by(AccessRequest.id.desc())
        )
    )


def stats(session: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in Status:
        out[status.value] = len(
            session.scalars(select(AccessRequest.id).where(AccessRequest.status == status)).all()
        )
    return out


# -- the mails (composed in each recipient's language) ---------------------------------------------
def _refused_mail(
    services: Services, req: AccessRequest, by: str, comment: str, t: i18n.Translator
) -> tuple[str, str]:
    text = (
        t.gettext(
            "The access request %(id)s for %(item)s (%(username)s) was refused by %(actor)s.",
            id=req.id,
            item=item_title(services, req.requested_item, t),
            username=req.person_username,
            actor=by,
        )
        + "\n"
        + t.gettext("Comment: %(text)s", text=comment)
        + "\n"
        + t.gettext("Your requests: %(url)s", url=services.settings.issuer + "/requests/")
        + "\n"
    )
    return t.gettext("Access request %(id)s refused", id=req.id), text


def _step_facts(services: Services, req: AccessRequest, step: str, t: i18n.Translator) -> dict[str, Any]:
    return {
        "id": req.id,
        "step": step_name(t, step),
        "item": item_title(services, req.item, t),
        "username": req.person_username,
        "due": moment(services, t, req.step_due_at),
    }


def _inbox(services: Services, t: i18n.Translator) -> str:
    return t.gettext("Open your inbox to decide: %(url)s", url=services.settings.issuer + "/requests/inbox")


def _reminder_mail(services: Services, req: AccessRequest, step: str, t: i18n.Translator) -> tuple[str, str]:
    facts = _step_facts(services, req, step, t)
    text = (
        t.gettext(
            "The %(step)s step of access request %(id)s (%(item)s for %(username)s) waits for you.",
            **facts,
        )
        + "\n"
        + _inbox(services, t)
        + "\n"
    )
    return t.gettext("Reminder: access request %(id)s is due %(due)s", **facts), text


def _overdue_mail(
    services: Services, req: AccessRequest, step: str, to: list[str], t: i18n.Translator
) -> tuple[str, str]:
    facts = _step_facts(services, req, step, t)
    text = (
        t.gettext(
            "The %(step)s step of access request %(id)s (%(item)s for %(username)s) "
            "was due %(due)s and is not decided.",
            **facts,
        )
        + " "
        + t.gettext("It is escalated to: %(names)s.", names=", ".join(to) or "-")
        + "\n"
        + _inbox(services, t)
        + "\n"
    )
    return t.gettext("Overdue: access request %(id)s", **facts), text
