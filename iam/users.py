"""User operations shared by the CLI, the API and the demo: create, enable/disable."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam import audit, privileged
from iam.directory.base import DirectoryUser, NewUser
from iam.directory.errors import DirectoryUnavailable, EntryExists
from iam.errors import NotFound, PrivilegedAccount
from iam.i18n import N_
from iam.identities import disable_identity, enable_identity, upsert_identity
from iam.models.identity import Identity

if TYPE_CHECKING:
    from iam.services import Services


def add_user(
    services: Services,
    *,
    username: str,
    password: str,
    given_name: str | None = None,
    family_name: str | None = None,
    email: str | None = None,
    employee_number: str | None = None,
    groups: list[str] | None = None,
    must_change: bool | None = None,
    actor: str,
) -> DirectoryUser:
    """Create an account in the directory with an initial password.

    ``must_change`` None follows the password profile (``change_new_account``: BISTREZOR
    Član 22, PABIANICE §18.3); True forces a change at the first sign-in, False (demo data)
    does not. The initial password is kept in the history like every other (R-PW-2)."""
    from iam.passwords import service as passwords

    profile = services.password_profile
    if must_change is None:
        must_change = passwords.must_change_at_next_sign_in(profile, by_admin=True, new_account=True)
    directory = services.directory
    user = directory.create_user(
        NewUser(
            username=username,
            given_name=given_name,
            family_name=family_name,
            email=email,
            employee_number=employee_number,
            enabled=False,
        )
    )
    try:
        directory.set_password(user.id, password, must_change=must_change)
        directory.enable(user.id)
        for group in groups or []:
            if directory.get_group(group) is None:
                directory.create_group(group)
            directory.add_member(group, user.id)
    except Exception:
        directory.delete_user(user.id)  # nothing half-created: the name stays free
        raise
    user = directory.get_user(user.id) or user
    with services.transaction() as session:
        upsert_identity(session, user, kind=directory.kind)
        session.flush()
        passwords.record_password_set(
            session, user.id, password, by_admin=True, actor=actor, profile=profile, initial=True
        )
        audit.record(
            session,
            "user.created",
            severity=audit.Severity.SIGNIFICANT,
            actor=actor,
            subject=user.id,
            details={"username": username, "groups": groups or [], "must_change": must_change},
        )
    return user


def set_enabled(services: Services, *, username: str, enabled: bool, actor: str, reason: str) -> bool:
    """Enable or disable ``username``: the provider's identity changes now (a disable ends its
    sessions, refresh tokens and elevations in the same transaction) and the directory write is
    a durable job.

    Neither waits for the directory: when it cannot be reached, the account is found among the
    identities the provider already knows (by account name, without case) and the job waits
    for the directory to answer. Returns whether the directory was reachable."""
    directory = services.directory
    try:
        user = directory.find_user(username=username)
    except DirectoryUnavailable:
        with services.transaction() as session:
            identity = _known_identity(session, username)
            if identity is None:
                raise NotFound(
                    f"The directory cannot be reached and no account named {username!r} is known "
                    "here; try again when the directory answers."
                ) from None
            if enabled:
                enable_identity(session, sub=identity.sub, actor=actor)
            else:
                disable_identity(session, sub=identity.sub, actor=actor, reason=reason)
        return False
    if user is None:
        raise NotFound(N_("There is no user '%(username)s'."), username=username)
    with services.transaction() as session:
        upsert_identity(session, user, kind=directory.kind)
        session.flush()
        if enabled:
            enable_identity(session, sub=user.id, actor=actor)
        else:
            disable_identity(session, sub=user.id, actor=actor, reason=reason)
    return True


def _known_identity(session: Session, username: str) -> Identity | None:
    """The one identity whose account name is ``username`` (without case), if exactly one."""
    rows = session.scalars(
        select(Identity).where(func.lower(Identity.username) == username.strip().lower())
    ).all()
    return rows[0] if len(rows) == 1 else None


def refuse_privileged(
    services: Services, user: DirectoryUser, *, operation: str, actor: str, reason: str | None = None
) -> None:
    """Raise :class:`PrivilegedAccount` if ``user`` is privileged (:mod:`iam.privileged`), after
    recording a critical ``<operation>_refused`` event in its own, committed transaction (it
    survives the refusal). A help-desk path calls this before it changes anything."""
    why = privileged.why_privileged(services, user)
    if why is None:
        return
    with services.transaction() as session:
        audit.record(
            session,
            f"{operation}_refused",
            severity=audit.Severity.CRITICAL,
            outcome="failure",
            actor=actor,
            subject=user.id,
            details={"username": user.username, "why": f"privileged account: {why}", "reason": reason},
        )
    raise PrivilegedAccount(
        f"{user.username} is a privileged account ({why}): the help desk cannot reset it; "
        "its password is changed only by PIM's rotation."
    )


def reset_password(
    services: Services, *, username: str, actor: str, reason: str | None = None
) -> tuple[str, bool]:
    """Administrator reset (PABIANICE §19–§22): a random temporary password that satisfies the
    profile, changed at first sign-in; the reset is recorded. Returns the password (show once)."""
    from iam.passwords import service as passwords

    directory = services.directory
    user = directory.find_user(username=username)
    if user is None:
        raise NotFound(N_("There is no user '%(username)s'."), username=username)
    refuse_privileged(services, user, operation="password.reset", actor=actor, reason=reason)
    profile = services.password_profile
    must_change = passwords.must_change_at_next_sign_in(profile, by_admin=True)
    temporary, _ = passwords.with_random_password(
        profile, lambda password: directory.set_password(user.id, password, must_change=must_change)
    )
    with services.transaction() as session:
        upsert_identity(session, user, kind=directory.kind)
        passwords.record_password_set(
            session, user.id, temporary, by_admin=True, actor=actor, profile=profile, reason=reason
        )
    return temporary, must_change


DEMO_USERS = (
    ("alice", "Alice", "Anđelković", ["staff", "finance"]),
    ("bob", "Bob", "Kowalski", ["staff"]),
    ("admin", "Ana", "Popescu", ["staff", "it-admins"]),
    ("hana", "Hana", "Kovačević", ["staff", "hr"]),
)


def seed_demo_users(services: Services, *, password: str | None) -> dict[str, Any]:
    """Demo users in the directory (idempotent). Returns usernames and their password."""
    password = password or "demo-" + secrets.token_urlsafe(9)
    directory = services.directory
    created = []
    for username, given, family, groups in DEMO_USERS:
        existing = directory.find_user(username=username)
        if existing is not None:
            directory.set_password(existing.id, password, must_change=False)
            continue
        try:
            add_user(
                services,
                username=username,
                password=password,
                given_name=given,
                family_name=family,
                email=f"{username}@example.test",
                groups=groups,
                must_change=False,  # demo accounts sign in with the printed password
                actor="demo",
            )
            created.append(username)
        except EntryExists:
            pass
    return {"users": [u[0] for u in DEMO_USERS], "password": password, "created": created}
