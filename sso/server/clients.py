"""The client side of the token endpoint for authlib: the registration adapter, the per-process
registration cache, and client authentication by signed assertion (RFC 7523)."""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import g
from joserfc.jwk import KeySet, OctKey

from iam import clock, cluster, events
from iam.errors import ValidationFailed
from iam.web import db as web_db
from sso import clients as client_service
from sso import service
from sso.models import AuthMethod, Client

if TYPE_CHECKING:
    from iam.services import Services
    from sso.server.authorization import IamAuthorizationServer


AUTH_METHODS = [m.value for m in AuthMethod]


class OAuthClient:
    """Adapts a :class:`Client` row to authlib's ClientMixin."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_id = row.client_id
        self.id_token_signed_response_alg = row.id_token_alg

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.row.scopes)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris  # exact match only (R-SSO-2)

    def check_client_secret(self, client_secret: str) -> bool:
        return client_service.check_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.row.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


def _db() -> Any:
    return web_db()


class ClientCache:
    """Client registrations, kept for a few seconds per process (read-only, detached rows).

    Reading the registration was a third of the token endpoint's work. A change made in this
    process invalidates the entry at once (``iam.events.client_changed``); a change made
    elsewhere (the CLI, another node) arrives as a change notification on PostgreSQL
    (``iam.cluster``, milliseconds) and is seen within ``TTL`` seconds at the latest.
    """

    TTL = 2.0
    _all: weakref.WeakSet[ClientCache] = weakref.WeakSet()

    def __init__(self) -> None:
        self._rows: dict[str, tuple[float, Client | None]] = {}
        ClientCache._all.add(self)

    def get(self, client_id: str) -> Client | None:
        now = time.monotonic()
        hit = self._rows.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        # read in a session of its own, closed at once: the row is kept across requests, so it
        # must belong to no request's session (a rollback there would expire it)
        with _services().reader() as session:
            row = session.get(Client, client_id)
        if len(self._rows) > 10_000:
            self._rows.clear()
        self._rows[client_id] = (now + self.TTL, row)
        return row

    @classmethod
    def invalidate(cls, client_id: str, **_: Any) -> None:
        for cache in list(cls._all):
            if client_id == cluster.ALL:
                cache._rows.clear()
            else:
                cache._rows.pop(client_id, None)


events.client_changed.connect(ClientCache.invalidate)
cluster.on("client", ClientCache.invalidate)  # a change committed by another process


def load_client(client_id: str | None) -> Client | None:
    """The client registration (cached per process for a few seconds)."""
    if not client_id:
        return None
    cache = _services().extensions.get("sso.client_cache")
    if cache is None:
        cache = _services().extensions.setdefault("sso.client_cache", ClientCache())
    return cache.get(client_id)  # type: ignore[no-any-return]


def _services() -> Services:
    return g.services  # type: ignore[no-any-return]


class _ClientAssertion(JWTBearerClientAssertion):  # type: ignore[misc]
    def __init__(self, server: IamAuthorizationServer) -> None:
        super().__init__(leeway=30)
        self.server = server

    def __call__(self, query_client: Any, request: Any) -> Any:
        """Only handle assertions of clients registered for this method; others fall through."""
        assertion = request.form.get("client_assertion")
        if not assertion:
            return None
        _, claims = self.extract_assertion(assertion)
        client = query_client(claims.get("sub")) if isinstance(claims.get("sub"), str) else None
        if client is None or client.row.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            return None
        return super().__call__(query_client, request)

    def get_audiences(self) -> list[str]:
        issuer = self.server.services.settings.issuer
        return [issuer, issuer + "/token", issuer + "/"]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        exp = int(claims.get("exp") or clock.timestamp() + 600)
        return service.remember_assertion(_db(), str(claims["sub"]), str(jti), exp)


class ClientSecretJwt(_ClientAssertion):
    CLIENT_AUTH_METHOD = "client_secret_jwt"

    def resolve_client_public_key(self, client: OAuthClient) -> OctKey:
        secret = client_service.client_secret_for_jwt(client.row, self.server.services.cipher)
        if not secret:
            raise InvalidClientError(description="The client has no secret for client_secret_jwt.")
        return OctKey.import_key(secret)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        header, _ = self.extract_assertion(assertion)
        if header.get("alg") not in ("HS256", "HS384", "HS512"):
            raise InvalidClientError(description="client_secret_jwt needs an HMAC-signed assertion.")
        return super().process_assertion_claims(assertion, resolve_key)


class PrivateKeyJwt(_ClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"
    _request = threading.local()  # the assertion's ``kid``, per request thread

    def __call__(self, query_client: Any, request: Any) -> Any:
        assertion = request.form.get("client_assertion")
        kid = None
        if assertion:
            try:
                kid = self.extract_assertion(assertion)[0].get("kid")
            except Exception:  # noqa: BLE001 — the parent refuses a malformed assertion itself
                kid = None
        self._request.kid = kid
        return super().__call__(query_client, request)

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if client.row.jwks_uri:
            kid = getattr(self._request, "kid", None)
            try:
                keys = client_service.remote_jwks(client.row.jwks_uri, kid=kid)
            except ValidationFailed as exc:
                raise InvalidClientError(description=str(exc)) from None
            return KeySet.import_key_set(keys)  # type: ignore[arg-type]
        return KeySet.import_key_set(client.row.jwks or {"keys": []})  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        header, _ = self.extract_assertion(assertion)
        if header.get("alg") not in ("RS256", "PS256", "ES256", "ES384", "RS384", "RS512"):
            raise InvalidClientError(description="private_key_jwt needs an RSA or EC signature.")
        return super().process_assertion_claims(assertion, resolve_key)
