"""The directory side of PIM, run by jobs: grant on the admin account, remove, rotate, and find
privileged changes made outside PIM (R-PIM-2, R-PIM-4, R-PIM-5, R-PIM-7).

Every function here is called from a durable job (or the periodic detection), so a directory
outage only delays it: :class:`iam.directory.errors.DirectoryUnavailable` propagates and the job
is retried.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from iam.directory.base import DirectoryGroup, DirectoryUser, NewUser
from iam.directory.errors import DirectoryError, DirectoryUnavailable, EntryExists, NoSuchEntry
from iam.errors import Conflict
from iam.i18n import N_
from pim.models import LIVE_STATES, AdminAccount, Alert, ElevationRequest, Eligibility, State
from pim.roles import all_roles
from pim.service.accounts import store_shared_secret
from pim.service.common import SYSTEM, notify, random_password, record, unseal

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("pim.directory")


def _in_directory(services: Services, person_sub: str, username: str) -> tuple[str | None, str | None]:
    """Find or create the admin account (disabled, random unknown password). Directory only:
    no database lock is held meanwhile. Returns (id, DN if it was created now)."""
    d = services.directory
    existing = d.find_user(username=username)
    if existing is not None:
        return existing.id, None
    person = d.get_user(person_sub)
    if person is None:
        log.warning("admin account %s not created: the person is gone", username)
        return None, None
    new = NewUser(
        username=username,
        given_name=person.given_name,
        family_name=person.family_name,
        display_name=f"{person.name} (admin)",
        ou=services.settings.pim.admin_accounts_ou or None,
        enabled=False,
    )
    try:
        created = d.create_user(new)
    except EntryExists:
        found = d.find_user(username=username)
        if found is None:
            raise
        return found.id, None
    d.set_password(created.id, random_password(), must_change=False)
    d.disable(created.id)
    return created.id, created.dn


def _link(session: Session, person_sub: str, account_id: str, created_dn: str | None) -> None:
    account = session.get(AdminAccount, person_sub)
    if account is None:
        return
    account.account_id = account_id
    if created_dn:
        record(
            session,
            "pim.admin_account_created",
            SYSTEM,
            severity=audit.Severity.SIGNIFICANT,
            subject=person_sub,
            details={"admin_account": account.username, "dn": created_dn},
        )


def ensure_account(services: Services, session: Session, person_sub: str) -> str | None:
    """Create the person's admin account unless it exists (job ``pim.ad.ensure_account``)."""
    with services.reader() as r:
        account = r.get(AdminAccount, person_sub)
        if account is None:
            return None
        if account.account_id:
            return account.account_id
        username = account.username
    account_id, dn = _in_directory(services, person_sub, username)
    if account_id is not None:
        _link(session, person_sub, account_id, dn)
    return account_id


class ActivationFailed(Exception):  # noqa: N818 — reads as the outcome
    """The grant cannot be completed in the directory; the message says why (no secrets)."""


def _name(group: DirectoryGroup | None) -> str:
    return group.name.casefold() if group is not None else ""


def _grant(services: Services, account_id: str, groups: list[str], password: str) -> None:
    """Write the grant, then read it back: the account enabled and a direct member of every
    group, as the directory reports it. Raises ActivationFailed (permanent) or
    DirectoryUnavailable (retry)."""
    d = services.directory
    found = {g: d.get_group(g) for g in groups}
    missing = [g for g, entry in found.items() if entry is None]
    if missing:
        raise ActivationFailed(f"the role's group(s) do not exist in the directory: {', '.join(missing)}")
    try:
        d.set_password(account_id, password, must_change=False)
        d.enable(account_id)
        for group in groups:
            d.add_member(group, account_id)
    except DirectoryUnavailable:
        raise
    except DirectoryError as exc:
        raise ActivationFailed(f"the directory refused the change: {exc}") from exc
    user = d.get_user(account_id)
    if user is None:
        raise ActivationFailed("the admin account is gone from the directory")
    if not user.enabled:
        raise ActivationFailed("the directory still reports the admin account as disabled")
    have = {g.casefold() for g in d.user_groups(account_id, nested=False)}
    absent = [g for g, entry in found.items() if not {g.casefold(), _name(entry)} & have]
    if absent:
        raise ActivationFailed(f"the directory does not list the admin account in: {', '.join(absent)}")


