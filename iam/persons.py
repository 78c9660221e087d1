"""Which person stands behind an account (R-PIM-3: rules about *people*, not accounts).

One person may act through several accounts: their own, a separate admin account, further
accounts HR links to them, a shared administrator account whose password they were shown. Rules
such as "nobody approves their own request" and "two approvals by one person count once" must
compare persons. The core knows only the account itself; each feature that links accounts
registers a resolver (PIM its admin and shared accounts, provisioning the HR links), in the
style of :mod:`iam.jobs`' handlers, so the core imports none of them::

    from iam import persons

    @persons.resolver
    def _admin_accounts(session, sub):
        return {...}  # subs of accounts the same person acts through

Accounts are named by their ``sub`` (the directory's stable id). A resolver answers, for one
account, the other accounts *whoever uses it* may also act through: for a person's account their
admin account (and back), for a shared account everyone who holds it. :func:`accounts_of`
follows the answers (the admin account of a shared account's holder is reached too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sqlalchemy.orm import Session

__all__ = ["Resolver", "accounts_of", "count_persons", "resolver", "same_person"]

Resolver = Callable[[Session, str], Iterable[str]]

_resolvers: dict[str, Resolver] = {}

#: How far links are followed (account → holder → holder's admin account …).
MAX_DEPTH = 4


def resolver(fn: Resolver) -> Resolver:
    """Register a function ``(session, sub) -> subs of linked accounts`` (idempotent by name)."""
    _resolvers[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def accounts_of(session: Session, sub: str) -> frozenset[str]:
    """``sub`` and every account linked to it by a registered resolver (transitively, up to
    :data:`MAX_DEPTH` links)."""
    seen = {sub}
    frontier = {sub}
    for _ in range(MAX_DEPTH):
        found: set[str] = set()
        for account in frontier:
            for fn in _resolvers.values():
                found.update(s for s in fn(session, account) if s)
        frontier = found - seen
        if not frontier:
            break
        seen |= frontier
    return frozenset(seen)


def same_person(session: Session, a: str, b: str) -> bool:
    """Whether accounts ``a`` and ``b`` may be used by one person."""
    if a == b:
        return True
    return bool(accounts_of(session, a) & accounts_of(session, b))


def count_persons(session: Session, subs: Sequence[str]) -> int:
    """How many different persons acted through ``subs`` (accounts that may belong to one
    person count once: deny by default — a shared account counts as each of its holders)."""
    counted: list[frozenset[str]] = []
    for sub in subs:
        mine = accounts_of(session, sub)
        if not any(mine & other for other in counted):
            counted.append(mine)
    return len(counted)
