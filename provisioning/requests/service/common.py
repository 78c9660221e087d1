"""What the request rooms share: the actor, loading a request, telling people by mail, the
reviewers' resolution borrowed from access reviews."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, i18n, jobs
from iam.errors import NotFound
from iam.i18n import N_
from provisioning.models import HrPerson
from provisioning.requests.models import AccessRequest
from provisioning.reviews.definitions import Definition
from provisioning.reviews.service.reviewers import Reviewers

if TYPE_CHECKING:
    from iam.services import Services

SYSTEM = "system:access-requests"
MAX_TEXT = 2000


@dataclass(frozen=True)
class Actor:
    """Who acts, as the edge (page, API, CLI) established it."""

    username: str
    sub: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @property
    def ref(self) -> str:
        return self.sub or self.username


def get(session: Session, request_id: int, *, lock: bool = False) -> AccessRequest:
    q = select(AccessRequest).where(AccessRequest.id == request_id)
    row = session.scalar(q.with_for_update() if lock else q)
    if row is None:
        raise NotFound(f"There is no access request {request_id}.")
    return row


def hr_of(session: Session, sub: str) -> HrPerson | None:
    return session.scalar(select(HrPerson).where(HrPerson.sub == sub).limit(1))


def reviewers(services: Services, session: Session) -> Reviewers:
    """Access reviews' resolution of manager, owner and security officer (never the person
    themself; the fallback is ``requests.escalate_to``, then the reviews' fallback, then the
    officers)."""
    s = services.settings
    fallback = list(s.requests.escalate_to) or list(s.reviews.fallback_reviewers)
    definition = Definition.model_validate(
        {"name": "access-requests", "title": "Access requests", "fallback": fallback}
    )
    return Reviewers(services, session, definition)


Compose = Callable[[i18n.Translator], tuple[str, str]]
"""A mail's subject and text in the language of the translator it is given (one per recipient)."""

STEP_NAMES = {
    "manager": N_("manager"),
    "owner": N_("resource owner"),
    "security_officer": N_("security officer (opinion)"),
}
"""How a step of the approval chain is named in a mail (the request page's names)."""


def step_name(t: i18n.Translator, step: str) -> str:
    return t.gettext(STEP_NAMES[step]) if step in STEP_NAMES else step.replace("_", " ")


def item_title(services: Services, item: str, t: i18n.Translator) -> str:
    """The catalogue's title of ``item`` in the translator's language (else its name)."""
    from provisioning.requests import catalogue

    found = catalogue.catalogue(services).get(item)
    title = found.text(found.title, t.tag) if found is not None else ""
    return title or item


def moment(services: Services, t: i18n.Translator, value: dt.datetime | None) -> str:
    """A time in the organisation's zone, written the recipient's way."""
    return t.moment(value, ZoneInfo(services.settings.timezone)) if value is not None else "-"


def tell(
    services: Services,
    session: Session,
    usernames: list[str],
    compose: Compose,
    *,
    cache: dict[str, tuple[str | None, str | None]] | None = None,
) -> int:
    """Queue a mail to each of ``usernames`` that has an address (the directory's, else HR's),
    composed in the recipient's saved language (else the organisation's default); ``cache``
    keeps the addresses (and accounts) found over one pass (the worker's deadline pass)."""
    sent = 0
    known = cache if cache is not None else {}
    for username in dict.fromkeys(u for u in usernames if u):
        if username.casefold() not in known:
            user = services.directory.find_user(username=username)
            found = user.email if user else None
            if not found and user is not None:
                hr = hr_of(session, user.id)
                found = hr.email if hr else None
            known[username.casefold()] = (found, user.id if user is not None else None)
        address, sub = known[username.casefold()]
        if address:
            t = i18n.for_recipient(services.settings, session, sub=sub)
            subject, text = compose(t)
            jobs.enqueue(session, "iam.mail", {"to": address, "subject": f"[IAM] {subject}", "text": text})
            sent += 1
    return sent


def event(session: Session, name: str, req: AccessRequest, actor: Actor | str, **details: Any) -> None:
    who = actor if isinstance(actor, str) else actor.ref
    audit.record(
        session,
        name,
        severity=audit.Severity.SIGNIFICANT,
        actor=who,
        subject=req.person_sub,
        ip=None if isinstance(actor, str) else actor.ip,
        user_agent=None if isinstance(actor, str) else actor.user_agent,
        details={"request": req.id, "item": req.item, "group": req.group, **details},
    )


def summary(req: AccessRequest) -> dict[str, Any]:
    """The request as the API, the CLI and the pages show it."""
    return {
        "id": req.id,
        "item": req.item,
        "requested_item": req.requested_item,
        "group": req.group,
        "person": req.person_username,
        "person_name": req.person_name,
        "employee_number": req.employee_number,
        "department": req.department,
        "title": req.job_title,
        "requested_by": req.requested_by,
        "scope": req.scope,
        "justification": req.justification,
        "duration_days": req.duration_days,
        "chain": list(req.chain),
        "step": req.step,
        "step_name": req.chain[req.step] if req.step < len(req.chain) else None,
        "approver": req.approver,
        "step_due_at": req.step_due_at.isoformat() if req.step_due_at else None,
        "escalated_to": list(req.escalated_to or []),
        "sod_conflicts": list(req.sod_conflicts or []),
        "sod_exception": req.sod_exception,
        "status": req.status,
        "outcome": req.outcome,
        "comment": req.comment,
        "decided_by": req.decided_by,
        "decided_at": req.decided_at.isoformat() if req.decided_at else None,
        "decision_number": req.decision_number,
        "granted_at": req.granted_at.isoformat() if req.granted_at else None,
        "ends_at": req.ends_at.isoformat() if req.ends_at else None,
        "ended_at": req.ended_at.isoformat() if req.ended_at else None,
        "error": req.error,
        "history": list(req.history or []),
        "created_at": req.created_at.isoformat(),
    }
