"""Following Active Directory changes incrementally (the Cluj "AD transaction analysis").

How: ``uSNChanged`` polling. Each poll reads the domain controller's ``highestCommittedUSN``
from the rootDSE first, then every user, group and OU whose ``uSNChanged`` is above the stored
cursor, and stores that USN as the new cursor (entries changed during the search come again
next time; comparing with the last state seen makes that harmless). USNs are per domain
controller: the cursor remembers the DC's ``dsServiceName`` and a different DC starts a new
baseline. Why not DirSync: it needs the "Replicating Directory Changes" right for the service
account (more than the provider otherwise needs) and returns no values of unchanged attributes,
while this reads with the rights the provider has.

Telling our changes apart: AD records no "modifiersName", and replication metadata
(``msDS-ReplAttributeMetaData``) names the originating DC, not the account. So the provider
keeps a ledger of its own writes (:class:`WriteLedger`, table ``directory_writes``): every add,
modify, delete and move the service account makes is noted — entry and attribute names — once
the directory accepted it. A change of an attribute that is on the ledger for that entry is
ours; everything else was made outside the provider.

The built-in directory has no such concern: only the provider writes it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, event, insert, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from iam import clock
from iam.db import transaction
from iam.models.directory import DirectoryWrite

if TYPE_CHECKING:
    from iam.directory.ad import ActiveDirectory
    from iam.directory.ad.common import _Entry

log = logging.getLogger("iam.directory")

UF_DONT_EXPIRE_PASSWD = 0x10000
SD_DACL = 0x04
"""SD flags control: the DACL only (the owner and SACL need more rights than we ask for)."""

FOLLOWED = (
    "(|(&(objectCategory=person)(objectClass=user))(objectClass=group)(objectClass=organizationalUnit))"
)
ATTRIBUTES = [
    "objectGUID",
    "objectClass",
    "sAMAccountName",
    "userAccountControl",
    "adminCount",
    "member",
    "groupType",
    "uSNChanged",
    "whenChanged",
]


def normalise_dn(dn: str) -> str:
    """A DN for comparing: lower case, no blanks around the separators."""
    return ",".join(part.strip() for part in dn.lower().split(","))


def member_key(dn: str | bytes) -> str:
    """The ledger's name for one value of ``member`` (a DN is too long for the column)."""
    text = dn.decode() if isinstance(dn, bytes) else str(dn)
    return "member#" + hashlib.sha256(normalise_dn(text).encode()).hexdigest()[:32]


