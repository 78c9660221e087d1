"""The directory side of PIM, run by jobs: grant on the admin account, remove, rotate, and find
privileged changes made outside PIM (R-PIM-2, R-PIM-4, R-PIM-5, R-PIM-7).

Every function here is called from a durable job (or the periodic detection), so a directory
outage only delays it: :class:`iam.directory.errors.DirectoryUnavailable` propagates and the job
is retried.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.directory.base import DirectoryUser, NewUser
from iam.directory.errors import EntryExists, NoSuchEntry
from iam.errors import Conflict
from pim.models import LIVE_STATES, AdminAccount, Alert, ElevationRequest, Eligibility, State
from pim.roles import all_roles
from pim.service.accounts import store_shared_secret
from pim.service.common import SYSTEM, random_password, record, unseal

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("pim.directory")


def ensure_account(services: Services, session: Session, person_sub: str) -> str | None:
    """Create the person's admin account (disabled, random unknown password) unless it exists."""
    account = session.get(AdminAccount, person_sub)
    if account is None:
        return None
    if account.account_id:
        return account.account_id
    d = services.directory
    existing = d.find_user(username=account.username)
    if existing is None:
        person = d.get_user(person_sub)
        if person is None:
            log.warning("admin account for %s not created: the person is gone", account.person_username)
            return None
        new = NewUser(
            username=account.username,
            given_name=person.given_name,
            family_name=person.family_name,
            display_name=f"{person.name} (admin)",
            ou=services.settings.pim.admin_accounts_ou or None,
            enabled=False,
        )
        try:
            existing = d.create_user(new)
        except EntryExists:
            existing = d.find_user(username=account.username)
            if existing is None:
                raise
        d.set_password(existing.id, random_password(), must_change=False)
        d.disable(existing.id)
        record(
            session,
            "pim.admin_account_created",
            SYSTEM,
            severity=audit.Severity.SIGNIFICANT,
            subject=person_sub,
            details={"admin_account": account.username, "dn": existing.dn},
        )
    account.account_id = existing.id
    return existing.id


def activate(services: Services, session: Session, request_id: str) -> None:
    """Enable the admin account, set its password, add the role's groups; then ``active``."""
    from pim.service.requests import _transition

    req = session.get(ElevationRequest, request_id)
    if req is None or req.state != State.APPROVED or req.ends_at is None:
        return
    if req.ends_at <= clock.now():
        return  # the window is already over: expiry will record it, nothing to grant
    account_id = ensure_account(services, session, req.requester_sub)
    if account_id is None:
        raise Conflict("the requester's admin account cannot be created")
    d = services.directory
    password = unseal(services, req.secret, context=req.id) if req.secret else random_password()
    d.set_password(account_id, password, must_change=False)
    d.enable(account_id)
    for group in req.groups:
        d.add_member(group, account_id)
    now = clock.now()
    values: dict[str, object] = {"applied_at": now}
    if req.secret_shown_at is not None:
        values["secret"] = None
    _transition(session, req, [State.APPROVED], State.ACTIVE, **values)
    record(
        session,
        "pim.access_granted",
        SYSTEM,
        subject=req.requester_sub,
        details={"request": req.id, "admin_account": req.admin_username, "groups": list(req.groups)},
    )


def _still_needed(session: Session, req: ElevationRequest) -> tuple[bool, set[str]]:
    others = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.requester_sub == req.requester_sub,
            ElevationRequest.id != req.id,
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
        )
    ).all()
    groups = {g.casefold() for o in others for g in o.groups}
    return bool(others), groups


def deactivate(services: Services, session: Session, request_id: str) -> None:
    """Disable the admin account, remove the groups, rotate the password (unless another live
    elevation of the same person still needs the account)."""
    req = session.get(ElevationRequest, request_id)
    if req is None or req.removed_at is not None:
        return
    account = session.get(AdminAccount, req.requester_sub)
    if account is None or not account.account_id:
        req.removed_at = clock.now()
        return
    d = services.directory
    other_live, keep = _still_needed(session, req)
    if not other_live:
        try:
            d.disable(account.account_id)
        except NoSuchEntry:
            log.warning("admin account %s is gone from the directory", account.username)
    for group in req.groups:
        if group.casefold() in keep:
            continue
        try:
            d.remove_member(group, account.account_id)
        except NoSuchEntry:
            log.warning("group %s or account %s is gone from the directory", group, account.username)
    if not other_live:
        try:
            d.set_password(account.account_id, random_password(), must_change=False)
        except NoSuchEntry:
            pass
    req.removed_at = clock.now()
    req.secret = None
    lag = (
        (req.removed_at - req.ends_at).total_seconds() if req.ends_at and req.state == State.EXPIRED else None
    )
    record(
        session,
        "pim.access_removed",
        SYSTEM,
        subject=req.requester_sub,
        details={
            "request": req.id,
            "admin_account": account.username,
            "groups": list(req.groups),
            "lag_seconds": round(lag, 3) if lag is not None else None,
        },
    )


