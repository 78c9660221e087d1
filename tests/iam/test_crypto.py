"""Secrets at rest (AES-256-GCM), token hashing, constant-time comparison, dev secrets."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from iam import crypto
from iam.crypto import Cipher
from iam.errors import ConfigError

KEY = bytes(range(32))


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(KEY)


def test_round_trip_with_context(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"private key PEM", context=b"kid-1")
    assert blob[:1] == b"\x01"
    assert b"private key PEM" not in blob
    assert len(blob) == 1 + 12 + len(b"private key PEM") + 16
    assert cipher.decrypt(blob, context=b"kid-1") == b"private key PEM"
    assert Cipher(KEY).decrypt(blob, context=b"kid-1") == b"private key PEM"


def test_each_encryption_uses_a_fresh_nonce(cipher: Cipher) -> None:
    a, b = cipher.encrypt(b"same"), cipher.encrypt(b"same")
    assert a != b
    assert a[1:13] != b[1:13]
    assert cipher.decrypt(a) == cipher.decrypt(b) == b"same"


@pytest.mark.parametrize("position", [1, 12, 13, 20, -1], ids=["nonce", "nonce-end", "body", "mid", "tag"])
def test_flipped_byte_fails(cipher: Cipher, position: int) -> None:
    blob = bytearray(cipher.encrypt(b"secret value of some length", context=b"ctx"))
    blob[position] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(blob), context=b"ctx")


def test_unknown_version_byte_fails(cipher: Cipher) -> None:
    blob = bytearray(cipher.encrypt(b"x"))
    blob[0] = 0x02
    with pytest.raises(ValueError, match="version"):
        cipher.decrypt(bytes(blob))


def test_truncated_ciphertext_fails(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"secret")
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob[:-1])


def test_wrong_context_fails(cipher: Cipher) -> None:
    """The context binds a ciphertext to its row: a key's blob cannot be moved to another kid."""
    blob = cipher.encrypt(b"secret", context=b"kid-1")
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, context=b"kid-2")
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob)


def test_wrong_key_fails(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"secret")
    with pytest.raises(InvalidTag):
        Cipher(bytes(32)).decrypt(blob)


@pytest.mark.parametrize("length", [0, 16, 24, 31, 33, 64])
def test_wrong_key_length_is_a_config_error(length: int) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        Cipher(b"k" * length)
    with pytest.raises(ConfigError):
        Cipher.from_b64(base64.urlsafe_b64encode(b"k" * length).decode())


def test_key_from_base64() -> None:
    generated = crypto.generate_key_b64()
    assert len(generated) == 44
    assert len(base64.urlsafe_b64decode(generated)) == 32
    a, b = Cipher.from_b64(generated), Cipher.from_b64(generated + "\n")
    assert b.decrypt(a.encrypt(b"x")) == b"x"
    assert crypto.generate_key_b64() != generated
    unpadded = Cipher.from_b64(base64.urlsafe_b64encode(KEY).decode().rstrip("="))
    assert Cipher(KEY).decrypt(unpadded.encrypt(b"y")) == b"y"


def test_token_hash_is_stable_sha256() -> None:
    assert crypto.token_hash("abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert crypto.token_hash("iam_rt_x") == crypto.token_hash("iam_rt_x")
    assert crypto.token_hash("iam_rt_x") != crypto.token_hash("iam_rt_y")
    assert len(crypto.token_hash("")) == 64


def test_equal_compares_strings() -> None:
    assert crypto.equal("abc", "abc")
    assert not crypto.equal("abc", "abd")
    assert not crypto.equal("abc", "abcd")
    assert not crypto.equal("", "a")
    assert crypto.equal("žš€", "žš€")
    assert not crypto.equal("žš€", "zs€")


def test_random_token_has_prefix_and_entropy() -> None:
    tokens = {crypto.random_token("iam_rt_") for _ in range(50)}
    assert len(tokens) == 50
    assert all(t.startswith("iam_rt_") and len(t) >= 7 + 43 for t in tokens)


def test_dev_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    """Dev mode keeps generated secrets under var/, readable by the owner only, and reuses them."""
    var = tmp_path / "var"
    secret = crypto.dev_secret(var, "secret_key.txt")
    key = crypto.dev_secret(var, "encryption.key")
    assert len(secret) >= 32
    assert Cipher.from_b64(key).decrypt(Cipher.from_b64(key).encrypt(b"z")) == b"z"
    for name in ("secret_key.txt", "encryption.key"):
        assert stat.S_IMODE(os.stat(var / name).st_mode) == 0o600
    assert crypto.dev_secret(var, "secret_key.txt") == secret
    assert crypto.dev_secret(var, "encryption.key") == key
    assert crypto.dev_secret(tmp_path / "other", "secret_key.txt") != secret


def test_dev_mode_services_reuse_generated_secrets(tmp_path: Path) -> None:
    """A restart in dev mode keeps the secret key (audit chain, cookies) and encryption key."""
    from iam.config import load_settings
    from iam.services import Services

    settings = load_settings(
        dev_mode=True, var_dir=tmp_path, database={"url": f"sqlite:///{tmp_path}/iam.db"}
    )
    first = Services(settings)
    blob = first.cipher.encrypt(b"signing key", context=b"kid")
    first.dispose()
    second = Services(settings)
    try:
        assert second.secret_key == first.secret_key
        assert second.cipher.decrypt(blob, context=b"kid") == b"signing key"
    finally:
        second.dispose()
    assert (tmp_path / "secret_key.txt").read_text().strip() == first.secret_key
