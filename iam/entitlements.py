"""Entitlement sources: every feature lists the rights it owns and knows how to take one away.

Access reviews (and later access requests) read rights through this registry, so they never
import the feature that owns a right. The core registers the directory's group memberships;
PIM registers eligibilities and permanent assignments; another feature adds its own source the
same way (``register_source`` at import of its ``jobs`` module, which every process loads).

A source answers for a whole population at once (``entitlements(services, session, accounts)``)
so a campaign over 50,000 people reads the directory in one paged pass, not once per person.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

from iam import audit
from iam.directory import MembershipGraph, NoSuchEntry

if TYPE_CHECKING:
    from iam.services import Services


class Origin:
    """Where a right came from (vocabulary shown to reviewers and auditors)."""

    BIRTHRIGHT = "birthright"
    """Given by the position (birthright rules)."""
    HR_EVENT = "hr_event"
    """Kept for review after a move (or carried over by a rehire)."""
    PIM_DECISION = "pim_decision"
    """Eligibility or permanent assignment decided in PIM."""
    ACCESS_REQUEST = "access_request"
    """Granted by a decided access request (``origin_ref``: the request and decision number)."""
    UNKNOWN = "unknown"
    """Found in the directory, origin unknown."""


@dataclass(frozen=True, slots=True)
class Account:
    """One directory account of a person (ordinary, separate admin account, linked account)."""

    id: str
    """Directory id (the OIDC ``sub``)."""
    username: str
    person: str
    """The person's key: their ordinary account's id (the same for all their accounts)."""
    kind: str = "ordinary"
    """``ordinary``, ``admin`` (a PIM admin account) or ``linked`` (from HR)."""
    dn: str = ""


@dataclass(frozen=True, slots=True)
class Entitlement:
    """One reviewable right held by one account."""

    source: str
    """Name of the registered source that owns it (and revokes it)."""
    kind: str
    """``group`` (directory membership), ``pim_eligibility``, ``pim_permanent``, ``shared_account``."""
    account_id: str
    resource: str
    """Group name, role name or shared account name."""
    via: tuple[str, ...] = ()
    """For a nested membership, the groups it goes through (direct group first)."""
    origin: str = Origin.UNKNOWN
    origin_ref: str | None = None
    """Rule name, HR event id or PIM decision number."""
    granted_at: dt.datetime | None = None
    granted_by: str | None = None
    justification: str | None = None
    owner: str | None = None
    """Owner of the resource (AD ``managedBy`` or a mapping in ``policies/``)."""
    privileged: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def direct(self) -> bool:
        return not self.via

    @property
    def key(self) -> str:
        return f"{self.source}:{self.kind}:{self.account_id}:{self.resource.casefold()}"


class EntitlementSource(Protocol):
    name: str

    def entitlements(
        self, services: Services, session: Session, accounts: Sequence[Account], graph: MembershipGraph
    ) -> Iterable[Entitlement]:
        """Every right the ``accounts`` hold in this source, in the order of ``accounts`` (one
        pass for all, not one query per account). ``graph`` is the directory read once for the
        whole population."""

    def revoke(
        self,
        services: Services,
        session: Session,
        *,
        account_id: str,
        kind: str,
        resource: str,
        actor: str,
        reason: str,
        reference: str,
    ) -> None:
        """Take the right away now. Called from a durable job: raise ``DirectoryUnavailable`` to
        be retried later; idempotent (a right already gone is success); writes its audit event
        in ``session``'s transaction."""

    def holds(
        self, services: Services, session: Session, *, account_id: str, kind: str, resource: str
    ) -> bool:
        """Read back whether the right is still there (verification after remediation)."""


class AccountLinks(Protocol):
    def __call__(self, services: Services, session: Session) -> Iterable[tuple[str, str, str]]:
        """``(account_id, person_account_id, kind)`` for accounts that belong to a person's
        ordinary account (e.g. PIM admin accounts)."""


class PrivilegedResources(Protocol):
    def __call__(self, services: Services, session: Session) -> Iterable[str]:
        """Names of groups whose membership is privileged (e.g. the groups PIM roles grant)."""


@dataclass(frozen=True, slots=True)
class KnownOrigin:
    """Where a feature knows a right came from (e.g. "granted by access request 12")."""

    origin: str
    origin_ref: str
    granted_at: dt.datetime | None = None
    granted_by: str | None = None
    justification: str | None = None


