"""PIM's part of "my access" (``iam.access``): the roles a person may request, their live and
pending elevations, the requests waiting for their approval, and the groups PIM gave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import access
from iam.entitlements import Origin
from iam.models.identity import Identity
from pim.models import LIVE_STATES, AdminAccount, ElevationRequest, Eligibility, State
from pim.roles import all_roles
from pim.service.common import Actor
from pim.service.queries import inbox

if TYPE_CHECKING:
    from iam.services import Services


def _actor(session: Session, sub: str) -> Actor:
    identity = session.get(Identity, sub)
    return Actor(sub=sub, username=identity.username if identity else sub)


def roles_section(services: Services, session: Session, sub: str) -> access.Section:
    actor = _actor(session, sub)
    roles = all_roles(session, services)
    rows: list[list[Any]] = []
    for e in session.scalars(
        select(Eligibility)
        .where((Eligibility.sub == sub) | (Eligibility.username == actor.username))
        .order_by(Eligibility.role)
    ):
        role = roles.get(e.role)
        kind = _l("permanent") if e.permanent else _l("eligible (request when needed)")
        rows.append([(role.title if role else "") or e.role, kind, e.created_at, e.created_by])
    return access.Section(
        title=_l("Privileged roles (PIM)"),
        columns=[_l("Role"), _l("How"), _l("Since"), _l("Granted by")],
        rows=rows,
        empty=_l("You are not eligible for any privileged role."),
    )


def elevations_section(services: Services, session: Session, sub: str) -> access.Section:
    rows: list[list[Any]] = []
    for r in session.scalars(
        select(ElevationRequest)
        .where(
            ElevationRequest.requester_sub == sub,
            ElevationRequest.state.in_([*LIVE_STATES, State.REQUESTED]),
        )
        .order_by(ElevationRequest.requested_at.desc())
    ):
        rows.append([r.role, r.state, r.admin_username, r.groups, r.ends_at or r.pending_until])
    return access.Section(
        title=_l("Elevations"),
        columns=[_l("Role"), _l("State"), _l("Admin account"), _l("Groups"), _l("Until")],
        rows=rows,
        empty=_l("No elevation is active or waiting."),
    )


def approvals_section(services: Services, session: Session, sub: str) -> access.Section | None:
    pending = inbox(session, services, _actor(session, sub))
    if not pending:
        return None
    return access.Section(
        title=_l("Elevation requests waiting for your approval"),
        columns=[_l("Role"), _l("Requested by"), _l("Requested"), _l("Justification")],
        rows=[[p["role"], p["requester"], p["requested_at"], p["justification"]] for p in pending],
    )


def group_origins(
    services: Services, session: Session, sub: str, groups: Sequence[str]
) -> Mapping[str, access.GroupOrigin]:
    """Groups of a live elevation (on the admin account signed in) or of a permanent role."""
    out: dict[str, access.GroupOrigin] = {}
    admin = session.scalar(select(AdminAccount).where(AdminAccount.account_id == sub))
    if admin is not None:
        for r in session.scalars(
            select(ElevationRequest).where(
                ElevationRequest.requester_sub == admin.person_sub, ElevationRequest.state.in_(LIVE_STATES)
            )
        ):
            for group in r.groups or []:
                out[group.casefold()] = access.GroupOrigin(Origin.PIM_DECISION, f"elevation {r.role}")
    roles = all_roles(session, services)
    permanent = select(Eligibility).where(Eligibility.sub == sub, Eligibility.permanent.is_(True))
    for e in session.scalars(permanent):
        role = roles.get(e.role)
        for group in role.groups if role else []:
            out.setdefault(group.casefold(), access.GroupOrigin(Origin.PIM_DECISION, f"permanent {e.role}"))
    return out


def register() -> None:
    access.origin("pim")(group_origins)
    access.section("pim.roles", order=20)(roles_section)
    access.section("pim.elevations", order=21)(elevations_section)
    access.section("pim.approvals", order=60)(approvals_section)
