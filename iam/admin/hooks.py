"""What the feature packages add to a person's page in the console, without the core importing
them (in the style of :mod:`iam.persons`' resolvers).

A panel source answers, for one person (all their accounts), a :class:`Panel` — facts, a table
and the actions that may be taken on it — or None when it has nothing to say::

    from iam.admin import Role
    from iam.admin.hooks import Action, Panel, person_panel

    @person_panel("sso.sessions", order=40)
    def _sessions(services, session, person):
        rows = [...]
        return Panel(
            title=_l("Sessions"),
            columns=[_l("Account"), _l("Started"), _l("Address")],
            rows=[[r.username, r.created_at, r.ip] for r in rows],
            row_actions=[[Action(_l("End"), "sso_admin.end_session", {"sid": r.sid},
                                 roles=frozenset({Role.HELPDESK}))] for r in rows],
        )

An :class:`Action` is a POST to the feature's own admin view (which declares its roles with
:func:`iam.admin.require_admin` and checks them again); the page shows it only to those roles,
with a reason field when the audit log should say why. The view sends the browser back to
:func:`person_path` of the person.

Group origins: :func:`group_origin` sources say where a directory group membership came from
(the HR position's birthright, a PIM decision …) for the "Groups" panel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam.directory.base import DirectoryUser

if TYPE_CHECKING:
    from iam.admin import Role
    from iam.services import Services

__all__ = [
    "AccountView",
    "Action",
    "Panel",
    "PersonRef",
    "group_origin",
    "group_origins",
    "panels",
    "person_panel",
]


@dataclass(frozen=True)
class AccountView:
    """One account of the person: ``kind`` is ``ordinary``, ``admin`` (``adm-…``) or ``linked``."""

    user: DirectoryUser
    kind: str = "ordinary"


@dataclass(frozen=True)
class PersonRef:
    """The person a page is about: their main (ordinary) account and every linked one."""

    main: DirectoryUser
    accounts: tuple[AccountView, ...]

    @property
    def subs(self) -> list[str]:
        return [a.user.id for a in self.accounts]

    @property
    def usernames(self) -> list[str]:
        return [a.user.username for a in self.accounts]

    def username_of(self, sub: str) -> str:
        return next((a.user.username for a in self.accounts if a.user.id == sub), sub)


@dataclass(frozen=True)
class Action:
    """A button that POSTs (with CSRF and, when ``reason``, a required reason) to ``endpoint``."""

    label: Any
    endpoint: str
    values: Mapping[str, str]
    roles: frozenset[Role]
    reason: bool = True
    danger: bool = False


@dataclass(frozen=True)
class Panel:
    """One section of a person's page."""

    title: Any
    columns: Sequence[Any] = ()
    rows: Sequence[Sequence[Any]] = ()
    row_actions: Sequence[Sequence[Action]] = ()
    """Per row (same order as ``rows``): the actions on that row."""
    actions: Sequence[Action] = ()
    """Actions on the whole panel (e.g. "end all sessions")."""
    facts: Sequence[tuple[Any, Any]] = ()
    note: Any = None
    key: str = ""
    order: int = 100


PanelSource = Callable[["Services", Session, PersonRef], "Panel | None"]
OriginSource = Callable[["Services", Session, PersonRef], Mapping[tuple[str, str], str]]
"""``(account sub, case-folded group) → origin text`` for memberships the source explains."""


@dataclass
class _Registry:
    panels: dict[str, tuple[int, PanelSource]] = field(default_factory=dict)
    origins: dict[str, OriginSource] = field(default_factory=dict)


_registry = _Registry()


def person_panel(name: str, *, order: int = 100) -> Callable[[PanelSource], PanelSource]:
    """Register a panel source under ``name`` (idempotent by name; lower ``order`` first)."""

    def deco(fn: PanelSource) -> PanelSource:
        _registry.panels[name] = (order, fn)
        return fn

    return deco


def group_origin(name: str) -> Callable[[OriginSource], OriginSource]:
    """Register a source of group-membership origins under ``name``."""

    def deco(fn: OriginSource) -> OriginSource:
        _registry.origins[name] = fn
        return fn

    return deco


def panel_sources() -> list[tuple[str, PanelSource]]:
    items = sorted(_registry.panels.items(), key=lambda kv: (kv[1][0], kv[0]))
    return [(name, fn) for name, (_, fn) in items]


def panels(
    services: Services, session: Session, person: PersonRef
) -> Iterable[tuple[str, Panel | Exception]]:
    """Each registered panel for ``person`` (a failing source yields its exception: the page
    says that part could not be read, the rest is shown)."""
    for name, fn in panel_sources():
        try:
            panel = fn(services, session, person)
        except Exception as exc:  # noqa: BLE001 — one feature's failure never hides the page
            yield name, exc
            continue
        if panel is not None:
            yield name, panel


def group_origins(services: Services, session: Session, person: PersonRef) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for name in sorted(_registry.origins):
        try:
            out.update(_registry.origins[name](services, session, person))
        except Exception:  # noqa: BLE001, S112 — an origin that cannot be read stays "unknown"
            continue
    return out
