"""PIM's durable jobs and periodic work (run by ``iam worker``).

- ``pim.ad.*``: every directory write of PIM (account creation, grant, removal, locking,
  removal of out-of-band members). A directory outage raises RetryLater: delayed, never lost.
- ``pim.expire``: queued at approval to run at the end of the window.
- periodic ``pim.sweep`` (``pim.sweep_interval``, and at once when a worker starts): ends every
  overdue elevation and lapses stale requests, so a crash or restart never extends access.
- periodic ``pim.detect`` (``pim.detection_interval``, default 60 s): out-of-band changes.
- ``pim.shared.rotate``: new password for a shared administrator account.
- ``pim.notify``: finds the people concerned and queues one core ``iam.mail`` job for each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import jobs
from iam.backup.service import after_restore
from iam.directory.errors import DirectoryUnavailable, NoSuchEntry
from iam.jobs import RetryLater, handler, periodic
from iam.models.identity import Identity
from pim import entitlements
from pim.models import ElevationRequest
from pim.roles import all_roles
from pim.service import directory as ops
from pim.service import ending

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("pim.jobs")

entitlements.register()  # eligibilities, admin accounts and role groups for access reviews


def _directory_job(fn: Callable[[Services, Session, dict[str, Any]], None]) -> Callable[..., None]:
    def run(services: Services, session: Session, payload: dict[str, Any]) -> None:
        try:
            fn(services, session, payload)
        except DirectoryUnavailable as exc:
            raise RetryLater(str(exc)) from exc

    run.__name__ = fn.__name__
    return run


@handler("pim.ad.ensure_account")
@_directory_job
def _ensure_account(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ops.ensure_account(services, session, str(payload["person_sub"]))


@handler("pim.ad.activate")
@_directory_job
def _activate(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ops.activate(services, session, str(payload["request_id"]))


@handler("pim.ad.deactivate")
@_directory_job
def _deactivate(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ops.deactivate(services, session, str(payload["request_id"]))


@handler("pim.ad.lock_account")
@_directory_job
def _lock_account(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ops.lock_account(services, session, str(payload["person_sub"]))


@handler("pim.ad.remove_member")
@_directory_job
def _remove_member(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        services.directory.remove_member(str(payload["group"]), str(payload["account_id"]))
    except NoSuchEntry:
        log.warning("out-of-band member or group already gone")


@handler("pim.shared.rotate")
@_directory_job
def _rotate_shared(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ops.rotate_shared(services, session, str(payload["username"]), str(payload.get("reason", "")))


@handler("pim.expire")
def _expire(services: Services, session: Session, payload: dict[str, Any]) -> None:
    ending.expire(session, services, str(payload["request_id"]))


@periodic("pim.sweep", lambda settings: settings.pim.sweep_interval)
def sweep(services: Services) -> None:
    with services.transaction() as session:
        done = ending.sweep(session, services)
    if any(done.values()):
        log.info("pim sweep: %s", done)


@periodic("pim.detect", lambda settings: settings.pim.detection_interval)
def detect(services: Services) -> None:
    try:
        new = ops.detect(services)
    except DirectoryUnavailable as exc:
        log.warning("pim detection skipped, directory unavailable: %s", exc)
        return
    if new:
        log.warning("pim detection: %d new alert(s)", len(new))


# -- mail -------------------------------------------------------------------------------------
SUBJECTS = {
    "requested": "Privileged access requested: {role} by {requester}",
    "approved": "Privileged access approved: {role} for {requester} until {ends_at} UTC",
    "activated": "Privileged access active: {role} for {requester} until {ends_at} UTC",
    "failed": "Privileged access FAILED: {role} for {requester} - {reason}",
    "denied": "Privileged access denied: {role} for {requester}",
    "expired": "Privileged access ended: {role} for {requester}",
    "revoked": "Privileged access revoked: {role} for {requester}",
    "cancelled": "Privileged access request withdrawn: {role} by {requester}",
    "lapsed": "Privileged access request expired unanswered: {role} by {requester}",
    "break_glass": "EMERGENCY break-glass access: {role} by {requester}",
}


ALERT_OFFICERS = ("break_glass", "failed")
"""Events the security officers are mailed about directly (besides the critical audit alert)."""


def _emails_of(session: Session, services: Services, usernames: list[str]) -> list[str]:
    out = []
    for name in usernames:
        row = session.scalar(select(Identity).where(Identity.username == name))
        if row is not None and row.email:
            out.append(row.email)
    return out


def recipients(session: Session, services: Services, req: ElevationRequest, event: str) -> list[str]:
    role = all_roles(session, services, include_disabled=True).get(req.role)
    to: list[str] = []
    requester = session.get(Identity, req.requester_sub)
    if requester is not None and requester.email:
        to.append(requester.email)
    if role is not None:
        approvers = list(role.approvers)
        if role.approver_group and event in ("requested", "break_glass", "failed"):
            try:
                approvers += [u.username for u in services.directory.group_members(role.approver_group)]
            except (DirectoryUnavailable, NoSuchEntry):
                pass
        to += _emails_of(session, services, approvers)
        to += role.notify
    if event in ALERT_OFFICERS and services.settings.audit.security_officer_email:
        to.append(services.settings.audit.security_officer_email)
    to += (
        _emails_of(session, services, services.settings.pim.security_officers)
        if event in ALERT_OFFICERS
        else []
    )
    seen: list[str] = []
    for addr in to:
        if addr and addr not in seen:
            seen.append(addr)
    return seen


@handler("pim.notify")
def _notify(services: Services, session: Session, payload: dict[str, Any]) -> None:
    req = session.get(ElevationRequest, str(payload["request_id"]))
    if req is None:
        return
    event = str(payload["event"])
    facts = {
        "role": req.role,
        "requester": req.requester_username,
        "ends_at": f"{req.ends_at:%Y-%m-%d %H:%M}" if req.ends_at else "-",
        "reason": (req.end_reason or "-")[:120],
    }
    subject = SUBJECTS.get(event, "Privileged access: {role}").format(**facts)
    body = (
        f"{subject}\n\n"
        f"Request:       {req.id}\nRole:          {req.role}\nRequester:     {req.requester_username}\n"
        f"State:         {req.state}\nJustification: {req.justification or '-'}\n"
        f"Ticket:        {req.ticket or '-'}\nDuration:      {req.duration // 60} minutes\n"
        f"Window:        {req.starts_at or '-'} .. {req.ends_at or '-'} (UTC)\n"
        f"Admin account: {req.admin_username or '-'}\n"
        f"Ended:         {req.end_reason or '-'}\n\n"
        f"Open {services.settings.issuer}/pim/ to see or act on it.\n"
    )
    for to in recipients(session, services, req, event):  # one durable mail job each
        jobs.enqueue(session, "iam.mail", {"to": to, "subject": f"[IAM PIM] {subject}", "text": body})


# -- after a restore (iam backup restore): end what ended while the backup was old ---------------
@after_restore("pim")
def _after_restore(services: Services) -> str:
    """Elevations that ended after the backup was made are still "active" in the restored
    database: end them (and take their groups back in AD), then read the privileged groups."""
    with services.transaction() as session:
        done = ending.sweep(session, services)
    new = ops.detect(services)
    return (
        f"{done['expired']} elevation(s) ended, {done['lapsed']} lapsed; "
        f"{len(new)} privileged member(s) outside PIM alerted"
    )


from pim import conformance as _conformance  # noqa: E402, F401 — registers conformance evidence
