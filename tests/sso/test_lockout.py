"""Lockout at the provider (R-PW-6, R-AUD-2): at the threshold, for known and unknown names
alike, per account whichever of its names is typed (issue 20), per network address (issue 21),
exact under parallel attempts, lifted by time or by an administrator — and every refusal of a
password check answered with the same words and status."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam import cli as cli_module
from iam import clock, lockout
from iam.directory.base import NewUser
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from iam.models.lockout import LockoutCounter
from sso.views.signin import REFUSED
from tests.sso.helpers import PASSWORD, csrf_from, login, make_user, refusal

REFUSED_TEXT = str(REFUSED)


def login_from(client: Any, address: str, username: str, password: str) -> Any:
    env = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=env).get_data(as_text=True)
    data = {"username": username, "password": password, "csrf_token": csrf_from(page)}
    return client.post("/login", data=data, environ_base=env)


def test_account_locks_at_threshold_and_unlocks(services, client):
    make_user(services)
    settings = services.settings.lockout
    threshold = settings.threshold
    for _ in range(threshold - 1):
        assert login(client, "alice", "wrong-password").status_code == 401
    assert login(client, "alice", PASSWORD).status_code == 302  # below the threshold: fine
    for _ in range(threshold):
        assert login(client, "alice", "wrong-password").status_code == 401
    r = login(client, "alice", PASSWORD)  # even the right password is refused now
    assert r.status_code == 401 and REFUSED_TEXT in r.get_data(as_text=True)
    with services.transaction() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert [(e.severity, e.outcome, e.actor, e.details) for e in ev] == [
            ("critical", "failure", "alice", {"locked": "account", "minutes": settings.duration // 60})
        ]
        assert ev[0].ip == "127.0.0.1" and (ev[0].user_agent or "").startswith("Werkzeug/")
        assert s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).all()
        failed = select(AuditEvent).where(AuditEvent.event == "login.failed").order_by(AuditEvent.id)
        reasons = [e.details["reason"] for e in s.scalars(failed)]
        assert reasons[-2:] == ["bad_credentials", "throttled"]  # the precise reason: audit only
        alice = lockout.account_names(services).account("alice")
        assert lockout.unlock(s, account=alice, actor="admin") is True
    with services.transaction() as s:
        [unlocked] = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.unlocked")).all()
        assert (unlocked.severity, unlocked.actor) == ("significant", "admin")
        assert unlocked.details == {"username": "alice", "was_locked": True}
        assert lockout.unlock(s, account=alice, actor="admin") is False  # nothing left to lift
    assert login(client, "alice", PASSWORD).status_code == 302


def test_lock_expires_with_time(services, client):
    make_user(services)
    for _ in range(services.settings.lockout.threshold):
        login(client, "alice", "wrong-password")
    assert login(client, "alice", PASSWORD).status_code == 401
    clock.advance(dt.timedelta(seconds=services.settings.lockout.duration + 1))
    assert login(client, "alice", PASSWORD).status_code == 302


def test_unknown_names_lock_the_same_way(services, client):
    """No enumeration: a name that does not exist is locked and answered like a real one."""
    make_user(services)
    for _ in range(services.settings.lockout.threshold):
        login(client, "nobody-here", "x-wrong-password")
        login(client, "alice", "x-wrong-password")
    with services.transaction() as s:
        locked = {
            row.key: row.locked_until is not None
            for row in s.scalars(select(LockoutCounter).where(LockoutCounter.key.like("acct:%")))
        }
    alice = lockout.account_names(services).account("alice")
    assert locked == {alice.key: True, lockout.Account("nobody-here").key: True}
    assert refusal(login(client, "alice", "x")) == refusal(login(client, "nobody-here", "x"))


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
                lockout.record_failure(
                    s, settings, account=lockout.Account("Carol"), ip=None, user_agent=None
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with services.transaction() as s:
        row = s.get(LockoutCounter, lockout.Account(" carol ").key)  # the folded spelling
        assert row is not None and row.failures == n and row.locked_until is not None
        events = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert len(events) == 1


# -- issue 20: the account, not the spelling of its name ------------------------------------------
def _alice_with_upn(services: Any) -> str:
    d = services.directory
    user = d.create_user(NewUser(username="alice", upn="Alice.A@example.test", given_name="Alice"))
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    return user.id


def test_every_name_of_an_account_counts_against_one_counter(services, client):
    """Wrong passwords spread over the names the directory accepts for one account lock that
    account at the threshold; then the right password is refused under each of them."""
    user_id = _alice_with_upn(services)
    names = ["alice", "Alice.A@example.test", "  alice  ", "Alice.A@example.test "]
    threshold = services.settings.lockout.threshold
    for i in range(threshold):
        assert login(client, names[i % len(names)], f"wrong-{i}").status_code == 401
    for name in names:
        r = login(client, name, PASSWORD)
        assert r.status_code == 401 and REFUSED_TEXT in r.get_data(as_text=True), name
    with services.transaction() as s:
        rows = s.scalars(select(LockoutCounter).where(LockoutCounter.key.like("acct:%"))).all()
        assert [(r.key, r.failures) for r in rows] == [(f"acct:id:{user_id}", threshold)]
        locks = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert [e.subject for e in locks] == [user_id]


def test_password_change_page_counts_against_the_same_account(services, client):
    """Guessing through the change-password form is the same guessing: wrong current
    passwords there, under the UPN, lock the account for the sign-in page too, and back."""
    _alice_with_upn(services)
    threshold = services.settings.lockout.threshold
    for i in range(threshold):
        page = client.get("/password/change").get_data(as_text=True)
        form = {"username": "Alice.A@example.test", "current_password": f"wrong-{i}"}
        form |= {"new_password": "N3w-Long-Passphrase!", "confirm": "N3w-Long-Passphrase!"}
        r = client.post("/password/change", data={**form, "csrf_token": csrf_from(page)})
        assert r.status_code == 400 and REFUSED_TEXT in r.get_data(as_text=True)
    r = login(client, "alice", PASSWORD)
    assert r.status_code == 401 and REFUSED_TEXT in r.get_data(as_text=True)


def test_names_resolve_without_binding_and_alike_for_unknown_names(services):
    """The name → account look-up is a search, remembered for known and unknown names alike
    (the same work for both: no timing oracle), and asks nothing of the password."""
    user_id = _alice_with_upn(services)
    calls: list[str] = []
    directory = services.directory

    class Counting:
        def find_login(self, username: str) -> Any:
            calls.append(username)
            return directory.find_login(username)

        def authenticate(self, username: str, password: str) -> Any:  # pragma: no cover
            raise AssertionError("resolving a name must not check a password")

    names = lockout.AccountNames(Counting(), ttl=60)  # type: ignore[arg-type]
    assert names.account(" alice ") == lockout.Account("alice", user_id)
    assert names.account("Alice.A@example.test").id == user_id
    assert names.account("nobody").id is None
    for name in ("alice", "Alice.A@example.test", "nobody"):
        names.account(name)
    assert calls == ["alice", "Alice.A@example.test", "nobody"]  # each asked once, known or not
    uncached = lockout.AccountNames(Counting(), ttl=0)  # type: ignore[arg-type]
    uncached.account("nobody")
    uncached.account("nobody")
    assert calls[-2:] == ["nobody", "nobody"]


def test_refusals_look_alike(services, client):
    """Unknown name, wrong password, our lock and the directory's own lock: the same words,
    the same status, the same page (issue 20)."""
    user = make_user(services)
    make_user(services, "bob", given_name="Bob")
    unknown = refusal(login(client, "nobody-here", PASSWORD))
    wrong = refusal(login(client, "alice", "not-the-password"))
    for _ in range(services.settings.lockout.threshold):
        login(client, "bob", "not-the-password")
    ours = refusal(login(client, "bob", PASSWORD))
    services.directory._set(user.id, locked=True)  # the built-in directory's own lockout
    directory_lock = refusal(login(client, "alice", PASSWORD))
    assert unknown[0] == 401 and REFUSED_TEXT in unknown[1]
    assert unknown == wrong == ours == directory_lock
    with services.transaction() as s:
        reasons = [
            e.details["reason"]
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.event == "login.failed").order_by(AuditEvent.id)
            )
        ]
    assert reasons[0:2] == ["bad_credentials", "bad_credentials"] and reasons[-2:] == ["throttled", "locked"]


def test_unlock_command_takes_any_name_of_the_account(services, client):
    """`iam user unlock` with another spelling than the one that locked the account lifts it."""
    _alice_with_upn(services)
    for i in range(services.settings.lockout.threshold):
        login(client, "alice", f"wrong-{i}")
    assert login(client, "alice", PASSWORD).status_code == 401
    ctx = cli_module.Ctx()
    ctx._services = services
    result = CliRunner().invoke(cli_module.cli, ["user", "unlock", " Alice.A@example.test"], obj=ctx)
    assert result.exit_code == 0, result.output
    assert "Unlocked" in result.output
    assert login(client, "alice", PASSWORD).status_code == 302


# -- issue 21: the per-address lockout ------------------------------------------------------------
@pytest.fixture
def small_address_threshold(services, monkeypatch):
    settings = services.settings.lockout
    monkeypatch.setattr(settings, "address_threshold", settings.threshold - 1)
    return settings.address_threshold


def test_failures_across_many_names_lock_the_address(services, client, small_address_threshold):
    """One address guessing a few passwords for each of many names (each name stays below its
    own threshold) is locked out itself — answered like any other refusal — while other
    addresses sign in as before."""
    make_user(services)
    attacker, colleague = "203.0.113.7", "198.51.100.20"
    wrong = refusal(login_from(client, attacker, "alice", "not-the-password"))
    for i in range(1, small_address_threshold):
        login_from(client, attacker, f"name-{i}", "not-the-password")
    refused = login_from(client, attacker, "alice", PASSWORD)  # the right password, another name
    assert refusal(refused) == wrong and wrong[0] == 401
    with services.transaction() as s:
        row = s.get(LockoutCounter, lockout.address_key(attacker))
        assert row is not None and row.failures == small_address_threshold and row.locked_until
        locks = s.scalars(select(AuditEvent).where(AuditEvent.event == "login.locked_out")).all()
        assert [(e.details["locked"], e.ip) for e in locks] == [("address", attacker)]
        failed = select(AuditEvent).where(AuditEvent.event == "login.failed").order_by(AuditEvent.id)
        assert s.scalars(failed).all()[-1].details["reason"] == "throttled"
    assert login_from(client, colleague, "alice", PASSWORD).status_code == 302
    clock.advance(dt.timedelta(seconds=services.settings.lockout.duration + 1))
    assert login_from(client, attacker, "alice", PASSWORD).status_code == 302


def test_attempts_in_flight_count_against_the_threshold(services):
    """However many checks run at once, at most ``threshold`` passwords per window reach the
    directory: an attempt in flight counts like a failure until it ends (R-PW-6)."""
    settings = services.settings.lockout
    clock.freeze()
    with services.transaction() as s:
        for _ in range(settings.threshold):
            assert lockout.begin_attempt(
                s, settings, account=lockout.Account("Dave"), ip=None
            ) == lockout.LockState(False)
        # one more while those are still with the directory: refused, not yet a lock
        assert lockout.begin_attempt(
            s, settings, account=lockout.Account("dave"), ip=None
        ) == lockout.LockState(True, None, "account")
        # one of them turns out right: its slot is free again and the failures start from zero
        lockout.finish_attempt(
            s,
            settings,
            account=lockout.Account("dave"),
            ip=None,
            user_agent=None,
            outcome=lockout.Outcome.SUCCESS,
        )
        assert lockout.begin_attempt(
            s, settings, account=lockout.Account("dave"), ip=None
        ) == lockout.LockState(False)
        assert lockout.begin_attempt(
            s, settings, account=lockout.Account("dave"), ip=None
        ).locked  # full again
        # the others were wrong: the threshold's worth of failures locks the name
        for _ in range(settings.threshold):
            lockout.finish_attempt(
                s,
                settings,
                account=lockout.Account("dave"),
                ip=None,
                user_agent=None,
                outcome=lockout.Outcome.FAILURE,
            )
        locked = lockout.begin_attempt(s, settings, account=lockout.Account("dave"), ip=None)
        assert locked.locked and locked.by == "account"
        assert locked.until == clock.now() + dt.timedelta(seconds=settings.duration)
        assert lockout.state(s, account=lockout.Account("DAVE "), ip=None) == locked
    clock.advance(dt.timedelta(seconds=settings.duration))  # the lock ends at its "until", exactly
    with services.transaction() as s:
        assert lockout.state(s, account=lockout.Account("dave"), ip=None) == lockout.LockState(False)
        assert lockout.begin_attempt(
            s, settings, account=lockout.Account("dave"), ip=None
        ) == lockout.LockState(False)