def activate(services: Services, session: Session, request_id: str) -> None:
    """Enable the admin account, set its password, add the role's groups, read all of it back
    from the directory; only then ``active`` (and ``pim.activated``). A write the directory
    refuses, or that it does not show afterwards, ends the request ``failed`` with the reason
    (:func:`pim.service.ending.fail`); an unreachable directory is retried by the job.

    The directory is written before this job touches the database (on SQLite with the built-in
    directory both share one write lock); the state is re-checked afterwards."""
    from pim.service.ending import fail
    from pim.service.requests import _transition

    with services.reader() as r:
        snap = r.get(ElevationRequest, request_id)
        if snap is None or snap.state != State.APPROVED or snap.ends_at is None:
            return
        if snap.ends_at <= clock.now():
            return  # the window is already over: expiry records it, nothing to grant
        account = r.get(AdminAccount, snap.requester_sub)
        if account is None:
            raise Conflict(N_("the requester has no admin account"))
        person_sub, username, account_id = account.person_sub, account.username, account.account_id
        secret, groups = snap.secret, list(snap.groups)
    created_dn = None
    problem: str | None = None
    if account_id is None:
        account_id, created_dn = _in_directory(services, person_sub, username)
    if account_id is None:
        problem = "the admin account cannot be created: the person is gone from the directory"
    else:
        password = unseal(services, secret, context=request_id) if secret else random_password()
        try:
            _grant(services, account_id, groups, password)
        except ActivationFailed as exc:
            problem = str(exc)
        _link(session, person_sub, account_id, created_dn)
    req = session.get(ElevationRequest, request_id)
    if req is None:
        return
    if req.state != State.APPROVED:
        # ended while we were granting: take it away again
        req.removed_at = None
        jobs.enqueue(session, "pim.ad.deactivate", {"request_id": req.id}, priority=jobs.URGENT)
        return
    if problem is not None:
        log.warning("activation of request %s failed: %s", req.id, problem)
        fail(session, req, problem)
        return
    values: dict[str, object] = {"applied_at": clock.now()}
    if req.secret_shown_at is not None:
        values["secret"] = None
    _transition(session, req, [State.APPROVED], State.ACTIVE, **values)
    record(
        session,
        "pim.activated",
        SYSTEM,
        severity=audit.Severity.CRITICAL,
        subject=req.requester_sub,
        details={
            "request": req.id,
            "role": req.role,
            "admin_account": req.admin_username,
            "groups": groups,
            "ends_at": req.ends_at.isoformat() if req.ends_at else None,
            "break_glass": req.break_glass,
            "verified": True,
        },
    )
    notify(session, req, "activated")


def _still_needed(session: Session, requester_sub: str, request_id: str) -> tuple[bool, set[str]]:
    others = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.requester_sub == requester_sub,
            ElevationRequest.id != request_id,
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
        )
    ).all()
    groups = {g.casefold() for o in others for g in o.groups}
    return bool(others), groups


def deactivate(services: Services, session: Session, request_id: str) -> None:
    """Disable the admin account, remove the groups, rotate the password (unless another live
    elevation of the same person still needs the account)."""
    with services.reader() as r:
        snap = r.get(ElevationRequest, request_id)
        if snap is None or snap.removed_at is not None:
            return
        account = r.get(AdminAccount, snap.requester_sub)
        account_id = account.account_id if account is not None else None
        username = account.username if account is not None else None
        groups = list(snap.groups)
        other_live, keep = _still_needed(r, snap.requester_sub, request_id)
    d = services.directory
    if account_id:
        if not other_live:
            try:
                d.disable(account_id)
            except NoSuchEntry:
                log.warning("admin account %s is gone from the directory", username)
        for group in groups:
            if group.casefold() in keep:
                continue
            try:
                d.remove_member(group, account_id)
            except NoSuchEntry:
                log.warning("group %s or account %s is gone from the directory", group, username)
        if not other_live:
            with contextlib.suppress(NoSuchEntry):
                d.set_password(account_id, random_password(), must_change=False)
    req = session.get(ElevationRequest, request_id)
    if req is None:
        return
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
            "admin_account": username,
            "groups": groups,
            "lag_seconds": round(lag, 3) if lag is not None else None,
        },
    )


