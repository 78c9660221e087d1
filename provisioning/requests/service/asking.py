"""Asking for a right: for oneself, or as manager for a team member (HR's manager link); who may
ask for an item; separation-of-duties conflicts with what the person already holds, shown before
the request is sent (``preview``) and enforced when it is (``submit``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, i18n
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from provisioning.models import HrPerson, PersonStatus
from provisioning.requests import catalogue
from provisioning.requests.calendar import WorkingCalendar
from provisioning.requests.catalogue import Item
from provisioning.requests.models import OPEN, AccessRequest, Status
from provisioning.requests.service.common import (
    MAX_TEXT,
    SYSTEM,
    Actor,
    event,
    hr_of,
    item_title,
    moment,
    reviewers,
    tell,
)
from provisioning.reviews.definitions import Stage
from provisioning.reviews.service.catalogue import load_sod

if TYPE_CHECKING:
    from iam.services import Services

StepName = Literal["manager", "owner", "security_officer"]


@dataclass
class Target:
    """The person a request is for."""

    sub: str
    username: str
    name: str
    hr: HrPerson | None
    held: set[str] = field(default_factory=set)
    """Case-folded groups they hold now (nested memberships too)."""


def target(services: Services, session: Session, sub: str) -> Target:
    user = services.directory.get_user(sub)
    if user is None or not user.enabled:
        raise NotFound("There is no such active person in the directory.")
    name = user.display_name or " ".join(p for p in (user.given_name, user.family_name) if p) or user.username
    held = {g.casefold() for g in services.directory.user_groups(sub, nested=True)}
    return Target(sub=sub, username=user.username, name=name, hr=hr_of(session, sub), held=held)


def team(session: Session, actor: Actor) -> list[HrPerson]:
    """The active people whose HR record names the actor as manager."""
    if actor.sub is None:
        return []
    me = hr_of(session, actor.sub)
    if me is None:
        return []
    return list(
        session.scalars(
            select(HrPerson)
            .where(
                HrPerson.manager == me.employee_number,
                HrPerson.status == PersonStatus.ACTIVE,
                HrPerson.sub.is_not(None),
            )
            .order_by(HrPerson.family_name, HrPerson.given_name)
        )
    )


def may_ask_for(session: Session, actor: Actor, sub: str) -> bool:
    """For oneself, or as the HR manager of the person."""
    if actor.sub == sub:
        return True
    return any(p.sub == sub for p in team(session, actor))


def eligible(item: Item, person: Target) -> bool:
    who = item.who
    if who.everyone:
        return True
    hr = person.hr
    if hr is not None and hr.status == PersonStatus.ACTIVE:
        if hr.department.casefold() in {d.casefold() for d in who.departments}:
            return True
        if hr.title.casefold() in {t.casefold() for t in who.titles}:
            return True
    return bool(person.held & {g.casefold() for g in who.groups})


def conflicts(services: Services, item: Item, held: set[str]) -> list[str]:
    """Separation-of-duties rules (``reviews.sod_file``, and the item's own ``conflicts``) the
    person would break by holding ``item`` with what they hold now."""
    group = item.group.casefold()
    found: list[str] = []
    for rule in load_sod(services.settings.reviews.sod_file):
        if group in rule.resources and rule.resources - {group} <= held:
            found.append(rule.description or rule.name)
    for other in item.conflicts:
        if other.casefold() in held and other.casefold() != group:
            found.append(f"{item.group} / {other}")
    return found


def requestable(services: Services, person: Target) -> list[Item]:
    """The items the person may ask for (and does not already hold)."""
    return [
        i
        for i in catalogue.catalogue(services).values()
        if eligible(i, person) and i.group.casefold() not in person.held
    ]


def preview(
    services: Services, session: Session, *, actor: Actor, item_name: str, person_sub: str
) -> dict[str, Any]:
    """What the form shows before sending: may this be asked, the conflicts, whether they block."""
    item = catalogue.get(services, item_name)
    if not may_ask_for(session, actor, person_sub):
        raise Forbidden("You may ask for yourself or for the people you manage.")
    person = target(services, session, person_sub)
    found = conflicts(services, item, person.held)
    return {
        "item": item.name,
        "group": item.group,
        "person": person.username,
        "eligible": eligible(item, person),
        "held": item.group.casefold() in person.held,
        "conflicts": found,
        "blocked": bool(found) and item.sod == "block",
        "exception_possible": bool(found) and item.sod == "exception",
        "max_days": item.max_days,
    }


def _refused(session: Session, actor: Actor, reason: str, **details: Any) -> None:
    audit.record_refusal(
        session,
        "request.refused_submission",
        actor=actor.ref,
        ip=actor.ip,
        user_agent=actor.user_agent,
        details={"reason": reason, **details},
    )


def submit(
    services: Services,
    session: Session,
    *,
    actor: Actor,
    item_name: str,
    person_sub: str,
    justification: str,
    scope: str = "",
    duration_days: int | None = None,
    accept_exception: bool = False,
) -> AccessRequest:
    """Record a request and hand it to the first approver. Refusals (not allowed to ask, SoD
    conflict that blocks, bad input) raise and leave nothing but the audited refusal."""
    item = catalogue.get(services, item_name)
    justification, scope = justification.strip(), scope.strip()
    if not justification:
        raise ValidationFailed("Say why the right is needed (justification).")
    if len(justification) > MAX_TEXT or len(scope) > MAX_TEXT:
        raise ValidationFailed(f"Justification and scope have at most {MAX_TEXT} characters each.")
    if item.max_days is not None:
        duration_days = duration_days or item.max_days
        if duration_days > item.max_days:
            raise ValidationFailed(f"This right is given for at most {item.max_days} days.")
    if duration_days is not None and duration_days < 1:
        raise ValidationFailed("The duration is a number of days, at least 1.")
    if not may_ask_for(session, actor, person_sub):
        _refused(session, actor, "not the person nor their manager", item=item.name, person=person_sub)
        raise Forbidden("You may ask for yourself or for the people you manage.")
    person = target(services, session, person_sub)
    if not eligible(item, person):
        _refused(session, actor, "not eligible", item=item.name, person=person.username)
        raise Forbidden("This right cannot be requested for this person (department, position or group).")
    if item.group.casefold() in person.held:
        raise Conflict(f"{person.username} already holds {item.group}.")
    open_one = session.scalar(
        select(AccessRequest.id).where(
            AccessRequest.person_sub == person.sub,
            AccessRequest.group == item.group,
            AccessRequest.status.in_(OPEN),
        )
    )
    if open_one is not None:
        raise Conflict(f"Request {open_one} for this right is already open.")
    found = conflicts(services, item, person.held)
    if found and item.sod == "block":
        _refused(
            session, actor, "separation of duties", item=item.name, person=person.username, conflicts=found
        )
        raise Forbidden("Separation of duties: " + "; ".join(found))
    if found and not accept_exception:
        raise ValidationFailed(
            "Separation of duties: " + "; ".join(found) + ". Confirm to ask for a recorded exception."
        )
    hr = person.hr
    req = AccessRequest(
        item=item.name,
        requested_item=item.name,
        group=item.group,
        person_sub=person.sub,
        person_username=person.username,
        person_name=person.name,
        employee_number=hr.employee_number if hr else None,
        department=hr.department if hr else None,
        job_title=hr.title if hr else None,
        requested_by=actor.username,
        scope=scope,
        justification=justification,
        duration_days=duration_days,
        chain=list(item.chain),
        step=0,
        history=[],
        escalated_to=[],
        sod_conflicts=found,
        sod_exception=bool(found),
        status=Status.PENDING,
        created_at=clock.now(),
    )
    if found and "security_officer" not in req.chain:
        req.chain = [*req.chain, "security_officer"]  # an exception always has the officer's opinion
    session.add(req)
    session.flush()
    event(session, "request.submitted", req, actor, requested_by=actor.username, sod_conflicts=found)
    start_step(services, session, req, actor=actor)
    return req


def start_step(
    services: Services, session: Session, req: AccessRequest, *, actor: Actor | None = None
) -> None:
    """Give the current step to its approver with its working-day deadline. The manager's step
    is satisfied when the manager asked themself (recorded as such)."""
    resolve = reviewers(services, session)
    now = clock.now()
    while req.step < len(req.chain):
        step = req.chain[req.step]
        if step == "manager" and actor is not None and actor.sub != req.person_sub:
            manager = resolve.manager_of(req.employee_number)
            if manager and manager.casefold() == actor.username.casefold():
                req.history = [
                    *req.history,
                    {
                        "step": step,
                        "approver": manager,
                        "by": manager,
                        "decision": "grant",
                        "comment": "asked by the manager",
                        "at": now.isoformat(),
                    },
                ]
                req.step += 1
                if req.step == len(req.chain):  # nobody else would look: the officer gives an opinion
                    req.chain = [*req.chain, "security_officer"]
                continue
        owner = catalogue.catalogue(services).get(req.item)
        owner_name = (owner.owner if owner else None) or services.settings.reviews.owners.get(req.group)
        req.approver = resolve.resolve(
            Stage(reviewer=cast(StepName, step)),
            person=req.person_sub,
            username=req.person_username,
            employee_number=req.employee_number,
            owner=owner_name,
        )
        cal = WorkingCalendar.of(services.settings)
        req.step_started_at = now
        req.step_due_at = cal.deadline(now, services.settings.requests.step_working_days)
        req.reminded_at = req.escalated_at = None
        req.escalated_to = []
        tell(services, session, [req.approver], partial(_step_mail, services, req, step))
        event(
            session,
            "request.step_started",
            req,
            SYSTEM,
            step=step,
            approver=req.approver,
            due_at=req.step_due_at.isoformat(),
        )
        return


def _step_mail(services: Services, req: AccessRequest, step: str, t: i18n.Translator) -> tuple[str, str]:
    """The mail to a step's approver: a decision, or the security officer's opinion."""
    facts = {
        "id": req.id,
        "requester": req.requested_by,
        "item": item_title(services, req.item, t),
        "group": req.group,
        "name": req.person_name,
        "username": req.person_username,
    }
    if step == "security_officer":
        subject = t.gettext("Access request %(id)s waits for your opinion", **facts)
    else:
        subject = t.gettext("Access request %(id)s waits for your decision", **facts)
    text = (
        t.gettext("%(requester)s asked for %(item)s (%(group)s) for %(name)s (%(username)s).", **facts)
        + "\n"
        + t.gettext("Justification: %(text)s", text=req.justification)
        + "\n"
        + t.gettext("Due: %(when)s.", when=moment(services, t, req.step_due_at))
        + "\n"
        + t.gettext("Open your inbox to decide: %(url)s", url=services.settings.issuer + "/requests/inbox")
        + "\n"
    )
    return subject, text
