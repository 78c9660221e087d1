"""HR on a person's page in the console (``iam.admin.hooks``): the HR record and its events,
and which group memberships the position gives (birthright), for the "Groups" panel."""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from iam.admin.hooks import Panel, PersonRef, group_origin, person_panel
from iam.services import Services
from provisioning.models import HrEvent, HrPerson

RECENT = 20


def _record(session: Session, person: PersonRef) -> HrPerson | None:
    conditions: list[ColumnElement[bool]] = [HrPerson.sub.in_(person.subs)]
    if person.main.employee_number:
        conditions.append(HrPerson.employee_number == person.main.employee_number)
    return session.scalars(select(HrPerson).where(or_(*conditions))).first()


@person_panel("provisioning.hr", order=70)
def hr(services: Services, session: Session, person: PersonRef) -> Panel | None:
    record = _record(session, person)
    if record is None:
        return None
    events = session.scalars(
        select(HrEvent)
        .where(HrEvent.employee_number == record.employee_number)
        .order_by(HrEvent.accepted_at.desc())
        .limit(RECENT)
    ).all()
    return Panel(
        title=_l("HR record"),
        facts=[
            (_l("Employee number"), record.employee_number),
            (_l("Department"), record.department),
            (_l("Title"), record.title),
            (_l("Engagement"), record.engagement),
            (_l("Start date"), record.start_date),
            (_l("End date"), record.end_date),
            (_l("Status"), record.status),
            (_l("Manager"), record.manager),
        ],
        columns=[_l("Accepted"), _l("Kind"), _l("Effective"), _l("Status"), _l("Error")],
        rows=[[e.accepted_at, e.kind, e.effective_at, e.status, e.error] for e in events],
    )


@group_origin("provisioning.birthright")
def birthright(services: Services, session: Session, person: PersonRef) -> Mapping[tuple[str, str], str]:
    record = _record(session, person)
    if record is None or not record.sub:
        return {}
    origin = str(_l("birthright of the position %(d)s / %(t)s", d=record.department, t=record.title))
    return {(record.sub, g.casefold()): origin for g in record.groups or []}
