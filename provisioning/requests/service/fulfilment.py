"""Fulfilment: a decided grant is carried into AD by a durable job (retried while AD is down),
read back before the request counts as granted, entered in the register of authorised persons
with its decision number (R-JML-6), and known to access reviews as the right's origin. A
time-limited grant ends by itself: a job queued for its end removes it and reads back."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, entitlements, i18n, jobs
from iam.audit import Severity
from iam.directory import NoSuchEntry
from iam.entitlements import KnownOrigin, Origin
from provisioning.models import Authorisation
from provisioning.requests import catalogue
from provisioning.requests.models import AccessRequest, Status
from provisioning.requests.service.common import SYSTEM, item_title, moment, tell
from provisioning.requests.service.deciding import END_JOB
from provisioning.service.grants import local_date

if TYPE_CHECKING:
    from iam.services import Services

#: ``event_id`` of register rows a request gave (the HR post's own rows carry an HR event id).
REGISTER_PREFIX = "request:"


def _holds(services: Services, sub: str, group: str) -> bool:
    try:
        return group.casefold() in {g.casefold() for g in services.directory.user_groups(sub, nested=False)}
    except NoSuchEntry:
        return False


def fulfil(services: Services, session: Session, request_id: int) -> str | None:
    """Add the membership, read it back, record it. Raises ``DirectoryUnavailable`` while AD is
    down (the job retries). The directory is written before ``session`` is used."""
    with services.reader() as reader:
        req = reader.get(AccessRequest, request_id)
        if req is None or req.status != Status.APPROVED:
            return None
        sub, group = req.person_sub, req.group
    error = None
    try:
        services.directory.add_member(group, sub)
    except NoSuchEntry:
        error = f"The group {group!r} or the account does not exist."
    present = error is None and _holds(services, sub, group)
    row = session.get(AccessRequest, request_id)
    assert row is not None
    now = clock.now()
    if not present:
        row.status = Status.FAILED
        row.error = error or "The membership is not there after adding it."
        audit.record(
            session,
            "request.fulfilment_failed",
            severity=Severity.CRITICAL,
            outcome="failure",
            actor=SYSTEM,
            subject=sub,
            details={"request": row.id, "group": group, "error": row.error},
        )
        return row.status
    row.status, row.granted_at, row.error = Status.GRANTED, now, None
    if row.duration_days:
        row.ends_at = now + dt.timedelta(days=row.duration_days)
        jobs.enqueue(
            session, END_JOB, {"request": row.id}, run_at=row.ends_at, dedup_key=f"request-end:{row.id}"
        )
    _register(services, session, row)
    audit.record(
        session,
        "request.granted",
        severity=Severity.SIGNIFICANT,
        actor=SYSTEM,
        subject=sub,
        details={
            "request": row.id,
            "group": group,
            "item": row.item,
            "outcome": row.outcome,
            "decision_number": row.decision_number,
            "verified": True,
            **({"ends_at": row.ends_at.isoformat()} if row.ends_at else {}),
        },
    )
    tell(services, session, [row.requested_by, row.person_username], partial(_granted_mail, services, row))
    return row.status


def _register(services: Services, session: Session, req: AccessRequest) -> None:
    """A row in the register of authorised persons (who, what, since, decision number)."""
    if not req.employee_number:
        return  # not an HR person: the register lists employees only
    item = catalogue.catalogue(services).get(req.item)
    title = item.text(item.title, services.settings.languages[0]) if item else req.item
    session.add(
        Authorisation(
            employee_number=req.employee_number,
            event_id=f"{REGISTER_PREFIX}{req.id}",
            unit=req.department or "",
            title=req.job_title or "",
            scope=f"{title} (AD group {req.group}); access request {req.id}: "
            f"{req.scope or req.justification}",
            decision_number=req.decision_number,
            granted_on=local_date(req.granted_at or clock.now(), services.settings.timezone),
            remarks=req.justification[:500],
        )
    )


def end(services: Services, session: Session, request_id: int) -> str | None:
    """A time-limited grant reached its end: remove it, read back, end its register row."""
    with services.reader() as reader:
        req = reader.get(AccessRequest, request_id)
        if req is None or req.status != Status.GRANTED or req.ends_at is None:
            return None
        if req.ends_at > clock.now():
            return None  # moved later (not possible today): the queued job is early
        sub, group = req.person_sub, req.group
    entitlements.source("directory").revoke(
        services,
        session,
        account_id=sub,
        kind="group",
        resource=group,
        actor=SYSTEM,
        reason="time-limited access request ended",
        reference=f"access request {request_id}",
    )
    still = _holds(services, sub, group)
    row = session.get(AccessRequest, request_id)
    assert row is not None
    now = clock.now()
    if still:
        row.error = "The membership is still there after removing it."
        audit.record(
            session,
            "request.end_failed",
            severity=Severity.CRITICAL,
            outcome="failure",
            actor=SYSTEM,
            subject=sub,
            details={"request": row.id, "group": group},
        )
        return row.status
    row.status, row.ended_at = Status.ENDED, now
    for reg in session.scalars(
        select(Authorisation).where(
            Authorisation.event_id == f"{REGISTER_PREFIX}{row.id}", Authorisation.ended_on.is_(None)
        )
    ):
        reg.ended_on = max(local_date(now, services.settings.timezone), reg.granted_on)
    audit.record(
        session,
        "request.ended",
        severity=Severity.SIGNIFICANT,
        actor=SYSTEM,
        subject=sub,
        details={"request": row.id, "group": group, "verified": True},
    )
    tell(
        services,
        session,
        [row.person_username],
        partial(_ended_mail, services, row),
    )
    return row.status


def origins(services: Services, session: Session) -> dict[tuple[str, str], KnownOrigin]:
    """Rights given by requests, for access reviews: "granted by request N (decision …)"."""
    out: dict[tuple[str, str], KnownOrigin] = {}
    q = select(
        AccessRequest.id,
        AccessRequest.person_sub,
        AccessRequest.group,
        AccessRequest.decision_number,
        AccessRequest.granted_at,
        AccessRequest.decided_by,
        AccessRequest.justification,
    ).where(AccessRequest.status == Status.GRANTED)
    for rid, sub, group, number, granted_at, by, why in session.execute(q):
        out[(sub, group.casefold())] = KnownOrigin(
            origin=Origin.ACCESS_REQUEST,
            origin_ref=f"access request {rid}, decision {number}",
            granted_at=granted_at,
            granted_by=by,
            justification=why,
        )
    return out


# -- the mails (composed in each recipient's language) ---------------------------------------------
def _granted_mail(services: Services, row: AccessRequest, t: i18n.Translator) -> tuple[str, str]:
    facts = {"username": row.person_username, "group": row.group, "id": row.id}
    if row.ends_at is not None:
        holds = t.gettext(
            "%(username)s now holds %(group)s until %(until)s.",
            until=moment(services, t, row.ends_at),
            **facts,
        )
    else:
        holds = t.gettext("%(username)s now holds %(group)s.", **facts)
    if row.item != row.requested_item:
        holds += " " + t.gettext(
            "Granted reduced: %(item)s instead of %(requested)s.",
            item=item_title(services, row.item, t),
            requested=item_title(services, row.requested_item, t),
        )
    text = (
        holds
        + "\n"
        + t.gettext(
            "Decision %(number)s by %(by)s: %(comment)s",
            number=row.decision_number or "-",
            by=row.decided_by or "-",
            comment=row.comment or "-",
        )
        + "\n"
        + t.gettext("Your requests: %(url)s", url=services.settings.issuer + "/requests/")
        + "\n"
    )
    return t.gettext("Access request %(id)s granted", **facts), text


def _ended_mail(services: Services, row: AccessRequest, t: i18n.Translator) -> tuple[str, str]:
    text = (
        t.gettext("The time-limited access of request %(id)s (%(group)s) ended.", id=row.id, group=row.group)
        + "\n"
    )
    return t.gettext("Access ended: %(group)s", group=row.group), text
