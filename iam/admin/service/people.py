"""People in the console: search across the directory, one person with all their accounts,
and the help-desk actions the core owns (unlock, password reset). Sessions, second factors,
cards, PIM and HR reach the page through :mod:`iam.admin.hooks`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import audit, entitlements, lockout, persons, privileged
from iam.admin.hooks import AccountView, PersonRef, group_origins
from iam.directory import MembershipGraph
from iam.directory.base import DirectoryUser
from iam.directory.errors import DirectoryError
from iam.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from iam.services import Services

MIN_QUERY = 2
MAX_QUERY = 128


def search(services: Services, query: str, *, limit: int) -> list[DirectoryUser]:
    """People whose username, UPN, name, mail or employee number matches ``query`` (at most
    ``limit``, by username). Raises :class:`InvalidInput` for a query too short or too long."""
    text = query.strip()
    if len(text) < MIN_QUERY or len(text) > MAX_QUERY:
        raise ValidationFailed(
            f"Type {MIN_QUERY} to {MAX_QUERY} characters of a name, username, e-mail or number."
        )
    words = text.split()
    # the directory matches one attribute at a time: ask for the longest word, keep those
    # matching every word ("Đurđa Šćepanović" = given name + family name)
    found = services.directory.search_users(query=max(words, key=len), page_size=limit + 1)
    try:
        matching = (u for u in found if matches(u, words))
        return list(itertools.islice(matching, limit + 1))
    finally:
        close = getattr(found, "close", None)
        if close is not None:
            close()  # the AD pager hands its connection back


def matches(user: DirectoryUser, words: list[str]) -> bool:
    """Whether every word is in one of the user's names, mail or employee number."""
    fields = [
        user.username,
        user.upn,
        user.display_name,
        user.given_name,
        user.family_name,
        user.email,
        user.employee_number,
    ]
    hay = " ".join(f for f in fields if f).casefold()
    return all(w.casefold() in hay for w in words)


def person(services: Services, session: Session, user_id: str) -> PersonRef:
    """The person behind account ``user_id`` with every account linked to them (their ordinary
    account first: an ``adm-…`` account leads to its owner)."""
    directory = services.directory
    user = directory.get_user(user_id)
    if user is None:
        raise NotFound("There is no such account in the directory.")
    links = entitlements.linked_accounts(services, session)
    main_id = links[user.id][0] if user.id in links else user.id
    main = user if main_id == user.id else directory.get_user(main_id) or user
    subs = persons.accounts_of(session, main.id) | {user.id}
    accounts = [AccountView(main, "ordinary")]
    for sub in sorted(subs - {main.id}):
        other = user if sub == user.id else directory.get_user(sub)
        if other is not None:
            accounts.append(AccountView(other, links[sub][1] if sub in links else "linked"))
    return PersonRef(main=main, accounts=tuple(accounts))


@dataclass(frozen=True)
class AccountStatus:
    account: AccountView
    provider_lock: lockout.LockState
    privileged: str | None
    """Why the account is privileged (None: ordinary; "unknown" when the directory cannot say)."""

    @property
    def user(self) -> DirectoryUser:
        return self.account.user

    @property
    def locked(self) -> bool:
        return self.user.locked or self.provider_lock.locked

    @property
    def lock_reasons(self) -> list[str]:
        """Machine words: ``directory`` (AD's lockout) and/or ``provider`` (too many failed
        sign-ins here, by ``account`` or ``address``)."""
        out = ["directory"] if self.user.locked else []
        if self.provider_lock.locked:
            out.append(f"provider_{self.provider_lock.by or 'account'}")
        return out


def statuses(services: Services, session: Session, person_: PersonRef) -> list[AccountStatus]:
    out = []
    for account in person_.accounts:
        user = account.user
        state = lockout.state(session, account=lockout.Account(user.username, user.id), ip=None)
        try:
            why = privileged.why_privileged(services, user)
        except DirectoryError:
            why = "unknown"  # deny: shown as privileged, actions refused
        out.append(AccountStatus(account, state, why))
    return out


@dataclass(frozen=True)
class GroupRow:
    account: str
    group: str
    direct: bool
    privileged: bool
    origin: str
    """``directory`` (found there, origin unknown) or what a feature said (birthright …)."""


def groups(services: Services, session: Session, person_: PersonRef) -> list[GroupRow]:
    """Each account's groups (nested membership included) with where they came from."""
    privileged_names = entitlements.privileged_groups(services, session)
    origins = group_origins(services, session, person_)
    rows: list[GroupRow] = []
    for account in person_.accounts:
        user = account.user
        direct = {g.casefold() for g in services.directory.user_groups(user.id, nested=False)}
        for name in services.directory.user_groups(user.id, nested=True):
            key = name.casefold()
            rows.append(
                GroupRow(
                    account=user.username,
                    group=name,
                    direct=key in direct,
                    privileged=key in privileged_names,
                    origin=origins.get((user.id, key), "directory"),
                )
            )
    return rows


def other_rights(services: Services, session: Session, person_: PersonRef) -> list[entitlements.Entitlement]:
    """Rights from the registered entitlement sources other than directory groups (PIM
    eligibilities, shared accounts …)."""
    accounts = [
        entitlements.Account(id=a.user.id, username=a.user.username, person=person_.main.id, kind=a.kind)
        for a in person_.accounts
    ]
    empty = MembershipGraph(users=[], groups={})
    out: list[entitlements.Entitlement] = []
    for source in entitlements.sources():
        if source.name == "directory":
            continue
        out.extend(source.entitlements(services, session, accounts, empty))
    return out


def unlock(
    services: Services, session: Session, user_id: str, *, actor: str, reason: str, ip: str | None
) -> bool:
    """Lift the provider's sign-in lock and the directory's lockout of ``user_id``; returns
    whether either was locked. Audited with the administrator as actor and the reason."""
    user = services.directory.get_user(user_id)
    if user is None:
        raise NotFound("There is no such account in the directory.")
    # the directory first (its own transaction; on SQLite before this one takes the write lock)
    services.directory.unlock(user.id)  # DirectoryError: nothing recorded as done
    was_provider = lockout.unlock(session, account=lockout.Account(user.username, user.id), actor=actor)
    audit.record(
        session,
        "user.unlocked",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=user.id,
        ip=ip,
        details={
            "username": user.username,
            "reason": reason,
            "directory_was_locked": user.locked,
            "provider_was_locked": was_provider,
        },
    )
    return user.locked or was_provider


def reset_password(services: Services, user_id: str, *, actor: str, reason: str) -> tuple[str, str, bool]:
    """A help-desk reset of an ordinary account: a temporary password (shown once), changed at
    the next sign-in. A privileged account is refused (:class:`iam.errors.PrivilegedAccount`,
    recorded as a critical event). Returns (username, temporary password, must change)."""
    from iam.users import reset_password as reset

    user = services.directory.get_user(user_id)
    if user is None:
        raise NotFound("There is no such account in the directory.")
    temporary, must_change = reset(services, username=user.username, actor=actor, reason=reason)
    return user.username, temporary, must_change


def summary(user: DirectoryUser) -> dict[str, Any]:
    """One row of the search results."""
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "employee_number": user.employee_number,
        "enabled": user.enabled,
        "locked": user.locked,
    }
