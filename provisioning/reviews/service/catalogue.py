"""The entitlement catalogue: every reviewable right of every person in a campaign's scope,
across all their accounts, with where it came from and what helps decide on it.

The directory is read once per campaign (``Directory.membership_graph``: two paged searches);
every registered entitlement source answers for the whole population in one pass. Rows are
produced person by person (a generator) so a campaign over 50,000 people never holds a million
items in memory at once.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import clock, entitlements
from iam.directory import DirectoryUser, MembershipGraph
from iam.entitlements import Account, Entitlement, Origin
from iam.errors import ConfigError
from iam.models.identity import Identity
from provisioning.models import GroupRemoval, HrPerson, PersonStatus
from provisioning.models import ReviewItem as MoverReviewItem
from provisioning.reviews.definitions import Definition

if TYPE_CHECKING:
    from iam.services import Services

#: Built-in AD accounts that are nobody's access to review.
BUILTIN = {"krbtgt", "guest", "defaultaccount", "wdagutilityaccount"}


@dataclass(frozen=True)
class SodRule:
    name: str
    description: str
    resources: frozenset[str]


def load_sod(path: Path) -> list[SodRule]:
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid separation-of-duties file {path}: {exc}.") from None
    rules = []
    for i, rule in enumerate(data.get("rule", [])):
        resources = rule.get("resources")
        if not isinstance(rule.get("name"), str) or not isinstance(resources, list) or len(resources) < 2:
            raise ConfigError(
                f"Invalid separation-of-duties file {path}: rule {i + 1} needs a name and 2+ resources."
            )
        rules.append(
            SodRule(
                rule["name"],
                str(rule.get("description", "")),
                frozenset(str(r).casefold() for r in resources),
            )
        )
    return rules


@dataclass
class Person:
    """One person: their ordinary account and, when HR knows them, their HR record."""

    key: str
    user: DirectoryUser
    accounts: list[Account] = field(default_factory=list)
    hr: HrPerson | None = None
    last_sign_in: dt.datetime | None = None
    """Through this provider (any of the person's accounts)."""
    last_logon: str | None = None
    """AD's ``lastLogonTimestamp`` (Windows sign-ins too; replicated, up to ~14 days behind)."""

    def last_seen(self) -> dt.datetime | None:
        ad = dt.datetime.fromisoformat(self.last_logon) if self.last_logon else None
        known = [t for t in (self.last_sign_in, ad) if t is not None]
        return max(known) if known else None

    @property
    def department(self) -> str | None:
        return self.hr.department if self.hr else None

    @property
    def title(self) -> str | None:
        return self.hr.title if self.hr else None

    @property
    def left(self) -> bool:
        return (self.hr is not None and self.hr.status == PersonStatus.LEFT) or not self.user.enabled


@dataclass
class Row:
    """One catalogue entry: a right of one of a person's accounts."""

    person: Person
    account: Account
    entitlement: Entitlement
    origin: str
    origin_ref: str | None
    granted_at: dt.datetime | None
    granted_by: str | None
    justification: str | None
    helpers: dict[str, Any]
    recommendation: str
    reason: str


@dataclass
class Catalogue:
    persons: dict[str, Person]
    """By person key (ordinary account id)."""
    usernames: dict[str, str]
    """Case-folded username of any account → person key (who someone is, whatever account)."""
    graph: MembershipGraph
    rows: list[Row] = field(default_factory=list)


class Builder:
    """Reads the population and the rights once; ``rows()`` then yields the catalogue."""

    def __init__(
        self, services: Services, session: Session, definition: Definition, *, person: str | None = None
    ) -> None:
        self.services = services
        self.session = session
        self.definition = definition
        scope = definition.scope
        self.graph = services.directory.membership_graph(base_dn=scope.ou or None)
        links = entitlements.linked_accounts(services, session)
        hr_by_sub: dict[str, HrPerson] = {}
        for p in session.scalars(select(HrPerson)):
            if p.sub:
                hr_by_sub[p.sub] = p
                for other in p.linked_accounts or []:
                    links.setdefault(other, (p.sub, "linked"))
        users = {u.id: u for u, _ in self.graph.users}
        last_login = dict(
            session.execute(
                select(Identity.sub, Identity.last_login_at).where(Identity.last_login_at.is_not(None))
            ).all()
        )
        self.persons: dict[str, Person] = {}
        self.usernames: dict[str, str] = {}
        for user, _ in self.graph.users:
            if user.username.casefold() in BUILTIN:
                continue
            key, kind = links.get(user.id, (user.id, "ordinary"))
            if key not in users:  # the person's own account is outside the scope read
                key, kind = user.id, "ordinary"
            owner = self.persons.get(key)
            if owner is None:
                owner = self.persons[key] = Person(key=key, user=users[key], hr=hr_by_sub.get(key))
            owner.accounts.append(
                Account(id=user.id, username=user.username, person=key, kind=kind, dn=user.dn)
            )
            seen = last_login.get(user.id)
            if seen and (owner.last_sign_in is None or seen > owner.last_sign_in):
                owner.last_sign_in = seen
            ad_seen = user.extra.get("last_logon")
            if ad_seen and (owner.last_logon is None or ad_seen > owner.last_logon):
                owner.last_logon = ad_seen
            self.usernames[user.username.casefold()] = key
        self.persons = {k: v for k, v in self.persons.items() if self._in_scope(v)}
        if person is not None:
            self.persons = {k: v for k, v in self.persons.items() if k == person}
        self.kept_after_move = {
            (r.sub, r.group.casefold()): r.event_id
            for r in session.scalars(select(MoverReviewItem).where(MoverReviewItem.decision.is_(None)))
        }
        self.leaving = {
            (r.sub, r.group.casefold())
            for r in session.scalars(
                select(GroupRemoval).where(
                    GroupRemoval.removed_at.is_(None), GroupRemoval.cancelled_at.is_(None)
                )
            )
        }
        """Memberships already on their way out (old post after a move, leaver): not reviewed."""
        self.sod = load_sod(services.settings.reviews.sod_file)
        self.known = entitlements.known_origins(services, session)
        """Rights other features gave (e.g. "granted by access request 12"), by (account, group)."""
        self._position_groups: dict[str, frozenset[str]] = {}

    def _in_scope(self, person: Person) -> bool:
        scope = self.definition.scope
        if scope.kind == "department":
            wanted = {d.casefold() for d in scope.departments}
            return person.department is not None and person.department.casefold() in wanted
        return True

    def _entitlements(self) -> Iterator[tuple[Person, Account, Entitlement]]:
        accounts = [a for p in self.persons.values() for a in p.accounts]
        by_id = {a.id: a for a in accounts}
        kinds = set(self.definition.entitlements)
        scope = self.definition.scope
        groups = {g.casefold() for g in scope.groups}
        for source in entitlements.sources():
            for ent in source.entitlements(self.services, self.session, accounts, self.graph):
                account = by_id.get(ent.account_id)
                if account is None or ent.kind not in kinds:
                    continue
                if ent.via and ent.kind == "group" and not self.definition.nested:
                    continue
                if scope.kind == "privileged" and not ent.privileged:
                    continue
                if scope.kind == "groups" and ent.resource.casefold() not in groups:
                    continue
                yield self.persons[account.person], account, ent

    def _origin(
        self, person: Person, ent: Entitlement, first: str
    ) -> tuple[str, str | None, dt.datetime | None, str | None]:
        """(origin, reference, granted at, granted by) — what the source said, or what HR knows.
        ``first``: the case-folded group the membership comes through (the group itself if direct)."""
        if ent.origin != Origin.UNKNOWN or ent.kind != "group":
            return ent.origin, ent.origin_ref, ent.granted_at, ent.granted_by
        known = self.known.get((ent.account_id, first)) if self.known else None
        if known is not None:
            return known.origin, known.origin_ref, known.granted_at, known.granted_by
        hr = person.hr
        if hr is not None and first in self._birthright(person.key, hr):
            ref = f"position {hr.department} / {hr.title}" + (f" (through {ent.via[0]})" if ent.via else "")
            return Origin.BIRTHRIGHT, ref, hr.granted_at, "hr"
        if hr is not None and ent.direct and self.kept_after_move:
            event = self.kept_after_move.get((ent.account_id, first))
            if event:
                return Origin.HR_EVENT, f"HR event {event}", None, "hr"
        return Origin.UNKNOWN, None, None, None

    def _birthright(self, key: str, hr: HrPerson) -> frozenset[str]:
        """Case-folded groups the person's position gives (read once per person)."""
        groups = self._position_groups.get(key)
        if groups is None:
            groups = self._position_groups[key] = frozenset(g.casefold() for g in hr.groups or [])
        return groups

    def rows(self) -> Iterator[Row]:
        """The catalogue, person by person (two passes over the sources: counts, then rows)."""
        holders: Counter[tuple[str, str]] = Counter()
        department_size: Counter[str] = Counter(p.department or "" for p in self.persons.values())
        held: dict[str, set[str]] = {}
        sod_resources = set().union(*(r.resources for r in self.sod)) if self.sod else set()
        for person, _account, ent in self._entitlements():
            resource = ent.resource.casefold()
            holders[(person.department or "", resource)] += 1
            if resource in sod_resources:
                held.setdefault(person.key, set()).add(resource)
        conflicts = {
            key: [r for r in self.sod if r.resources <= resources] for key, resources in held.items()
        }
        inactive = dt.timedelta(days=self.services.settings.reviews.inactive_days)
        now = clock.now()
        position = self.definition.birthright == "position"
        current: Person | None = None
        dept, signed_in, dept_size, own_conflicts = "", None, 0, []
        for person, account, ent in self._entitlements():
            if person is not current:  # rows come person by person: their facts once
                current = person
                dept = person.department or ""
                signed_in = person.last_sign_in.isoformat() if person.last_sign_in else None
                dept_size = department_size[dept]
                own_conflicts = conflicts.get(person.key, [])
            resource = ent.resource.casefold()
            group = ent.kind == "group"
            first = ent.via[0].casefold() if group and ent.via else resource
            if group and self.leaving and (ent.account_id, first) in self.leaving:
                continue
            origin, ref, granted_at, granted_by = self._origin(person, ent, first)
            if position and origin == Origin.BIRTHRIGHT:
                continue  # certified by the position (R-JML-2), not by a person
            peers = holders[(dept, resource)] - 1
            mine = [r for r in own_conflicts if resource in r.resources] if own_conflicts else []
            helpers: dict[str, Any] = {
                "last_sign_in": signed_in,
                "ad_last_logon": person.last_logon,
                "peers": peers,
                "department_size": dept_size,
                "conflicts": [r.name for r in mine] if mine else [],
                "account_enabled": person.user.enabled,
                **ent.extra,
            }
            if ent.via:
                helpers["path"] = [*ent.via, ent.resource]
            recommendation, reason = recommend(
                person=person,
                origin=origin,
                peers=peers,
                conflicts=[r.description or r.name for r in mine] if mine else [],
                inactive=inactive,
                now=now,
            )
            yield Row(
                person,
                account,
                ent,
                origin,
                ref,
                granted_at,
                granted_by,
                ent.justification or _justification(self.known, ent.account_id, first),
                helpers,
                recommendation,
                reason,
            )


def _justification(
    known: dict[tuple[str, str], entitlements.KnownOrigin], account: str, group: str
) -> str | None:
    found = known.get((account, group)) if known else None
    return found.justification if found else None


def recommend(
    *, person: Person, origin: str, peers: int, conflicts: list[str], inactive: dt.timedelta, now: dt.datetime
) -> tuple[str, str]:
    """Keep or revoke, with the reason in words a reviewer can check (R-REV-2)."""
    if person.left:
        return "revoke", "The person has left or the account is disabled."
    if conflicts:
        return "revoke", "Separation of duties: " + "; ".join(conflicts)
    seen = person.last_seen()
    if seen is None or now - seen > inactive:
        return "revoke", f"No sign-in (provider or Windows) in the last {inactive.days} days."
    if origin == Origin.UNKNOWN and peers == 0:
        return "revoke", "Origin unknown and nobody else in the same department holds it."
    if origin == Origin.BIRTHRIGHT:
        return "keep", "Given by the person's position."
    if origin == Origin.PIM_DECISION:
        return "keep", "Decided in PIM and used recently."
    if origin == Origin.ACCESS_REQUEST:
        return "keep", "Granted by a decided access request and used recently."
    return "keep", f"Used recently; {peers} other(s) in the same department hold it."
