"""Lockout at the provider (R-PW-6, R-AUD-2): at the threshold, for known and unknown names
alike, exact under parallel attempts, lifted by time or by an administrator."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select

from iam import clock, lockout
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from tests.sso.helpers import PASSWORD, login, make_user

LOCKED_TEXT = "Too many failed sign-in attempts"


def test_account_locks_at_threshold_and_unlocks(services, client):
    make_user(services)
    settings = services.settings.lockout
    threshold = settings.threshold
    for _ in range(threshold):
        r = login(client, "alice", "wrong-password")
        assert LOCKED_TEXT not in r.get_data(as_text=True)
    r = login(client, "alice", PASSWORD)  # even the right password is refused now
    assert r.status_code == 401 and LOCKED_TEXT in r.get_data(as_text=True)
    with services.transaction() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert [(e.severity, e.outcome, e.actor, e.details) for e in ev] == [
            ("critical", "failure", "alice", {"locked": "account", "minutes": settings.duration // 60})
        ]
        assert ev[0].ip == "127.0.0.1" and (ev[0].user_agent or "").startswith("Werkzeug/")
        assert s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).all()
        assert lockout.unlock(s, username="alice", actor="admin") is True
    with services.transaction() as s:
        [unlocked] = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.unlocked")).all()
        assert (unlocked.severity, unlocked.actor) == ("significant", "admin")
        assert unlocked.details == {"username": "alice", "was_locked": True}
        assert lockout.unlock(s, username="alice", actor="admin") is False  # nothing left to lift
    assert login(client, "alice", PASSWORD).status_code == 302


def test_lock_expires_with_time(services, client):
    make_user(services)
    for _ in range(services.settings.lockout.threshold):
        login(client, "alice", "wrong-password")
    clock.advance(dt.timedelta(seconds=services.settings.lockout.duration + 1))
    assert login(client, "alice", PASSWORD).status_code == 302


def test_unknown_names_lock_the_same_way(services, client):
    """No enumeration: a name that does not exist is locked and answered like a real one."""
    make_user(services)
    for _ in range(services.settings.lockout.threshold):
        login(client, "nobody-here", "x-wrong-password")
        login(client, "alice", "x-wrong-password")
    a = login(client, "alice", "x").get_data(as_text=True)
    b = login(client, "nobody-here", "x").get_data(as_text=True)
    assert LOCKED_TEXT in a and LOCKED_TEXT in b


def test_failures_outside_the_window_do_not_add_up(services, client):
    make_user(services)
    for _ in range(services.settings.lockout.threshold - 1):
        login(client, "alice", "wrong-password")
    clock.advance(dt.timedelta(seconds=services.settings.lockout.window + 1))
    login(client, "alice", "wrong-password")
    assert login(client, "alice", PASSWORD).status_code == 302


def test_parallel_wrong_attempts_lock_exactly_once(services):
    """Several workers failing at once: the counter is exact, one lock, one critical event."""
    settings = services.settings.lockout
    n = settings.threshold + 3
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            barrier.wait()
            with services.transaction() as s:
                lockout.record_failure(s, settings, username="Carol", ip=None, user_agent=None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with services.transaction() as s:
        from iam.models.lockout import LockoutCounter

        row = s.get(LockoutCounter, lockout.account_key("carol"))
        assert row is not None and row.failures == n and row.locked_until is not None
        events = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert len(events) == 1


def test_attempts_in_flight_count_against_the_threshold(services):
    """However many checks run at once, at most ``threshold`` passwords per window reach the
    directory: an attempt in flight counts like a failure until it ends (R-PW-6)."""
    settings = services.settings.lockout
    clock.freeze()
    with services.transaction() as s:
        for _ in range(settings.threshold):
            assert lockout.begin_attempt(s, settings, username="Dave", ip=None) == lockout.LockState(False)
        # one more while those are still with the directory: refused, not yet a lock
        assert lockout.begin_attempt(s, settings, username="dave", ip=None) == lockout.LockState(
            True, None, "account"
        )
        # one of them turns out right: its slot is free again and the failures start from zero
        lockout.finish_attempt(
            s, settings, username="dave", ip=None, user_agent=None, outcome=lockout.Outcome.SUCCESS
        )
        assert lockout.begin_attempt(s, settings, username="dave", ip=None) == lockout.LockState(False)
        assert lockout.begin_attempt(s, settings, username="dave", ip=None).locked  # full again
        # the others were wrong: the threshold's worth of failures locks the name
        for _ in range(settings.threshold):
            lockout.finish_attempt(
                s, settings, username="dave", ip=None, user_agent=None, outcome=lockout.Outcome.FAILURE
            )
        locked = lockout.begin_attempt(s, settings, username="dave", ip=None)
        assert locked.locked and locked.by == "account"
        assert locked.until == clock.now() + dt.timedelta(seconds=settings.duration)
        assert lockout.state(s, username="DAVE ", ip=None) == locked
    clock.advance(dt.timedelta(seconds=settings.duration))  # the lock ends at its "until", exactly
    with services.transaction() as s:
        assert lockout.state(s, username="dave", ip=None) == lockout.LockState(False)
        assert lockout.begin_attempt(s, settings, username="dave", ip=None) == lockout.LockState(False)
