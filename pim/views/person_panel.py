"""PIM on a person's page in the console (``iam.admin.hooks``): their elevations — pending,
active and recent — with the admin account each used. Eligibilities are shown by the core
from PIM's entitlement source. Read only here: PIM's own pages decide and end elevations."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam.admin.hooks import Panel, PersonRef, person_panel
from iam.services import Services
from pim.models import AdminAccount, ElevationRequest

RECENT = 20


@person_panel("pim.elevations", order=60)
def elevations(services: Services, session: Session, person: PersonRef) -> Panel:
    rows = session.scalars(
        select(ElevationRequest)
        .where(ElevationRequest.requester_sub.in_(person.subs))
        .order_by(ElevationRequest.requested_at.desc())
        .limit(RECENT)
    ).all()
    admin = session.scalars(select(AdminAccount).where(AdminAccount.person_sub.in_(person.subs))).first()
    return Panel(
        title=_l("Privileged elevations"),
        facts=[(_l("Admin account"), admin.username if admin else None)],
        columns=[_l("Role"), _l("State"), _l("Requested"), _l("Starts"), _l("Ends"), _l("Justification")],
        rows=[
            [r.role, r.state, r.requested_at, r.starts_at, r.ended_at or r.ends_at, r.justification]
            for r in rows
        ],
    )
