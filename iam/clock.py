"""The one clock of the application. Everything that needs "now" calls :func:`now`.

Time is always an aware UTC datetime. Tests move the clock with :func:`set_offset` or
:func:`freeze` instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import threading

UTC = dt.UTC

_lock = threading.Lock()
_offset = dt.timedelta(0)
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    """Current time, aware, in UTC (moved by tests)."""
    if _frozen is not None:
        return _frozen
    return dt.datetime.now(UTC) + _offset


def timestamp() -> int:
    """Current time as whole seconds since the epoch."""
    return int(now().timestamp())


def advance(delta: dt.timedelta) -> None:
    """Move the clock forward (tests)."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset = _offset + delta


def freeze(at: dt.datetime | None = None) -> None:
    """Stop the clock at ``at`` (default: now) (tests)."""
    global _frozen
    with _lock:
        _frozen = (at or now()).astimezone(UTC)


def reset() -> None:
    """Back to real time (tests)."""
    global _offset, _frozen
    with _lock:
        _offset = dt.timedelta(0)
        _frozen = None
