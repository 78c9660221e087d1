"""Provisioning's part of "my access" (``iam.access``): what HR gave a person — birthright
groups of their position, groups kept for review after a move — and the access-review
decisions waiting for them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import access
from iam.entitlements import Origin
from iam.models.identity import Identity
from provisioning.models import HrPerson, ReviewItem
from provisioning.reviews.service.decisions import Filter, Reviewer, inbox

if TYPE_CHECKING:
    from iam.services import Services


def group_origins(
    services: Services, session: Session, sub: str, groups: Sequence[str]
) -> Mapping[str, access.GroupOrigin]:
    out: dict[str, access.GroupOrigin] = {}
    person = session.scalar(select(HrPerson).where(HrPerson.sub == sub))
    if person is not None:
        position = f"{person.department} / {person.title}"
        for group in person.groups or []:
            out[group.casefold()] = access.GroupOrigin(Origin.BIRTHRIGHT, position)
    kept = select(ReviewItem).where(ReviewItem.sub == sub, ReviewItem.decision.is_(None))
    for item in session.scalars(kept):
        why = access.GroupOrigin(Origin.HR_EVENT, f"HR event {item.event_id}")
        out.setdefault(item.group.casefold(), why)
    return out


def reviews_section(services: Services, session: Session, sub: str) -> access.Section | None:
    identity = session.get(Identity, sub)
    if identity is None:
        return None
    rows, total = inbox(services, session, Reviewer(username=identity.username, sub=sub), Filter(), limit=50)
    if not total:
        return None
    return access.Section(
        title=_l("Access reviews waiting for your decision (%(count)s)", count=total),
        columns=[_l("Person"), _l("Right"), _l("Recommendation")],
        rows=[[r.person_name, r.resource, r.recommendation] for r in rows],
    )


def register() -> None:
    access.origin("provisioning")(group_origins)
    access.section("provisioning.reviews", order=61)(reviews_section)
