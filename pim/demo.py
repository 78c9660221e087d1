"""``iam demo`` for PIM: the shipped roles made usable on the built-in directory — their groups
exist, ``admin`` is an IT administrator eligible for them, ``bob`` approves (never their own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from pim.models import Eligibility
from pim.roles import all_roles
from pim.service import Actor, add_eligibility

if TYPE_CHECKING:
    from iam.services import Services

ROLES = ("server-operators", "domain-admins")
"""Shipped roles (policies/pim) the demo person is eligible for (break-glass needs a smart card)."""
PERSON = "admin"
APPROVER = "bob"


def seed(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    directory = services.directory
    with services.reader() as session:
        roles = [r for name, r in all_roles(session, services).items() if name in ROLES]
    person = directory.find_user(username=PERSON)
    approver = directory.find_user(username=APPROVER)
    if not roles or person is None or approver is None:
        return {"pim": {"roles": []}, "lines": []}
    for role in roles:
        for group in (*role.groups, role.eligible_group, role.approver_group):
            if group and directory.get_group(group) is None:
                directory.create_group(group)
        if role.eligible_group:
            directory.add_member(role.eligible_group, person.id)
        if role.approver_group:
            directory.add_member(role.approver_group, approver.id)
    with services.transaction() as session:
        for role in roles:
            known = session.scalar(
                select(Eligibility.id).where(Eligibility.role == role.name, Eligibility.username == PERSON)
            )
            if known is None:
                add_eligibility(
                    session, services, actor=Actor.operator("demo"), role=role.name, username=PERSON
                )
    issuer = services.settings.issuer
    officers = list(services.settings.pim.security_officers)
    names = [r.name for r in roles]
    data = {"roles": names, "eligible": PERSON, "approver": APPROVER, "security_officers": officers}
    lines = [
        f"  PIM       {PERSON} may request {' or '.join(names)} at {issuer}/pim/ ; "
        f"{APPROVER} approves at {issuer}/pim/approvals",
        "            (in dev mode re-entering the password stands in for the second factor)",
        "  Security  "
        + (
            f"officer(s) {', '.join(officers)}: {issuer}/pim/overview"
            if officers
            else "no officer configured (pim.security_officers); `make run` names bob"
        ),
    ]
    return {"pim": data, "lines": lines}
