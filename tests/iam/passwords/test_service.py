"""History (count- and time-based at once), expiry, minimum age, temporary passwords and the
audit trail, on SQLite and PostgreSQL. The clock is moved, never slept on."""

from __future__ import annotations

import datetime as dt
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from iam import clock
from iam.models.audit import AuditEvent
from iam.models.passwords import PasswordHistory
from iam.passwords import IdentityFacts, check, history
from iam.passwords.service import (
    evaluate,
    expiry_state,
    generate_temporary_password,
    must_change_at_next_sign_in,
    record_password_set,
)
from iam.services import Services

from .conftest import PROFILES, profile

START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
SUB = "3f1c0d5e-0000-4000-8000-000000000001"


def _rules(services: Services, name: str, password: str, **facts: object) -> list[str]:
    with services.transaction() as session:
        identity = IdentityFacts(sub=SUB, **facts)  # type: ignore[arg-type]
        return [
            v.rule
            for v in evaluate(session, profile(name), password=password, identity=identity, now=clock.now())
        ]


def _set(services: Services, name: str, password: str) -> None:
    with services.transaction() as session:
        record_password_set(
            session, SUB, password, by_admin=False, actor=SUB, profile=profile(name), now=clock.now()
        )


def test_count_and_time_based_history_at_once(services: Services) -> None:
    """R-PW-2 with strictest: PABIANICE §20.2 (last 5) and CACAK Član 20 (one year) together."""
    clock.freeze(START)
    passwords = [f"Old-Pass-{i}-Xq!" for i in range(8)]
    for pw in passwords:
        _set(services, "strictest", pw)
        clock.advance(dt.timedelta(days=30))
    # eight changes 30 days apart: all used within the year, so all refused by time …
    assert _rules(services, "strictest", passwords[0]) == ["history"]
    # … while a count-only profile (pabianice, last 5) accepts the sixth-last
    assert _rules(services, "pabianice", passwords[2]) == []
    assert _rules(services, "pabianice", passwords[3]) == ["history"]
    # a year after the first one stopped being used, time-based history lets it go;
    # count-based still holds the last five
    clock.freeze(START + dt.timedelta(days=30 + 365, seconds=1))
    assert _rules(services, "strictest", passwords[0]) == []
    assert _rules(services, "strictest", passwords[1]) == ["history"]
    assert _rules(services, "strictest", "Brand-New-Pass-9!") == []


def test_time_based_history_counts_until_the_password_was_replaced(services: Services) -> None:
    """CACAK Član 20: "not repeated within one year" — measured from when it was last in use."""
    clock.freeze(START)
    _set(services, "cacak", "First-Pass-1!")
    clock.advance(dt.timedelta(days=180))
    _set(services, "cacak", "Second-Pass-2!")
    clock.advance(dt.timedelta(days=364))  # 544 days after set, 364 after it was replaced
    assert _rules(services, "cacak", "First-Pass-1!") == ["history"]
    clock.advance(dt.timedelta(days=2))
    assert _rules(services, "cacak", "First-Pass-1!") == []


def test_a_year_of_history_is_pruned_to_what_the_rules_need(services: Services) -> None:
    """Monthly changes for two years (PABIANICE §16.2): strictest keeps the last 5 and a year."""
    clock.freeze(START)
    for month in range(24):
        _set(services, "strictest", f"Month-{month:02d}-Pass!")
        clock.advance(dt.timedelta(days=30))
    with services.transaction() as session:
        rows = history.entries(session, SUB)
    # pruned at the last change (day 690): kept are those in use after day 325, i.e. replaced
    # on day 330 or later — months 10 to 23
    assert len(rows) == 14
    assert rows[0].set_at == START + dt.timedelta(days=30 * 23)
    assert all("Month" not in r.password_hash for r in rows)  # hashes only
    assert _rules(services, "strictest", "Month-11-Pass!") == ["history"]
    assert _rules(services, "strictest", "Month-10-Pass!") == []


def test_history_is_per_account(services: Services) -> None:
    clock.freeze(START)
    _set(services, "pabianice", "Shared-Pass-1!")
    with services.transaction() as session:
        assert not history.reused(
            session, profile("pabianice"), sub="someone-else", password="Shared-Pass-1!", now=clock.now()
        )


