""" "Waiting for me": one inbox for everything a person has to decide — access requests to
approve, access review items, PIM approvals. Each feature registers a source that answers, for
one person, what waits for them; the page that shows the inbox asks every source. The core
names no feature (the same registry style as :mod:`iam.pages`' navigation)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.inbox")


@dataclass(frozen=True, slots=True)
class Waiting:
    """One thing (or one bundle of things) waiting for the person."""

    kind: Any
    """What it is, translated (``Access request``, ``Access review``, ``PIM approval``)."""
    title: str
    href: str
    due_at: dt.datetime | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class Me:
    """Who asks: their account id and every username they act through."""

    sub: str
    username: str


Source = Callable[["Services", Session, Me], Sequence[Waiting]]

_sources: dict[str, Source] = {}


def register(name: str, source: Source) -> None:
    """A feature adds what waits for a person in it (idempotent by name)."""
    _sources[name] = source


def waiting(services: Services, session: Session, me: Me) -> list[Waiting]:
    """Everything waiting for ``me``, soonest deadline first. A failing source is left out
    (and logged) rather than hiding the rest."""
    out: list[Waiting] = []
    for name in sorted(_sources):
        try:
            out.extend(_sources[name](services, session, me))
        except Exception:  # noqa: BLE001 — one broken source must not empty the inbox
            log.warning("inbox source %s failed; left out", name, exc_info=True)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(out, key=lambda w: (w.due_at or far, str(w.kind)))
