"""The core's registry of "waiting for me" sources: every source is asked, the nearest deadline
comes first, and a failing source is left out instead of emptying the inbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from iam import inbox


def test_sources_are_merged_by_deadline_and_a_broken_one_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox, "_sources", {})
    at = dt.datetime(2027, 1, 5, tzinfo=dt.UTC)

    def later(services: Any, session: Any, me: inbox.Me) -> list[inbox.Waiting]:
        return [inbox.Waiting("B", f"for {me.username}", "/b", due_at=at + dt.timedelta(days=2))]

    def sooner(services: Any, session: Any, me: inbox.Me) -> list[inbox.Waiting]:
        return [inbox.Waiting("A", "no deadline", "/a"), inbox.Waiting("A", "soon", "/a1", due_at=at)]

    def broken(services: Any, session: Any, me: inbox.Me) -> list[inbox.Waiting]:
        raise RuntimeError("down")

    inbox.register("later", later)
    inbox.register("sooner", sooner)
    inbox.register("broken", broken)
    got = inbox.waiting(None, None, inbox.Me(sub="s", username="mara"))  # type: ignore[arg-type]
    assert [w.title for w in got] == ["soon", "for mara", "no deadline"]
