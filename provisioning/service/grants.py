"""The register of authorised persons kept row by row (R-JML-6, PABIANICE §15): each joiner,
rehire or move to a new post that processes personal data is its own authorisation with its own
date granted and decision number; the next post or leaving ends it. A later event never
rewrites an earlier row's grant."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from provisioning.models import Authorisation, HrPerson


def local_date(at: dt.datetime, timezone: str) -> dt.date:
    """The calendar day of ``at`` in the organisation's time zone."""
    return at.astimezone(zoneinfo.ZoneInfo(timezone)).date()


def _scope(person: HrPerson) -> str:
    return person.personal_data + (f": {person.personal_data_scope}" if person.personal_data_scope else "")


def current(session: Session, employee_number: str) -> Authorisation | None:
    """The person's authorisation of their post still in force, if any (rows that access
    requests added for one right — ``event_id`` ``request:N`` — are not the post's)."""
    return session.scalar(
        select(Authorisation)
        .where(
            Authorisation.employee_number == employee_number,
            Authorisation.ended_on.is_(None),
            or_(Authorisation.event_id.is_(None), Authorisation.event_id.not_like("request:%")),
        )
        .order_by(Authorisation.granted_on.desc(), Authorisation.id)
        .limit(1)
    )


def _open(session: Session, person: HrPerson, *, event_id: str, on: dt.date, decision: str | None) -> None:
    if person.personal_data == "none":
        return
    session.add(
        Authorisation(
            employee_number=person.employee_number,
            event_id=event_id,
            unit=person.department,
            title=person.title,
            scope=_scope(person),
            decision_number=decision,
            granted_on=on,
            remarks=person.remarks,
        )
    )
    session.flush()


def end(session: Session, employee_number: str, *, on: dt.date) -> None:
    """Every authorisation of the person still in force ends ``on`` (a leaver)."""
    for row in session.scalars(
        select(Authorisation).where(
            Authorisation.employee_number == employee_number, Authorisation.ended_on.is_(None)
        )
    ):
        row.ended_on = max(on, row.granted_on)


def joined(session: Session, person: HrPerson, *, event_id: str) -> None:
    """A joiner or rehire: an authorisation from the start date, if the post processes
    personal data."""
    end(session, person.employee_number, on=person.start_date)
    _open(session, person, event_id=event_id, on=person.start_date, decision=person.decision_number)


def moved(session: Session, person: HrPerson, *, event_id: str, on: dt.date, decision: str | None) -> None:
    """A mover (``person`` already holds the new post; ``decision`` is the number the mover event
    gave, if any): when the unit, title, scope or decision changed, the authorisation in force
    ends and the new one starts ``on`` with the mover's own decision number; otherwise the row in
    force stays as it is."""
    row = current(session, person.employee_number)
    if row is not None:
        same = (row.unit, row.title, row.scope) == (person.department, person.title, _scope(person))
        if same and decision in (None, row.decision_number) and person.personal_data != "none":
            row.remarks = person.remarks
            return
        row.ended_on = max(on, row.granted_on)
    _open(session, person, event_id=event_id, on=on, decision=decision)