class Origins(Protocol):
    def __call__(self, services: Services, session: Session) -> Mapping[tuple[str, str], KnownOrigin]:
        """``(account id, case-folded resource)`` → the origin of rights this feature gave
        (one query for all: a review reads it once per campaign)."""


_sources: dict[str, EntitlementSource] = {}
_links: dict[str, AccountLinks] = {}
_privileged: dict[str, PrivilegedResources] = {}
_origins: dict[str, Origins] = {}


def register_origins(name: str, origins: Origins) -> None:
    """A feature that gives rights (access requests) tells reviews where they came from."""
    _origins[name] = origins


def known_origins(services: Services, session: Session) -> dict[tuple[str, str], KnownOrigin]:
    out: dict[tuple[str, str], KnownOrigin] = {}
    for name in sorted(_origins):
        out.update(_origins[name](services, session))
    return out


def register_source(source: EntitlementSource) -> EntitlementSource:
    _sources[source.name] = source
    return source


def register_links(name: str, links: AccountLinks) -> None:
    _links[name] = links


def register_privileged(name: str, resources: PrivilegedResources) -> None:
    _privileged[name] = resources


def privileged_groups(services: Services, session: Session) -> set[str]:
    """Case-folded names of every privileged group: configured (default AD's protected groups)
    and contributed by features."""
    names = {g.casefold() for g in services.settings.reviews.privileged_groups}
    for name in sorted(_privileged):
        names |= {g.casefold() for g in _privileged[name](services, session)}
    return names


def sources() -> list[EntitlementSource]:
    return [_sources[name] for name in sorted(_sources)]


def source(name: str) -> EntitlementSource:
    try:
        return _sources[name]
    except KeyError:
        raise LookupError(f"No entitlement source named {name!r} is registered.") from None


def linked_accounts(services: Services, session: Session) -> dict[str, tuple[str, str]]:
    """account id → (person's ordinary account id, kind) from every registered link provider."""
    out: dict[str, tuple[str, str]] = {}
    for name in sorted(_links):
        for account_id, person, kind in _links[name](services, session):
            if account_id and person and account_id != person:
                out[account_id] = (person, kind)
    return out


class DirectoryGroups:
    """Group memberships in the directory (direct, and nested with their path). Revoking a
    nested membership removes the direct membership it goes through (``via[0]``)."""

    name = "directory"

    def entitlements(
        self, services: Services, session: Session, accounts: Sequence[Account], graph: MembershipGraph
    ) -> Iterable[Entitlement]:
        direct = {user.id: groups for user, groups in graph.users}
        privileged = privileged_groups(services, session)
        owners = {g.dn.casefold(): g.owner for g in graph.groups.values() if g.owner}
        names = {user.dn.casefold(): user.username for user, _ in graph.users if user.dn}
        configured = {k.casefold(): v for k, v in services.settings.reviews.owners.items()}
        for account in accounts:
            for node, via in graph.memberships(direct.get(account.id, ())):
                owner_dn = owners.get(node.dn.casefold())
                owner = names.get(owner_dn.casefold(), owner_dn) if owner_dn else None
                yield Entitlement(
                    source=self.name,
                    kind="group",
                    account_id=account.id,
                    resource=node.name,
                    via=via,
                    owner=owner or configured.get(node.name.casefold()),
                    privileged=node.name.casefold() in privileged,
                )

    def revoke(
        self,
        services: Services,
        session: Session,
        *,
        account_id: str,
        kind: str,
        resource: str,
        actor: str,
        reason: str,
        reference: str,
    ) -> None:
        try:
            services.directory.remove_member(resource, account_id)
        except NoSuchEntry:
            pass  # the group or the account is gone: so is the membership
        audit.record(
            session,
            "directory.member_removed",
            actor=actor,
            subject=account_id,
            details={"group": resource, "reason": reason, "reference": reference},
        )

    def holds(
        self, services: Services, session: Session, *, account_id: str, kind: str, resource: str
    ) -> bool:
        try:
            groups = services.directory.user_groups(account_id, nested=False)
        except NoSuchEntry:
            return False
        return resource.casefold() in {g.casefold() for g in groups}


register_source(DirectoryGroups())
