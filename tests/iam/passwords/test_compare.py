"""``iam policy check``'s comparison, one case per setting (fast; the Samba test reads real AD)."""

from __future__ import annotations

import datetime as dt

import pytest

from iam.config import POLICY_DIR, LockoutSettings
from iam.directory.base import PasswordPolicy
from iam.passwords.compare import compare, problems
from iam.passwords.profiles import load_profile

DAY = dt.timedelta(days=1)
ALIGNED = PasswordPolicy(
    name="domain",
    min_length=8,
    complexity=True,
    history_count=24,
    max_age=182 * DAY,
    min_age=dt.timedelta(0),
    lockout_threshold=20,
    lockout_window=dt.timedelta(minutes=15),
    lockout_duration=dt.timedelta(minutes=15),
)
LOCKOUT = LockoutSettings(threshold=5, window=900)


def findings(policy: PasswordPolicy, profile: str = "pabianice") -> set[tuple[str, str]]:
    p = load_profile(profile, POLICY_DIR)
    return {(f.setting, f.kind) for f in problems(compare(p, LOCKOUT, policy))}


def test_an_aligned_domain_has_no_findings() -> None:
    # Pabianice §19-§20: 8 characters, letters+digits+special, last 5, 30 days
    policy = ALIGNED.__class__(**{**ALIGNED.__dict__, "max_age": 30 * DAY})
    assert findings(policy) == set()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"min_length": 6}, ("min_length", "weaker")),
        ({"min_length": 10}, ("min_length", "contradicts")),
        ({"complexity": False}, ("complexity", "weaker")),
        ({"history_count": 3}, ("history_count", "weaker")),
        ({"max_age": None}, ("max_age", "weaker")),
        ({"max_age": 90 * DAY}, ("max_age", "weaker")),
        ({"min_age": 3 * DAY}, ("min_age", "contradicts")),
        ({"lockout_threshold": 0}, ("lockout_threshold", "weaker")),
        ({"lockout_threshold": 5}, ("lockout_threshold", "contradicts")),
        # AD counts for an hour, we for 15 minutes: up to 4 x 5 wrong passwords reach AD
        ({"lockout_window": dt.timedelta(hours=1)}, ("lockout_threshold", "contradicts")),
        ({"reversible_encryption": True}, ("reversible_encryption", "weaker")),
    ],
)
def test_each_setting(change: dict[str, object], expected: tuple[str, str]) -> None:
    policy = ALIGNED.__class__(**{**ALIGNED.__dict__, "max_age": 30 * DAY, **change})
    assert findings(policy) == {expected}


def test_complexity_contradicts_a_passphrase_profile() -> None:
    assert ("complexity", "contradicts") in findings(ALIGNED, "default")


def test_time_based_history_needs_a_minimum_age_to_be_covered() -> None:
    cacak = load_profile("cacak", POLICY_DIR)  # no reuse within 365 days
    covered = ALIGNED.__class__(**{**ALIGNED.__dict__, "history_count": 24, "min_age": 16 * DAY})
    assert "history_days" not in {f.setting for f in problems(compare(cacak, LOCKOUT, covered))}
    no_min_age = ALIGNED.__class__(**{**ALIGNED.__dict__, "min_age": dt.timedelta(0)})
    assert ("history_days", "weaker") in {
        (f.setting, f.kind) for f in problems(compare(cacak, LOCKOUT, no_min_age))
    }
