"""Who reviews: the stage's reviewer kind resolved for one item, never the person themself
(nor their admin or linked accounts) — then the fallback reviewer decides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from iam import entitlements
from iam.directory import NoSuchEntry
from iam.errors import ConfigError
from provisioning.models import HrPerson, PersonStatus
from provisioning.reviews.definitions import Definition, Stage

if TYPE_CHECKING:
    from iam.services import Services


def officers(services: Services) -> list[str]:
    """Security officers by name (reviews and PIM settings), then members of the officers' group."""
    s = services.settings
    names = [*s.reviews.security_officers, *s.pim.security_officers]
    group = s.reviews.security_officer_group
    if group:
        try:
            names += [u.username for u in services.directory.group_members(group) if u.enabled]
        except NoSuchEntry:
            pass  # no such group: officers are named in the settings only
    return list(dict.fromkeys(names))


def is_officer(services: Services, username: str) -> bool:
    return username.casefold() in {o.casefold() for o in officers(services)}


class Reviewers:
    """Resolves reviewers for a campaign; caches directory look-ups of reviewer accounts."""

    def __init__(
        self,
        services: Services,
        session: Session,
        definition: Definition,
        usernames: dict[str, str] | None = None,
    ) -> None:
        self.services = services
        self.session = session
        self.definition = definition
        self.officers = officers(services)
        self.fallback = definition.fallback or services.settings.reviews.fallback_reviewers or self.officers
        self._persons = dict(usernames or {})
        self._links = entitlements.linked_accounts(services, session)
        self._managers: dict[str, HrPerson] = {}

    def person_of(self, username: str) -> str | None:
        """The person key (ordinary account id) behind any account name."""
        key = username.casefold()
        if key not in self._persons:
            user = self.services.directory.find_user(username=username)
            self._persons[key] = self._links.get(user.id, (user.id, ""))[0] if user else ""
        return self._persons[key] or None

    def manager_of(self, employee_number: str | None) -> str | None:
        if not employee_number:
            return None
        person = self.session.get(HrPerson, employee_number)
        if person is None or not person.manager:
            return None
        manager = self._managers.get(person.manager)
        if manager is None:
            manager = self.session.get(HrPerson, person.manager)
            if manager is None:
                return None
            self._managers[person.manager] = manager
        if manager.status != PersonStatus.ACTIVE or not manager.username:
            return None  # the manager has left (or not started): the fallback decides
        return manager.username

    def resolve(
        self, stage: Stage, *, person: str, username: str, employee_number: str | None, owner: str | None
    ) -> str:
        if stage.reviewer == "self":
            return username
        candidates: list[str] = []
        if stage.reviewer == "manager":
            manager = self.manager_of(employee_number)
            candidates = [manager] if manager else []
        elif stage.reviewer == "owner":
            candidates = [owner] if owner else []
        elif stage.reviewer == "security_officer":
            candidates = list(self.officers)
        elif stage.reviewer == "named":
            candidates = list(stage.users)
        for candidate in [*candidates, *self.fallback]:
            if self.person_of(candidate) != person:
                return candidate
        raise ConfigError(
            f"Review definition {self.definition.name!r}: nobody can review {username}'s access "
            "(no manager, owner or security officer other than the person): set "
            "reviews.fallback_reviewers or the definition's fallback."
        )

    def fallback_for(self, person: str) -> str:
        for candidate in self.fallback:
            if self.person_of(candidate) != person:
                return candidate
        raise ConfigError(f"Review definition {self.definition.name!r}: no fallback reviewer is configured.")
