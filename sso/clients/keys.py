"""A client's public keys for ``private_key_jwt``: pasted as PEM or JWKS, or published by the
client at its ``jwks_uri`` (fetched and cached per process)."""

from __future__ import annotations

import threading
import time
from typing import Any

from joserfc.errors import JoseError

from iam.errors import ValidationFailed
from sso.clients.validation import InvalidClient, parse_jwks


def parse_public_keys(text: str) -> dict[str, Any]:
    """The client's public keys as a JWKS, from a JWKS (JSON) or a PEM public key."""
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        return parse_jwks(text)
    from joserfc.jwk import ECKey, RSAKey

    for kind in (RSAKey, ECKey):
        try:
            key = kind.import_key(text)
        except (JoseError, ValueError, TypeError):
            continue
        if key.is_private:
            raise InvalidClient("Paste the public key only, never the private key.", "jwks")
        data = key.as_dict(private=False)
        data["kid"] = key.thumbprint()
        data.setdefault("use", "sig")
        return {"keys": [data]}
    raise InvalidClient("The PEM text is not an RSA or EC public key.", "jwks")


JWKS_URI_TTL = 300.0
"""Seconds a client's fetched key set is used before it is fetched again."""
JWKS_URI_REFETCH = 10.0
"""An unknown ``kid`` fetches the set again (the client rotated), at most this often."""
JWKS_URI_TIMEOUT = 5.0
JWKS_URI_MAX_BYTES = 64 * 1024

_remote: dict[str, tuple[float, dict[str, Any]]] = {}
_remote_lock = threading.Lock()


def _fetch(uri: str) -> dict[str, Any]:
    import httpx

    with httpx.Client(timeout=JWKS_URI_TIMEOUT, follow_redirects=False, trust_env=False) as http:
        resp = http.get(uri, headers={"Accept": "application/json"})
    if resp.status_code != 200 or len(resp.content) > JWKS_URI_MAX_BYTES:
        raise ValidationFailed("The client's JWKS URI did not answer with a key set.")
    return parse_jwks(resp.text)


def remote_jwks(uri: str, *, kid: str | None = None) -> dict[str, Any]:
    """The key set a client publishes at ``uri`` (cached ``JWKS_URI_TTL`` seconds; fetched again
    when ``kid`` is not in it, at most every ``JWKS_URI_REFETCH`` seconds). Raises
    :class:`ValidationFailed` when it cannot be fetched."""
    now = time.monotonic()
    with _remote_lock:
        cached = _remote.get(uri)
    if cached is not None:
        fetched_at, keys = cached
        known = kid is None or any(k.get("kid") == kid for k in keys.get("keys", []))
        if now - fetched_at < JWKS_URI_TTL and (known or now - fetched_at < JWKS_URI_REFETCH):
            return keys
    try:
        keys = _fetch(uri)
    except ValidationFailed:
        raise
    except Exception:
        raise ValidationFailed("The client's JWKS URI could not be fetched.") from None
    with _remote_lock:
        _remote[uri] = (now, keys)
    return keys
