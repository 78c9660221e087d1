"""The periodic pass shared by access requests and access reviews (``provisioning.ticks``):
one transaction, one log line when the directory is down or the configuration is wrong, and
what was done logged only when anything was."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from iam.directory.errors import DirectoryUnavailable
from iam.errors import ConfigError
from provisioning.ticks import run_tick

log = logging.getLogger("tests.ticks")


class _Services:
    def __init__(self) -> None:
        self.transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[str]:
        self.transactions += 1
        yield "session"


def _run(step: Any) -> _Services:
    services = _Services()
    run_tick(services, step, what="access things", log=log)  # type: ignore[arg-type]
    return services


def test_what_was_done_is_logged_only_when_anything_was(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tests.ticks")
    seen: list[Any] = []
    services = _run(lambda svc, session: seen.append(session) or {"reminded": 0, "escalated": 2})
    assert seen == ["session"] and services.transactions == 1
    assert caplog.messages == ["access things: {'reminded': 0, 'escalated': 2}"]
    caplog.clear()
    _run(lambda svc, session: {"reminded": 0})
    _run(lambda svc, session: {})
    assert caplog.messages == []


@pytest.mark.parametrize(
    ("exc", "level", "message"),
    [
        (
            DirectoryUnavailable("AD down"),
            logging.WARNING,
            "the directory is unavailable; next pass retries (AD down)",
        ),
        (ConfigError("bad calendar"), logging.ERROR, "bad calendar"),
    ],
)
def test_a_failed_pass_is_one_line(
    caplog: pytest.LogCaptureFixture, exc: Exception, level: int, message: str
) -> None:
    def step(svc: Any, session: Any) -> dict[str, int]:
        raise exc

    _run(step)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(level, f"access things: {message}")]
    assert all(r.exc_info is None for r in caplog.records)
