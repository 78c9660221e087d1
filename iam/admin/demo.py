"""``iam demo``: people in every administrative role, so the console can be tried at once.

- ``admin`` (Ana Popescu) — IT administrator (``admin.it_admin_group``)
- ``dragan`` — help desk (``admin.helpdesk_group``), a new demo user
- ``ivana`` — auditor (``admin.auditor_group``), a new demo user
- ``bob`` — security officer when ``make run`` names him in ``pim.security_officers``; also put
  in the security officers' group here
- ``hana`` — HR operator (``provisioning.operators_group``, seeded by the HR demo)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iam.directory.errors import EntryExists

if TYPE_CHECKING:
    from iam.services import Services

NEW_USERS = (("dragan", "Dragan", "Petrović"), ("ivana", "Ivana", "Nowak"))


def seed(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    from iam.users import add_user

    settings = services.settings
    directory = services.directory
    for username, given, family in NEW_USERS:
        existing = directory.find_user(username=username)
        if existing is not None:
            directory.set_password(existing.id, demo["password"], must_change=False)
            continue
        try:
            add_user(
                services,
                username=username,
                password=demo["password"],
                given_name=given,
                family_name=family,
                email=f"{username}@example.test",
                groups=["staff"],
                must_change=False,
                actor="demo",
            )
        except EntryExists:
            pass
    a = settings.admin
    members = {
        a.it_admin_group: "admin",
        a.helpdesk_group: "dragan",
        a.auditor_group: "ivana",
        a.security_officer_group or settings.reviews.security_officer_group: "bob",
    }
    for group, username in members.items():
        user = directory.find_user(username=username)
        if not group or user is None:
            continue
        if directory.get_group(group) is None:
            directory.create_group(group)
        if group.casefold() not in {g.casefold() for g in directory.user_groups(user.id, nested=False)}:
            directory.add_member(group, user.id)
    return {
        "admin_roles": {
            "it_admin": "admin",
            "helpdesk": "dragan",
            "security_officer": "bob",
            "hr_operator": "hana",
            "auditor": "ivana",
        },
        "lines": [
            f"  Console   {settings.issuer}/admin/ — IT administrator admin, help desk dragan,"
            " security officer bob, HR operator hana, auditor ivana (same password)",
            f"            (the console asks for a second factor: set up an authenticator app at"
            f" {settings.issuer}/mfa/enroll first)",
        ],
    }
