"""The password policy engine (R-PW-1..4): profiles from ``policies/passwords/``, rules that
list every violation, history (count- and time-based), expiry and temporary passwords.

``hash_password``, ``verify_password`` and ``needs_rehash`` stay importable from here as they
were before this became a package. Domain code only: no Flask.
"""

from __future__ import annotations

from iam.passwords import hashing
from iam.passwords.hashing import hash_password, needs_rehash, verify_password
from iam.passwords.profiles import CharClass, PasswordProfile, load_profile, profile_from_settings
from iam.passwords.rules import IdentityFacts, Violation, check

__all__ = [
    "CharClass",
    "IdentityFacts",
    "PasswordProfile",
    "Violation",
    "check",
    "hash_password",
    "hashing",
    "load_profile",
    "needs_rehash",
    "profile_from_settings",
    "verify_password",
]
