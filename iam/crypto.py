"""Encryption of secrets at rest (AES-256-GCM) and small hashing helpers (R-OPS-1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from iam.errors import ConfigError

_VERSION = b"\x01"


class Cipher:
    """AES-GCM with a 256-bit key. Output: version byte, 96-bit nonce, ciphertext+tag."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("The encryption key must be 32 bytes (44 characters of base64).")
        self._aead = AESGCM(key)

    @classmethod
    def from_b64(cls, value: str) -> Cipher:
        try:
            key = base64.urlsafe_b64decode(value.strip().encode() + b"==")
        except ValueError:
            raise ConfigError("The encryption key is not valid base64.") from None
        return cls(key)

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        return self._aead.decrypt(blob[1:13], blob[13:], context)


def generate_key_b64() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def dev_secret(var_dir: Path, name: str, *, factory: type[str] = str) -> str:
    """Read or create a generated secret under ``var_dir`` (dev mode and the embedded default)."""
    path = var_dir / name
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = generate_key_b64() if name.endswith(".key") else secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def token_hash(value: str) -> str:
    """SHA-256 of a high-entropy token (codes, refresh tokens, client secrets): store this."""
    return hashlib.sha256(value.encode()).hexdigest()


def random_token(prefix: str, nbytes: int = 32) -> str:
    """A high-entropy token with a recognisable prefix (e.g. ``iam_rt_…``)."""
    return prefix + secrets.token_urlsafe(nbytes)


def equal(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())