def lock_account(services: Services, session: Session, person_sub: str) -> None:
    """Disable an admin account found enabled outside an elevation, and rotate its password."""
    account = session.get(AdminAccount, person_sub)
    if account is None or not account.account_id:
        return
    if session.scalar(
        select(ElevationRequest.id).where(
            ElevationRequest.requester_sub == person_sub,
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
        )
    ):
        return  # an elevation started meanwhile
    services.directory.disable(account.account_id)
    services.directory.set_password(account.account_id, random_password(), must_change=False)


def rotate_shared(services: Services, session: Session, username: str, reason: str) -> None:
    d = services.directory
    user = d.find_user(username=username)
    if user is None:
        log.warning("shared account %s is not in the directory; not rotated", username)
        return
    value = random_password()
    d.set_password(user.id, value, must_change=False)
    store_shared_secret(session, services, username, value, reason)
    record(
        session,
        "pim.shared_rotated",
        SYSTEM,
        severity=audit.Severity.SIGNIFICANT,
        details={"account": username, "reason": reason},
    )


# -- out-of-band detection (R-PIM-7) ----------------------------------------------------------
def _allowed(
    session: Session, services: Services
) -> tuple[dict[str, set[str]], set[str], list[AdminAccount]]:
    """Per privileged group (casefolded), the usernames that may be in it now; and the admin
    accounts that may be enabled now."""
    roles = all_roles(session, services, include_disabled=True)
    grace = clock.now() - dt.timedelta(seconds=services.settings.pim.detection_grace)
    allowed: dict[str, set[str]] = {}
    for role in roles.values():
        for g in role.groups:
            allowed.setdefault(g.casefold(), set()).update(m.casefold() for m in role.permanent_members)
    for e in session.scalars(select(Eligibility).where(Eligibility.permanent.is_(True))):
        held = roles.get(e.role)
        if held is not None:
            for g in held.groups:
                allowed.setdefault(g.casefold(), set()).add(e.username.casefold())
    enabled_ok: set[str] = set()
    backed = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES])
            | (ElevationRequest.ended_at >= grace)
            | ((ElevationRequest.removed_at.is_(None)) & ElevationRequest.starts_at.is_not(None))
        )
    ).all()
    for req in backed:
        if not req.admin_username:
            continue
        enabled_ok.add(req.admin_username.casefold())
        for g in req.groups:
            allowed.setdefault(g.casefold(), set()).add(req.admin_username.casefold())
    accounts = list(session.scalars(select(AdminAccount).where(AdminAccount.account_id.is_not(None))))
    return allowed, enabled_ok, accounts


def detect(services: Services) -> list[int]:
    """Read every privileged group and every admin account; alert on what PIM does not back.
    Directory reads happen outside any write transaction. Returns the new alert ids."""
    with services.reader() as session:
        allowed, enabled_ok, accounts = _allowed(session, services)
        account_rows = [(a.person_sub, a.username, a.account_id) for a in accounts]
    d = services.directory
    found: list[tuple[str, str, DirectoryUser, str]] = []  # kind, group, user, person_sub
    for group, ok in allowed.items():
        try:
            members = d.group_members(group, nested=True)
        except NoSuchEntry:
            log.warning("privileged group %s does not exist in the directory", group)
            continue
        found.extend(("member_outside_pim", group, m, "") for m in members if m.username.casefold() not in ok)
    for person_sub, username, account_id in account_rows:
        if username.casefold() in enabled_ok or not account_id:
            continue
        user = d.get_user(account_id)
        if user is not None and user.enabled:
            found.append(("account_enabled_outside_pim", "", user, person_sub))
    new: list[int] = []
    seen: set[tuple[str, str, str]] = set()
    remove = services.settings.pim.remove_out_of_band
    with services.transaction() as session:
        for kind, group, user, person_sub in found:
            key = (kind, user.id, group)
            seen.add(key)
            if session.scalar(
                select(Alert.id).where(
                    Alert.kind == kind,
                    Alert.account_id == user.id,
                    Alert.group == group,
                    Alert.resolved_at.is_(None),
                )
            ):
                continue
            alert = Alert(
                kind=kind,
                group=group,
                account_id=user.id,
                username=user.username,
                detected_at=clock.now(),
                removed=remove,
            )
            session.add(alert)
            session.flush()
            new.append(alert.id)
            record(
                session,
                f"pim.{kind}",
                SYSTEM,
                severity=audit.Severity.CRITICAL,
                outcome="failure",
                subject=user.id,
                details={
                    "alert": alert.id,
                    "group": group or None,
                    "account": user.username,
                    "dn": user.dn,
                    "removal_queued": remove,
                },
            )
            if remove and kind == "member_outside_pim":
                jobs.enqueue(session, "pim.ad.remove_member", {"group": group, "account_id": user.id})
            elif remove:
                jobs.enqueue(session, "pim.ad.lock_account", {"person_sub": person_sub})
        for alert in session.scalars(select(Alert).where(Alert.resolved_at.is_(None))).all():
            if (alert.kind, alert.account_id, alert.group) not in seen:
                alert.resolved_at = clock.now()
                alert.resolved_by = "system: no longer found"
    return new