def lock_account(services: Services, session: Session, person_sub: str) -> None:
    """Disable an admin account found enabled outside an elevation, and rotate its password."""
    with services.reader() as r:
        account = r.get(AdminAccount, person_sub)
        if account is None or not account.account_id:
            return
        account_id = account.account_id
        live = r.scalar(
            select(ElevationRequest.id).where(
                ElevationRequest.requester_sub == person_sub,
                ElevationRequest.state.in_([str(s) for s in LIVE_STATES]),
            )
        )
    if live:
        return  # an elevation started meanwhile
    services.directory.disable(account_id)
    services.directory.set_password(account_id, random_password(), must_change=False)


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
) -> tuple[dict[str, set[str]], set[str], list[AdminAccount], dict[str, str]]:
    """Per privileged group (casefolded), the usernames that may be in it now; the admin
    accounts that may be enabled now; and each group's name as the roles spell it."""
    roles = all_roles(session, services, include_disabled=True)
    grace = clock.now() - dt.timedelta(seconds=services.settings.pim.detection_grace)
    allowed: dict[str, set[str]] = {}
    spelled: dict[str, str] = {}
    for role in roles.values():
        for g in role.groups:
            spelled.setdefault(g.casefold(), g)
            allowed.setdefault(g.casefold(), set()).update(m.casefold() for m in role.permanent_members)
    for e in session.scalars(select(Eligibility).where(Eligibility.permanent.is_(True))):
        held = roles.get(e.role)
        if held is not None:
            for g in held.groups:
                allowed.setdefault(g.casefold(), set()).add(e.username.casefold())
    enabled_ok: set[str] = set()
    # live elevations, and those that ended moments ago (removal in flight); an ended one whose
    # removal never completed is *not* backed: after the grace it is reported like any other
    backed = session.scalars(
        select(ElevationRequest).where(
            ElevationRequest.state.in_([str(s) for s in LIVE_STATES])
            | ((ElevationRequest.ended_at >= grace) & ElevationRequest.starts_at.is_not(None))
        )
    ).all()
    for req in backed:
        if not req.admin_username:
            continue
        enabled_ok.add(req.admin_username.casefold())
        for g in req.groups:
            allowed.setdefault(g.casefold(), set()).add(req.admin_username.casefold())
    accounts = list(session.scalars(select(AdminAccount).where(AdminAccount.account_id.is_not(None))))
    return {k: v for k, v in allowed.items() if k in spelled}, enabled_ok, accounts, spelled


def detect(services: Services) -> list[int]:
    """Read every privileged group and every admin account; alert on what PIM does not back.
    Directory reads happen outside any write transaction. Returns the new alert ids."""
    with services.reader() as session:
        allowed, enabled_ok, accounts, spelled = _allowed(session, services)
        account_rows = [(a.person_sub, a.username, a.account_id) for a in accounts]
    d = services.directory
    found: list[tuple[str, str, DirectoryUser, str]] = []  # kind, group, user, person_sub
    for key, ok in allowed.items():
        group = spelled[key]
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
            found_key = (kind, user.id, group)
            seen.add(found_key)
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
            events.review_requested.send(user.id, session=session, event="out_of_band", actor="pim")
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
                jobs.enqueue(
                    session,
                    "pim.ad.remove_member",
                    {"group": group, "account_id": user.id},
                    priority=jobs.URGENT,
                )
            elif remove:
                jobs.enqueue(session, "pim.ad.lock_account", {"person_sub": person_sub}, priority=jobs.URGENT)
        for alert in session.scalars(select(Alert).where(Alert.resolved_at.is_(None))).all():
            if (alert.kind, alert.account_id, alert.group) not in seen:
                alert.resolved_at = clock.now()
                alert.resolved_by = "system: no longer found"
    return new