def test_minimum_age(services: Services) -> None:
    p = profile("cacak", min_age_days=1)
    clock.freeze(START)
    with services.transaction() as session:
        facts = IdentityFacts(sub=SUB, password_set_at=START)
        rules = [
            v.rule for v in evaluate(session, p, password="Fresh-Pass-7!", identity=facts, now=clock.now())
        ]
        assert rules == ["min_age"]
        # a forced change (reset, expiry) ignores the minimum age
        forced = IdentityFacts(sub=SUB, password_set_at=START, must_change=True)
        assert evaluate(session, p, password="Fresh-Pass-7!", identity=forced, now=clock.now()) == []
    clock.advance(dt.timedelta(days=1))
    with services.transaction() as session:
        assert evaluate(session, p, password="Fresh-Pass-7!", identity=facts, now=clock.now()) == []


@pytest.mark.parametrize(
    ("name", "article", "days", "warning"),
    [
        ("cacak", "CACAK Član 20: six months", 182, 14),
        ("bistrezor", "BISTREZOR Član 22: four times a year", 91, 10),
        ("pabianice", "PABIANICE §16.2: 30 days", 30, 5),
    ],
)
def test_expiry_and_warning(name: str, article: str, days: int, warning: int) -> None:
    p = profile(name)
    clock.freeze(START)
    expires = START + dt.timedelta(days=days)
    assert expiry_state(p, START, clock.now()) == (expires, False, False)
    clock.advance(dt.timedelta(days=days - warning) - dt.timedelta(seconds=1))
    assert expiry_state(p, START, clock.now()) == (expires, False, False)
    clock.advance(dt.timedelta(seconds=1))
    assert expiry_state(p, START, clock.now()) == (expires, True, False)
    clock.freeze(expires)
    assert expiry_state(p, START, clock.now()) == (expires, False, True)


def test_default_profile_never_expires() -> None:
    assert expiry_state(profile("default"), START, START + dt.timedelta(days=5000)) == (None, False, False)


def test_must_change_at_next_sign_in() -> None:
    assert must_change_at_next_sign_in(profile("bistrezor"), by_admin=False, new_account=True)  # Član 22
    assert must_change_at_next_sign_in(profile("pabianice"), by_admin=True)  # §22.2
    assert not must_change_at_next_sign_in(profile("pabianice"), by_admin=False)
    assert must_change_at_next_sign_in(profile("cacak"), by_admin=True)  # Član 20: known to another


def test_record_password_set_audits_without_the_password(services: Services) -> None:
    """PABIANICE §22.3: every reset is recorded; R-PW-4: never the password."""
    clock.freeze(START)
    temp = generate_temporary_password(profile("pabianice"))
    with services.transaction() as session:
        row = record_password_set(
            session, SUB, temp, by_admin=True, actor="admin", profile=profile("pabianice"), now=clock.now()
        )
        assert row.by_admin and row.set_at == START
    with services.transaction() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.event == "password.reset")).one()
        stored = session.scalars(select(PasswordHistory)).one()
    assert (event.actor, event.subject) == ("admin", SUB)
    assert event.details["must_change"] is True
    assert temp not in repr(event.details) and temp not in stored.password_hash


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_temporary_password_always_satisfies_its_profile(name: str, rng: random.Random) -> None:
    p = profile(name)
    password = generate_temporary_password(p, rng=rng)
    assert check(p, password) == []
    assert len(password) == p.temporary_length


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=40, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_temporary_password_meets_active_directory_complexity(name: str, rng: random.Random) -> None:
    """AD checks its own rule (three of small, capital, digit, symbol) on every set: a profile
    asking for fewer classes (``default``) made about one reset or joiner in 300 fail (CI, stop 25)."""
    password = generate_temporary_password(profile(name), rng=rng)
    for chars in (string.ascii_lowercase, string.ascii_uppercase, string.digits, "!#%+-=?_*"):
        assert set(password) & set(chars), (password, chars)


@settings(max_examples=60, deadline=None)
@given(
    min_length=st.integers(min_value=4, max_value=40),
    classes=st.sets(st.sampled_from(["lower", "upper", "letter", "digit", "special"])),
    min_classes=st.integers(min_value=0, max_value=4),
    rng=st.randoms(use_true_random=False),
)
def test_temporary_password_satisfies_any_valid_overrides(
    min_length: int, classes: set[str], min_classes: int, rng: random.Random
) -> None:
    p = profile(
        "strictest",
        min_length=min_length,
        required_classes=sorted(classes),
        class_choice=["lower", "upper", "digit", "special"],
        min_classes=min_classes,
    )
    assert check(p, generate_temporary_password(p, rng=rng)) == []


def test_temporary_passwords_differ() -> None:
    p = profile("pabianice")
    assert len({generate_temporary_password(p) for _ in range(50)}) == 50
