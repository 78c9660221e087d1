"""Fixtures of the password-policy tests: cheap argon2 and the shipped profiles."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from iam.config import POLICY_DIR
from iam.passwords import PasswordProfile, hashing, load_profile

PROFILES = ["cacak", "bistrezor", "pabianice", "strictest", "default"]


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def profile(name: str, **overrides: object) -> PasswordProfile:
    return load_profile(name, POLICY_DIR, dict(overrides) or None)
