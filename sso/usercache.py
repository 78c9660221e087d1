"""What the directory said about a person, kept for a few seconds per process.

A refresh (and a code exchange) asks the directory whether the account may still have tokens
and, for the ID token, its name, e-mail and groups. Asking AD on every refresh costs a round
trip or two per token; this cache answers from the last reply for ``tokens.directory_cache_seconds``
(default 30 s). What it does **not** delay:

- a disable through the provider (``iam user disable``, an HR leaver, the help desk): the
  ``identities`` row says so and is read on every request, on every node, and the person's
  refresh tokens were already revoked in the same transaction;
- a disable in this process: :data:`iam.events.identity_disabled` drops the entry at once.

A change made in AD behind the provider's back (an account disabled or locked, a group
removed in ADUC) reaches tokens within ``directory_cache_seconds``: that is the documented bound.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from iam import clock, events

T = TypeVar("T")

#: Entries kept at most per process (people refreshing within one TTL); then the oldest half goes.
MAX_ENTRIES = 50_000


class DirectoryCache:
    """(kind, sub) → (fetched at, value), for ``ttl`` seconds; 0 turns it off."""

    def __init__(self, ttl: float) -> None:
        self.ttl = dt.timedelta(seconds=ttl)
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[dt.datetime, Any]] = {}
        events.identity_disabled.connect(self._on_disabled)  # weak: goes with the app

    def get(self, kind: str, sub: str, fetch: Callable[[], T]) -> T:
        if not self.ttl:
            return fetch()
        now = clock.now()
        key = (kind, sub)
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]  # type: ignore[no-any-return]
        value = fetch()
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                oldest = sorted(self._entries.items(), key=lambda kv: kv[1][0])[: MAX_ENTRIES // 2]
                for k, _ in oldest:
                    self._entries.pop(k, None)
            self._entries[key] = (now, value)
        return value

    def forget(self, sub: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[1] == sub]:
                self._entries.pop(key, None)

    def _on_disabled(self, sub: str, **_: Any) -> None:
        self.forget(sub)