# -- the ledger of our own writes ------------------------------------------------------------------
class WriteLedger:
    """Notes each write of the service account (entry, attributes) in ``directory_writes``.

    A write happens while the caller may hold a database transaction (a job, a request): on
    SQLite a second writer in the same thread would wait for itself. So a write is noted in
    memory and stored, in a transaction of its own, as soon as the caller's outermost
    transaction ends (or when :meth:`flush` is called: the poller does before it reads)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        event.listen(sessions, "after_transaction_end", self._after_end)

    def note(self, dn: str, attributes: Iterable[str] | Mapping[str, Any]) -> None:
        """``attributes``: names, or an ldap3 ``modify`` change list (member values are noted
        one by one, so two members we add between two polls are both ours)."""
        at = clock.now()
        names = [str(a).lower() for a in attributes]
        if isinstance(attributes, Mapping):
            for name, changes in attributes.items():
                if str(name).lower() == "member":
                    names += [member_key(v) for _op, values in changes for v in values]
        rows = [{"dn": normalise_dn(dn)[:512], "attribute": a[:64], "at": at} for a in dict.fromkeys(names)]
        with self._lock:
            self._pending.extend(rows)

    def _after_end(self, session: Session, tx: SessionTransaction) -> None:
        if tx.parent is None and self._pending:
            self.flush()

    def flush(self) -> int:
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with transaction(self._sessions) as session:
                session.execute(insert(DirectoryWrite), rows)
        except Exception:
            with self._lock:
                self._pending[:0] = rows  # kept for the next try; logged loudly meanwhile
            log.exception("the ledger of the provider's own directory writes could not be stored")
            raise
        return len(rows)


def ours(session: Session, dn: str, attributes: Iterable[str], *, since: dt.datetime) -> bool:
    """The provider wrote one of ``attributes`` (or created the entry) on ``dn`` since ``since``."""
    wanted = [a.lower() for a in attributes]
    return (
        session.scalar(
            select(DirectoryWrite.id)
            .where(
                DirectoryWrite.dn == normalise_dn(dn)[:512],
                DirectoryWrite.attribute.in_(wanted),
                DirectoryWrite.at >= since,
            )
            .limit(1)
        )
        is not None
    )


def purge_writes(session: Session, *, before: dt.datetime) -> None:
    session.execute(delete(DirectoryWrite).where(DirectoryWrite.at < before))


# -- reading the directory -------------------------------------------------------------------------
@dataclass(frozen=True)
class Seen:
    """One user, group or OU as read now: what changes are computed from."""

    guid: str
    dn: str
    kind: str
    usn: int
    changed_at: dt.datetime | None
    state: dict[str, Any]


def _generalized(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _kind(entry: _Entry) -> str | None:
    classes = {c.lower() for c in entry.texts("objectClass")}
    if "organizationalunit" in classes:
        return "ou"
    if "group" in classes:
        return "group"
    if "user" in classes:
        return "user"
    return None


def _state(entry: _Entry, kind: str) -> dict[str, Any]:
    if kind == "user":
        return {
            "name": entry.text("sAMAccountName") or "",
            "uac": entry.number("userAccountControl") or 0,
            "admin_count": entry.number("adminCount") or 0,
        }
    if kind == "group":
        return {
            "name": entry.text("sAMAccountName") or "",
            "group_type": entry.number("groupType") or 0,
            "admin_count": entry.number("adminCount") or 0,
            "members": sorted({normalise_dn(m) for m in entry.texts("member")}),
        }
    return {}


def root(ad: ActiveDirectory) -> tuple[str, int]:
    """The domain controller answering (``dsServiceName``) and its highest committed USN."""

    def op(conn: Any) -> list[_Entry]:
        return ad._search(conn, "", "(objectClass=*)", ["dsServiceName", "highestCommittedUSN"], scope="BASE")

    found = ad._run(op)
    if not found:
        raise LookupError("The directory's rootDSE could not be read.")
    return found[0].text("dsServiceName") or "", found[0].number("highestCommittedUSN") or 0


def changed_since(ad: ActiveDirectory, base: str, usn: int) -> list[Seen]:
    """Users, groups and OUs under ``base`` changed after ``usn`` (all of them for 0), with the
    OUs' access-control lists (DACL, hashed) where the service account may read them."""
    since = f"(uSNChanged>={usn + 1})" if usn else ""
    flt = f"(&{FOLLOWED}{since})"
    entries = ad._run(lambda conn: ad._search(conn, base, flt, ATTRIBUTES, what="Following changes"))
    acls: dict[str, str] = {}
    if any(_kind(e) == "ou" for e in entries):
        from ldap3.protocol.microsoft import security_descriptor_control

        try:
            ous = ad._run(
                lambda conn: ad._search(
                    conn,
                    base,
                    f"(&(objectClass=organizationalUnit){since})",
                    ["objectGUID", "nTSecurityDescriptor"],
                    controls=security_descriptor_control(sdflags=SD_DACL),
                    what="Reading OU delegation",
                )
            )
        except Exception:  # noqa: BLE001 — delegation is followed where readable only
            log.info("OU security descriptors are not readable; delegation changes are not followed")
            ous = []
        for ou in ous:
            raw = ou.raw("nTSecurityDescriptor")
            if raw:
                acls[ou.guid()] = hashlib.sha256(raw).hexdigest()
    out: list[Seen] = []
    for entry in entries:
        kind = _kind(entry)
        if kind is None:
            continue
        guid = entry.guid()
        state = _state(entry, kind)
        if kind == "ou" and guid in acls:
            state["acl"] = acls[guid]
        out.append(
            Seen(
                guid=guid,
                dn=entry.dn,
                kind=kind,
                usn=entry.number("uSNChanged") or 0,
                changed_at=_generalized(entry.text("whenChanged")),
                state=state,
            )
        )
    return out
