"""Password hashing (argon2id) for the built-in directory and the password history.

Never logs or stores a password. Tests may swap ``_hasher`` for a cheap one.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
_DUMMY = _hasher.hash("dummy password for timing equalisation")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


#: Secrets the provider generated itself at random (temporary passwords of at least
#: GENERATED_MIN_LENGTH characters from 66 symbols, ≥ 90 bits): no guessing attack is feasible
#: at any hashing cost, so the memory-hard cost that protects passwords people choose buys
#: nothing there and cost ~0.3 s of CPU per joiner. Still argon2id, checked by verify_password
#: like any other hash (its parameters travel in the hash).
_generated_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
GENERATED_MIN_LENGTH = 16


def hash_generated_password(password: str) -> str:
    """Hash a password the provider generated at random (see ``_generated_hasher``); shorter
    ones get the full cost of :func:`hash_password`."""
    if len(password) < GENERATED_MIN_LENGTH:
        return _hasher.hash(password)
    return _generated_hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (``stored`` None → dummy hash)."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
