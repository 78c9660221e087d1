"""JWT access tokens (RFC 9068), ID tokens and their verification."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError

from iam import clock
from sso.keys import KeyRing


class TokenInvalid(Exception):  # noqa: N818
    """The token is malformed, not ours, expired or badly signed."""


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash``: left half of the SHA-256 (ES256/RS256) digest, base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


@dataclass(frozen=True)
class Signer:
    keyring: KeyRing
    issuer: str
    default_alg: str

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, typ: str = "JWT") -> str:
        key = self.keyring.signing_key(alg or self.default_alg)
        header = {"alg": key.alg, "kid": key.kid, "typ": typ}
        return jwt.encode(header, claims, key.key, algorithms=[key.alg])

    def access_token(
        self,
        *,
        client_id: str,
        sub: str,
        scope: str,
        audience: list[str],
        lifetime: int,
        extra: dict[str, Any] | None = None,
        alg: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        now = clock.timestamp()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience[0] if len(audience) == 1 else audience,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if extra:
            claims.update(extra)
        return self.sign(claims, alg=alg, typ="at+jwt"), claims

    def verify(self, token: str, *, typ: str | None = None, leeway: int = 0) -> dict[str, Any]:
        """Check signature (by ``kid`` among published keys), issuer and expiry."""
        try:
            obj = jws.extract_compact(token.encode())
        except (JoseError, ValueError) as exc:
            raise TokenInvalid("malformed token") from exc
        header = obj.headers()
        kid = header.get("kid")
        alg = header.get("alg")
        if not isinstance(kid, str) or alg not in ("ES256", "RS256"):
            raise TokenInvalid("unsupported token header")
        key = self.keyring.verification_key(kid)
        if key is None or key.alg != alg:
            raise TokenInvalid("unknown signing key")
        if typ is not None and header.get("typ") != typ:
            raise TokenInvalid("wrong token type")
        try:
            decoded = jwt.decode(token, key.key, algorithms=[key.alg])
        except (JoseError, ValueError) as exc:
            raise TokenInvalid("bad signature") from exc
        claims = dict(decoded.claims)
        now = clock.timestamp()
        if claims.get("iss") != self.issuer:
            raise TokenInvalid("wrong issuer")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + leeway < now:
            raise TokenInvalid("expired")
        return claims
