"""Eligibility, the separate admin accounts (R-PIM-2), shared administrator accounts (R-PIM-5),
role edits through the admin API, and what happens when a person leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from iam.directory.errors import DirectoryError
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from pim.models import (
    LIVE_STATES,
    AdminAccount,
    ElevationRequest,
    Eligibility,
    RoleOverride,
    SharedAccount,
    SharedCheckout,
    State,
)
from pim.roles import Role, all_roles, get_role, validate_definition
from pim.service.common import SYSTEM, Actor, record, refuse, require_officer, seal, unseal

if TYPE_CHECKING:
    from iam.services import Services


def admin_username(services: Services, username: str) -> str:
    return services.settings.pim.admin_account_format.format(username=username)


def missing_groups(services: Services, role: Role) -> list[str]:
    """The groups the role names (granted, approvers, eligible) that the directory does not
    have. Raises DirectoryUnavailable when it cannot say."""
    named = [*role.groups, role.approver_group, role.eligible_group]
    d = services.directory
    return [g for g in dict.fromkeys(n for n in named if n) if d.get_group(g) is None]


def _may_be_eligible(services: Services, role: Role, user_id: str, username: str) -> bool:
    if not role.eligible_users and not role.eligible_group:
        return True
    if any(u.casefold() == username.casefold() for u in role.eligible_users):
        return True
    if role.eligible_group:
        try:
            groups = services.directory.user_groups(user_id)
        except DirectoryError:
            return False
        return any(g.casefold() == role.eligible_group.casefold() for g in groups)
    return False


def add_eligibility(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    role: str,
    username: str,
    permanent: bool = False,
    reason: str = "",
) -> Eligibility:
    """Make a person eligible for a role; their admin account is created (disabled) by a job."""
    require_officer(session, services, actor, action="eligibility_add")
    r = get_role(session, services, role)
    if r is None:
        raise NotFound("There is no such privileged role.")
    user = services.directory.find_user(username=username)
    if user is None:
        raise NotFound("There is no such user in the directory.")
    missing = missing_groups(services, r)
    if missing:
        raise ValidationFailed(
            f"The role {role!r} names group(s) that do not exist in the directory: {', '.join(missing)}. "
            "Create them (or correct the role) first: an elevation could not be granted."
        )
    if not permanent and not _may_be_eligible(services, r, user.id, user.username):
        refuse(
            session,
            "pim.eligibility_refused",
            actor,
            subject=user.id,
            details={"role": role, "username": user.username, "reason": "role_policy"},
        )
        raise Forbidden("The role's policy does not allow this person to be eligible.")
    existing = session.scalar(
        select(Eligibility).where(Eligibility.role == role, Eligibility.username == user.username)
    )
    if existing is not None:
        raise Conflict("This person is already eligible for this role.")
    row = Eligibility(
        role=role,
        username=user.username,
        sub=user.id,
        permanent=permanent,
        created_by=actor.username,
        created_at=clock.now(),
    )
    session.add(row)
    if not permanent:
        ensure_admin_account(session, services, person_sub=user.id, person_username=user.username)
    session.flush()
    record(
        session,
        "pim.eligibility_added",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=user.id,
        details={"role": role, "username": user.username, "permanent": permanent, **_why(reason)},
    )
    return row


def ensure_admin_account(
    session: Session, services: Services, *, person_sub: str, person_username: str
) -> AdminAccount:
    account = session.get(AdminAccount, person_sub)
    if account is None:
        account = AdminAccount(
            person_sub=person_sub,
            person_username=person_username,
            username=admin_username(services, person_username),
            created_at=clock.now(),
        )
        session.add(account)
        session.flush()
    if account.account_id is None:
        jobs.enqueue(
            session,
            "pim.ad.ensure_account",
            {"person_sub": person_sub},
            dedup_key=f"pim.account:{person_sub}",
        )
    return account


def remove_eligibility(
    session: Session, services: Services, *, actor: Actor, role: str, username: str, reason: str = ""
) -> None:
    """Eligibility lost: live elevations of the role end, shared accounts of the role rotate."""
    from pim.service.ending import _end

    require_officer(session, services, actor, action="eligibility_remove")
    row = session.scalar(
        select(Eligibility).where(Eligibility.role == role, Eligibility.username == username)
    )
    if row is None:
        raise NotFound("This person is not eligible for this role.")
    sub = row.sub
    session.delete(row)
    session.flush()
    if sub:
        for req in session.scalars(
            select(ElevationRequest).where(
                ElevationRequest.requester_sub == sub,
                ElevationRequest.role == role,
                ElevationRequest.state.in_([State.REQUESTED, *LIVE_STATES]),
            )
        ).all():
            _end(session, req, actor, State.REVOKED, "eligibility_removed", audit.Severity.CRITICAL)
        rotate_for_person(session, sub=sub, roles={role}, reason="eligibility_removed")
    record(
        session,
        "pim.eligibility_removed",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=sub,
        details={"role": role, "username": username, **_why(reason)},
    )


def eligible_roles(session: Session, services: Services, actor: Actor) -> list[tuple[Role, Eligibility]]:
    roles = all_roles(session, services)
    rows = session.scalars(
        select(Eligibility).where((Eligibility.sub == actor.sub) | (Eligibility.username == actor.username))
    ).all()
    return [(roles[e.role], e) for e in rows if e.role in roles and not e.permanent]


# -- roles through the admin API --------------------------------------------------------------
def put_role(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    name: str,
    definition: dict[str, Any],
    reason: str = "",
) -> Role:
    require_officer(session, services, actor, action="role_save")
    role = validate_definition(name, definition, services.settings.pim)
    stored = role.model_dump(exclude={"name"})
    row = session.get(RoleOverride, name)
    if row is None:
        session.add(
            RoleOverride(name=name, definition=stored, updated_by=actor.username, updated_at=clock.now())
        )
    else:
        row.definition = stored
        row.updated_by = actor.username
        row.updated_at = clock.now()
    session.flush()
    record(
        session,
        "pim.role_saved",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        details={"role": name, "definition": stored, **_why(reason)},
    )
    return role


def delete_role_override(
    session: Session, services: Services, *, actor: Actor, name: str, reason: str = ""
) -> None:
    require_officer(session, services, actor, action="role_delete")
    row = session.get(RoleOverride, name)
    if row is None:
        raise NotFound("No role of this name is stored in the database.")
    session.delete(row)
    record(
        session,
        "pim.role_override_deleted",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        details={"role": name, **_why(reason)},
    )


# -- shared administrator accounts (R-PIM-5) --------------------------------------------------
def add_shared(
    session: Session,
    services: Services,
    *,
    actor: Actor,
    username: str,
    roles: list[str],
    reason: str = "",
) -> SharedAccount:
    require_officer(session, services, actor, action="shared_add")
    known = all_roles(session, services, include_disabled=True)
    unknown = [r for r in roles if r not in known]
    if unknown or not roles:
        raise ValidationFailed("Name at least one existing role whose eligible people may use the account.")
    if services.directory.find_user(username=username) is None:
        raise NotFound("There is no such account in the directory.")
    if session.get(SharedAccount, username) is not None:
        raise Conflict("This shared account is already registered.")
    row = SharedAccount(
        username=username, roles=list(roles), created_by=actor.username, created_at=clock.now()
    )
    session.add(row)
    session.flush()
    record(
        session,
        "pim.shared_added",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        details={"account": username, "roles": roles, **_why(reason)},
    )
    request_rotation(session, username=username, reason="registered")
    return row


def rotate_shared_now(
    session: Session, services: Services, *, actor: Actor, username: str, reason: str
) -> None:
    """A security officer asks for a new password of a shared account now (a job sets it in
    the directory; until then the account keeps its current password)."""
    require_officer(session, services, actor, action="shared_rotate")
    if session.get(SharedAccount, username) is None:
        raise NotFound("There is no such shared account.")
    request_rotation(session, username=username, reason="officer: " + reason[:200])
    record(
        session,
        "pim.shared_rotation_requested",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        details={"account": username, **_why(reason)},
    )


def _why(reason: str) -> dict[str, str]:
    return {"reason": reason[:500]} if reason else {}


def request_rotation(session: Session, *, username: str, reason: str) -> None:
    jobs.enqueue(session, "pim.shared.rotate", {"username": username, "reason": reason})


def rotate_for_person(session: Session, *, sub: str, roles: set[str] | None, reason: str) -> list[str]:
    """Rotate every shared account that this person held or could check out."""
    rotated: list[str] = []
    held_roles = set(
        session.scalars(
            select(ElevationRequest.role).where(
                ElevationRequest.requester_sub == sub, ElevationRequest.applied_at.is_not(None)
            )
        )
    )
    eligible = set(session.scalars(select(Eligibility.role).where(Eligibility.sub == sub)))
    checked_out = set(
        session.scalars(select(SharedCheckout.username).where(SharedCheckout.person_sub == sub))
    )
    concerned = roles if roles is not None else eligible | held_roles
    for account in session.scalars(select(SharedAccount)).all():
        if account.username in checked_out or set(account.roles) & concerned:
            request_rotation(session, username=account.username, reason=reason)
            rotated.append(account.username)
    if rotated:
        record(
            session,
            "pim.shared_rotation_queued",
            SYSTEM,
            severity=audit.Severity.SIGNIFICANT,
            subject=sub,
            details={"accounts": rotated, "reason": reason},
        )
    return rotated


def store_shared_secret(session: Session, services: Services, username: str, value: str, reason: str) -> None:
    row = session.get(SharedAccount, username)
    if row is None:
        return
    row.secret = seal(services, value, context=f"shared:{username}")
    row.rotated_at = clock.now()
    row.rotation_reason = reason[:256]


def checkout_shared(session: Session, services: Services, *, actor: Actor, username: str) -> str:
    """Show the current password of a shared account to a person allowed to use it (recorded,
    so that their leaving rotates it)."""
    row = session.get(SharedAccount, username)
    if row is None:
        raise NotFound("There is no such shared account.")
    allowed = any(
        session.scalar(select(Eligibility).where(Eligibility.role == r, Eligibility.sub == actor.sub))
        is not None
        for r in row.roles
    )
    if not allowed:
        refuse(session, "pim.shared_checkout_refused", actor, details={"account": username})
        raise Forbidden("You may not use this shared account.")
    if not row.secret:
        raise Conflict("The password is being rotated; try again in a moment.")
    session.add(SharedCheckout(username=username, person_sub=actor.sub, at=clock.now()))
    record(
        session,
        "pim.shared_checkout",
        actor,
        severity=audit.Severity.SIGNIFICANT,
        subject=actor.sub,
        details={"account": username},
    )
    return unseal(services, row.secret, context=f"shared:{username}")


# -- leavers ----------------------------------------------------------------------------------
def on_identity_disabled(sub: str, *, session: Session, reason: str = "", **_: Any) -> None:
    """A person left or was disabled: end their elevations, rotate shared accounts (R-PIM-5).

    Subscribed to :data:`iam.events.identity_disabled`; runs in the sender's transaction.
    """
    from pim.service.ending import _end

    reqs = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.requester_sub == sub,
            ElevationRequest.state.in_([State.REQUESTED, *LIVE_STATES]),
        )
    ).all()
    for req in reqs:
        _end(
            session, req, SYSTEM, State.REVOKED, f"identity_disabled: {reason}"[:256], audit.Severity.CRITICAL
        )
    rotate_for_person(session, sub=sub, roles=None, reason="holder_left")


events.identity_disabled.connect(on_identity_disabled)
