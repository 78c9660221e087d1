"""The "my access" page's data: what one person holds and why, assembled from every feature
without the core naming any of them (issue 13).

Two registries, in the style of :mod:`iam.entitlements` and :mod:`iam.persons`:

- **group origins** — a feature that gives directory groups says, for one account, which of
  its groups it gave and why (provisioning: birthright of the position, kept after an HR move;
  PIM: a permanent assignment). A group nobody claims was found in the directory.
- **sections** — a feature adds a block of rows to the page (PIM: eligibilities, elevations,
  approvals waiting for the person; reviews: decisions waiting for the person; sso: devices and
  sessions)::

      from iam import access

      @access.section("pim", order=30)
      def _pim(services, session, sub):
          return access.Section(title=_l("Privileged roles"), columns=[...], rows=[...])

A failing contributor hides its part (logged), never the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam.directory import errors as dir_errors
from iam.entitlements import Origin

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.access")


@dataclass(frozen=True)
class GroupOrigin:
    origin: str
    """An :class:`iam.entitlements.Origin` value."""
    reference: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    direct: bool
    origin: str
    reference: str | None = None


@dataclass
class Section:
    """One block of the page: a title, column headings and rows of plain values."""

    title: Any
    columns: Sequence[Any]
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    empty: Any = ""
    """What the block says when there are no rows."""
    key: str = ""


OriginProvider = Callable[["Services", Session, str, Sequence[str]], Mapping[str, GroupOrigin]]
SectionProvider = Callable[["Services", Session, str], "Section | None"]

_origins: dict[str, OriginProvider] = {}
_sections: dict[str, tuple[int, SectionProvider]] = {}


def origin(name: str) -> Callable[[OriginProvider], OriginProvider]:
    """Register ``fn(services, session, sub, groups) -> {casefolded group: GroupOrigin}``."""

    def wrap(fn: OriginProvider) -> OriginProvider:
        _origins[name] = fn
        return fn

    return wrap


def section(name: str, *, order: int = 100) -> Callable[[SectionProvider], SectionProvider]:
    """Register ``fn(services, session, sub) -> Section | None`` (None: nothing to show)."""

    def wrap(fn: SectionProvider) -> SectionProvider:
        _sections[name] = (order, fn)
        return fn

    return wrap


def groups(services: Services, session: Session, sub: str) -> list[Group]:
    """The account's groups (direct and nested) with where each came from. Raises
    ``DirectoryError`` when the directory cannot be read."""
    direct = services.directory.user_groups(sub, nested=False)
    every = services.directory.user_groups(sub)
    names = list(dict.fromkeys([*direct, *every]))
    found: dict[str, GroupOrigin] = {}
    for name in sorted(_origins):
        try:
            for group, why in _origins[name](services, session, sub, names).items():
                found.setdefault(group.casefold(), why)
        except dir_errors.DirectoryError:
            raise
        except Exception:  # noqa: BLE001 — one feature's failure must not hide the page
            log.warning("group origins from %s failed", name, exc_info=True)
    direct_set = {g.casefold() for g in direct}
    out = []
    for name in names:
        why = found.get(name.casefold(), GroupOrigin(Origin.UNKNOWN))
        out.append(Group(name, name.casefold() in direct_set, why.origin, why.reference))
    return sorted(out, key=lambda g: (not g.direct, g.name.casefold()))


def sections(services: Services, session: Session, sub: str) -> list[Section]:
    out = []
    for name, (_order, fn) in sorted(_sections.items(), key=lambda kv: (kv[1][0], kv[0])):
        try:
            part = fn(services, session, sub)
        except Exception:  # noqa: BLE001 — one feature's failure must not hide the page
            log.warning("access section %s failed", name, exc_info=True)
            continue
        if part is not None:
            part.key = part.key or name
            out.append(part)
    return out
