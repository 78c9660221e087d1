"""Changes made in Active Directory outside the provider (Cluj: AD transaction analysis).

Each poll (:func:`poll`, a worker task every ``detect.ad_poll_interval`` seconds) reads the
users, groups and OUs changed since the stored USN (:mod:`iam.directory.ad_changes`), compares
each with the last state seen, and records what changed unless the provider's own ledger of
writes explains it. Each change is a row of ``detect_ad_changes`` and an audit event
``directory.changed_outside`` (so it reaches the SIEM with the log, and the detection rule
``ad_change_outside`` alerts on it). The first poll only takes the baseline."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from detect.models import Cursor, DirectoryChange, DirectoryObject
from detect.service import cursor
from iam import audit, clock
from iam.config import AD_PROTECTED_GROUPS
from iam.directory import ad_changes
from iam.directory.ad.common import UF_ACCOUNTDISABLE
from iam.directory.ad_changes import UF_DONT_EXPIRE_PASSWD, Seen, member_key, normalise_dn

if TYPE_CHECKING:
    from iam.directory.ad import ActiveDirectory
    from iam.services import Services

log = logging.getLogger("detect.ad")

CURSOR = "ad_usn"
EVENT = "directory.changed_outside"
PROTECTED = {g.lower() for g in AD_PROTECTED_GROUPS}


@dataclass(frozen=True)
class Change:
    change: str
    attributes: tuple[str, ...]
    """The LDAP attributes whose write by the provider would explain it (``*``: creation)."""
    details: dict[str, Any]


def diff(before: dict[str, Any] | None, seen: Seen, groups: set[str]) -> list[Change]:
    """What changed on one entry. ``groups``: normalised DNs of the groups known so far (a
    member that is a group is nesting)."""
    now = seen.state
    out: list[Change] = []
    if seen.kind == "user":
        uac = int(now.get("uac", 0))
        if before is None:
            out.append(Change("user.created", ("*",), {"enabled": not uac & UF_ACCOUNTDISABLE}))
            if uac & UF_DONT_EXPIRE_PASSWD:
                out.append(Change("user.password_never_expires", ("*", "useraccountcontrol"), {}))
            return out
        old = int(before.get("uac", 0))
        if old & UF_ACCOUNTDISABLE and not uac & UF_ACCOUNTDISABLE:
            out.append(Change("user.enabled", ("useraccountcontrol",), {}))
        if not old & UF_ACCOUNTDISABLE and uac & UF_ACCOUNTDISABLE:
            out.append(Change("user.disabled", ("useraccountcontrol",), {}))
        if uac & UF_DONT_EXPIRE_PASSWD and not old & UF_DONT_EXPIRE_PASSWD:
            out.append(Change("user.password_never_expires", ("useraccountcontrol",), {}))
        if int(now.get("admin_count", 0)) and not int(before.get("admin_count", 0)):
            out.append(Change("user.admin_count", ("admincount",), {"admin_count": now.get("admin_count")}))
        return out
    if seen.kind == "group":
        protected = bool(now.get("admin_count")) or str(now.get("name", "")).lower() in PROTECTED
        facts: dict[str, Any] = {"group": now.get("name"), "protected": protected}
        if before is None:
            out.append(Change("group.created", ("*",), facts | {"group_type": now.get("group_type")}))
            old_members: set[str] = set()
        else:
            if before.get("group_type") != now.get("group_type"):
                out.append(
                    Change(
                        "group.scope_changed",
                        ("grouptype",),
                        facts | {"from": before.get("group_type"), "to": now.get("group_type")},
                    )
                )
            old_members = set(before.get("members", []))
        members = set(now.get("members", []))
        for member in sorted(members - old_members):
            kind = "group.nested" if member in groups else "group.member_added"
            out.append(Change(kind, (member_key(member),), facts | {"member": member}))
        for member in sorted(old_members - members):
            out.append(Change("group.member_removed", (member_key(member),), facts | {"member": member}))
        return out
    if before is None:
        out.append(Change("ou.created", ("*",), {}))
    elif now.get("acl") and before.get("acl") and now["acl"] != before["acl"]:
        out.append(Change("ou.delegation_changed", ("ntsecuritydescriptor",), {}))
    return out


def _store(session: Session, seen: Seen, read_at: dt.datetime) -> None:
    """Keep the state seen; ``read_at`` is when the poll began reading (before the search), so
    a write of ours noted after it was possibly not in what was read, and still explains."""
    row = session.get(DirectoryObject, seen.guid)
    if row is None:
        row = DirectoryObject(guid=seen.guid)
        session.add(row)
    row.dn, row.kind, row.state, row.usn, row.seen_at = (
        seen.dn[:512],
        seen.kind,
        seen.state,
        seen.usn,
        read_at,
    )


def poll(services: Services) -> int:
    """One poll; returns how many changes made outside the provider were recorded."""
    settings = services.settings
    if settings.directory.kind != "ad" or not settings.detect.ad_changes:
        return 0
    ad: ActiveDirectory = services.directory  # type: ignore[assignment]
    if ad.ledger is not None:
        ad.ledger.flush()  # our writes of this process are on the ledger before we compare
    base = settings.detect.ad_base_dn or settings.directory.base_dn
    read_at = clock.now()
    dc, highest = ad_changes.root(ad)
    with services.transaction() as session:
        position = cursor.lock(session, CURSOR)
        source = session.scalar(select(Cursor.source).where(Cursor.name == CURSOR))
        if position == 0 or source != dc:
            return _baseline(session, ad, base, dc, highest, position, read_at)
        seen = ad_changes.changed_since(ad, base, position)
        recorded = record(session, services, seen, read_at)
        cursor.move(session, CURSOR, max(highest, position), source=dc)
        since = clock.now() - dt.timedelta(seconds=settings.detect.ad_own_write_window)
        ad_changes.purge_writes(session, before=since)
        return recorded


def _baseline(
    session: Session,
    ad: ActiveDirectory,
    base: str,
    dc: str,
    highest: int,
    position: int,
    read_at: dt.datetime,
) -> int:
    log.info("taking the baseline of %s from %s at USN %s (was %s)", base, dc, highest, position)
    for seen in ad_changes.changed_since(ad, base, 0):
        _store(session, seen, read_at)
    cursor.move(session, CURSOR, highest, source=dc)
    audit.record(
        session,
        "directory.baseline",
        actor="system:detect",
        details={"usn": highest, "dc": dc[:200], "previous_usn": position},
    )
    return 0


def record(session: Session, services: Services, seen: Sequence[Seen], read_at: dt.datetime) -> int:
    """Record what changed in ``seen`` and was not written by the provider: a write of ours
    explains a change only if it was noted after the entry was last read (and within
    ``detect.ad_own_write_window``), so an old write never hides a later change by another."""
    window = dt.timedelta(seconds=services.settings.detect.ad_own_write_window)
    oldest = clock.now() - window
    groups = {
        normalise_dn(dn)
        for dn in session.scalars(select(DirectoryObject.dn).where(DirectoryObject.kind == "group"))
    }
    groups |= {normalise_dn(s.dn) for s in seen if s.kind == "group"}
    known = {
        row.guid: row
        for row in session.scalars(
            select(DirectoryObject).where(DirectoryObject.guid.in_([s.guid for s in seen]))
        )
    }
    recorded = 0
    for entry in seen:
        before = known.get(entry.guid)
        since = max(oldest, before.seen_at) if before is not None else oldest
        for change in diff(before.state if before else None, entry, groups):
            if ad_changes.ours(session, entry.dn, change.attributes, since=since):
                continue
            details = {"change": change.change, "dn": entry.dn[:400], "usn": entry.usn, **change.details}
            event_id = audit.record(
                session,
                EVENT,
                severity=audit.Severity.SIGNIFICANT,
                actor="directory:outside-provider",
                subject=entry.dn,
                details=details,
            )
            session.add(
                DirectoryChange(
                    at=clock.now(),
                    changed_at=entry.changed_at,
                    usn=entry.usn,
                    guid=entry.guid,
                    dn=entry.dn[:512],
                    kind=entry.kind,
                    change=change.change,
                    details=change.details,
                    audit_event_id=event_id,
                )
            )
            recorded += 1
        _store(session, entry, read_at)
    return recorded


def listing(session: Session, *, limit: int = 200, change: str | None = None) -> Sequence[DirectoryChange]:
    stmt = select(DirectoryChange).order_by(DirectoryChange.id.desc()).limit(limit)
    if change:
        stmt = stmt.where(DirectoryChange.change == change)
    return session.scalars(stmt).all()
