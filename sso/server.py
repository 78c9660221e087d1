"""authlib wiring: a fresh AuthorizationServer per application, with our grants and storage.

authlib validates the protocol (client authentication, redirect URIs, PKCE, scopes); our
service functions store codes and tokens hashed and write the audit rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidGrantError, grants
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants.util import is_openid_scope
from flask import Flask, g
from joserfc.jwk import KeySet, OctKey
from sqlalchemy import bindparam, select

from iam import audit, clock, cluster, events
from iam.crypto import token_hash
from iam.directory.errors import DirectoryError
from iam.errors import ValidationFailed
from iam.models.identity import Identity
from iam.web import db as web_db
from iam.web import reader as web_reader
from sso import clients as client_service
from sso import service
from sso.claims import token_extras, user_claims
from sso.models import AuthMethod, Client, SsoSession
from sso.tokens import Signer, half_hash
from sso.usercache import DirectoryCache

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("sso.server")
T = TypeVar("T")

_IDENTITY_DISABLED = select(Identity.__table__.c.disabled).where(Identity.__table__.c.sub == bindparam("sub"))
"""Asked on every token for a person (R-SSO-1): built once."""
_SESSION_SID = select(SsoSession.__table__.c.sid).where(SsoSession.__table__.c.id == bindparam("id"))

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


@dataclass
class OAuthUser:
    ctx: service.AuthContext
    family_id: str | None = None
    family_expires_at: Any = None
    refresh_value: str | None = None
    """The refresh token to issue: its hash is recorded when the old one is claimed."""
    claim: Any = None
    """Code and refresh grants: the code's or the old refresh token's row, claimed only once the
    new tokens are signed (:class:`ClaimLast`)."""
    issued: dict[str, Any] = field(default_factory=dict)
    """What the tokens of this request are (``jti``, ``exp`` of the access token, the refresh
    ``family``): a code's claim records them, so a replay of the code can revoke them."""
    writes: list[Callable[[], Any]] = field(default_factory=list)
    """The writes that follow a successful claim (the new refresh token, the audit event)."""

    def get_user_id(self) -> str:
        return self.ctx.sub

    def write(self, op: Callable[[], T]) -> T | None:
        """Run a write now — or, when a credential is claimed last, keep it for after the claim
        (:meth:`ClaimLast.create_token_response`) and answer None."""
        if self.claim is None:
            return op()
        self.writes.append(op)
        return None


class StoredCode:
    def __init__(self, row: Any) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return str(self.row.redirect_uri)

    def get_scope(self) -> str:
        return str(self.row.scope)

    def get_nonce(self) -> str | None:
        return self.row.nonce  # type: ignore[no-any-return]


class StoredRefresh:
    def __init__(self, row: Any) -> None:
        self.row = row

    def check_client(self, client: OAuthClient) -> bool:
        return bool(self.row.client_id == client.client_id)

    def get_scope(self) -> str:
        return str(self.row.scope)


class NetworkNotAllowed(OAuth2Error):  # type: ignore[misc]
    """R-SSO-5: the authenticated client may not connect from the caller's network."""

    error = "access_denied"
    status_code = 403
    description = "This client may not connect from this network."


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only; required for public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        data = request.payload.data
        if request.client.row.public and not data.get("code_challenge"):
            raise InvalidRequestError(
                description="PKCE (code_challenge with S256) is required for public clients.",
                redirect_uri=redirect_uri,
            )
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                description="code_challenge_method must be S256.", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)


#: An expiry beyond any token's, for asking the claim hooks once per request.
FAR_FUTURE = 2**40


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


class IdTokenHook:
    """Adds the ID token to code and refresh responses when ``openid`` was granted."""

    def __init__(self, server: IamAuthorizationServer) -> None:
        self.server = server

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_create_token_response", self.process_token)

    def process_token(self, grant: Any, response: Any) -> Any:
        _, token, _ = response
        scope = token.get("scope")
        if not scope or not is_openid_scope(scope):
            return token
        request = grant.request
        user: OAuthUser = request.user
        code = getattr(request, "authorization_code", None)
        nonce = code.get_nonce() if code is not None else None
        token["id_token"] = self.server.id_token(
            client=request.client.row,
            user=user,
            scope=scope,
            nonce=nonce,
            access_token=token.get("access_token"),
        )
        return token


class ClientScopes:
    """R-SSO-3: a client gets only the scopes registered for it; anything else is refused."""

    request: Any

    def validate_requested_scope(self) -> None:
        scope = self.request.payload.scope
        if not scope:
            return
        allowed = set(self.request.client.row.scopes)
        if not set(scope.split()) <= allowed:
            raise InvalidScopeError(description="The client may not request this scope.")


class ClaimLast:
    """Grants that redeem a credential (the code, the old refresh token): authlib's checks and
    both new tokens first, then the writes — the credential is claimed (atomically: of two
    concurrent uses exactly one wins, the other is a replay), and the new refresh token and the
    audit event are written right after the claim. Until the claim nothing is written, so on
    SQLite the write lock is held for these writes and the commit alone (issue 18). A lost claim
    answers ``invalid_grant``; nothing signed is sent."""

    request: Any

    def claim(self, user: OAuthUser) -> bool:
        raise NotImplementedError

    def create_token_response(self) -> Any:
        result = super().create_token_response()  # type: ignore[misc]
        user: OAuthUser = self.request.user
        if user.claim is None or not self.claim(user):
            raise InvalidGrantError()
        for write in user.writes:
            write()
        return result


class AuthorizationCodeGrant(ClaimLast, ClientScopes, grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        """Saved by :meth:`generate_authorization_code`, which keeps only the hash."""

    def generate_authorization_code(self) -> str:
        request = self.request
        user: OAuthUser = request.user
        payload = request.payload
        return service.save_code(
            _db(),
            _services().settings,
            client_id=request.client.client_id,
            ctx=user.ctx,
            redirect_uri=payload.redirect_uri,
            scope=payload.scope or "",
            nonce=payload.data.get("nonce"),
            code_challenge=payload.data.get("code_challenge"),
            code_challenge_method=payload.data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: OAuthClient) -> StoredCode | None:
        row = service.find_code(web_reader(), _db(), code, client.client_id)
        return StoredCode(row) if row else None

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Codes are marked used, not deleted (by :meth:`claim`): a replay must be recognised."""

    def authenticate_user(self, authorization_code: StoredCode) -> OAuthUser | None:
        row = authorization_code.row
        if not self.server.user_is_active(row.sub):
            return None
        return OAuthUser(
            service.AuthContext.of(row),
            family_id=service.new_family_id(),
            refresh_value=service.new_refresh_value(),
            claim=row,
        )

    def claim(self, user: OAuthUser) -> bool:
        issued = user.issued
        return service.claim_code(
            _db(), user.claim, jti=issued.get("jti"), exp=issued.get("exp"), family_id=issued.get("family")
        )


class RefreshTokenGrant(ClaimLast, ClientScopes, grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
        client_id = self.request.client.client_id
        grace = self.server.services.settings.tokens.refresh_retry_grace_seconds
        row = service.find_refresh_token_for(web_reader(), _db(), refresh_token, client_id, retry_grace=grace)
        return StoredRefresh(row) if row else None

    def authenticate_user(self, refresh_token: StoredRefresh) -> OAuthUser | None:
        row = refresh_token.row
        if not self.server.user_is_active(row.sub):
            service.revoke_family(_db(), row.family_id)
            raise InvalidGrantError("The account can no longer sign in.")
        ctx = service.AuthContext.of(row)
        return OAuthUser(
            ctx,
            family_id=row.family_id,
            family_expires_at=row.expires_at,
            refresh_value=service.new_refresh_value(),
            claim=row,
        )

    def claim(self, user: OAuthUser) -> bool:
        return service.claim_refresh_token(_db(), user.claim, token_hash(user.refresh_value or ""))

    def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
        """Nothing to do: :meth:`claim` marks the old token used."""


class ClientCredentialsGrant(ClientScopes, grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [m for m in AUTH_METHODS if m != AuthMethod.NONE]


class IamAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """One per application instance (authlib's registries are lists on the instance)."""

    def __init__(self, app: Flask, services: Services, signer: Signer) -> None:
        self.services = services
        self.signer = signer
        self.directory_cache = DirectoryCache(services.settings.tokens.directory_cache_seconds)
        super().__init__(app=None, query_client=self._query_client, save_token=self._save_token)
        self.init_app(app)  # first: init_app installs authlib's default token generator
        self.scopes_supported = None  # per client: see ClientScopes
        self.standard_scopes = ["openid", "profile", "email", "groups", "offline_access"]
        self.register_token_generator("default", self._generate_token)
        self.register_client_auth_method("client_secret_jwt", ClientSecretJwt(self))
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(self))
        self.register_grant(AuthorizationCodeGrant, [S256Only(required=True), IdTokenHook(self)])
        self.register_grant(RefreshTokenGrant, [IdTokenHook(self)])
        self.register_grant(ClientCredentialsGrant)

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Any:
        """authlib's client authentication, then the client's allowed networks (R-SSO-5) — checked
        against the client that actually authenticated, whatever the method."""
        client = super().authenticate_client(request, methods, endpoint)
        g.iam_authenticated_client = client.client_id
        if not client_service.network_allowed(client.row, g.get("client_ip")):
            g.iam_network_refused = True
            audit.record(
                _db(),
                "token.refused",
                severity=audit.Severity.SIGNIFICANT,
                outcome="failure",
                client_id=client.client_id,
                ip=g.get("client_ip"),
                user_agent=g.get("user_agent"),
                details={"reason": "network_not_allowed", "endpoint": endpoint},
            )
            raise NetworkNotAllowed()
        return client

    # -- storage ------------------------------------------------------------------------------
    def _query_client(self, client_id: str) -> OAuthClient | None:
        row = load_client(client_id)
        if row is None or row.disabled:
            return None
        return OAuthClient(row)

    def _save_token(self, token: dict[str, Any], request: Any) -> None:
        user: OAuthUser | None = request.user
        record = functools.partial(
            audit.record,
            _db(),
            "token.issued",
            actor=user.ctx.sub if user else request.client.client_id,
            subject=user.ctx.sub if user else None,
            client_id=request.client.client_id,
            ip=g.get("client_ip"),
            user_agent=g.get("user_agent"),
            details={
                "grant_type": request.payload.grant_type if request.payload else None,
                "scope": token.get("scope"),
                "jti": token.get("_jti"),
                "refresh": "refresh_token" in token,
            },
        )
        if user is None:
            record()
        else:
            user.write(record)
        token.pop("_jti", None)

    def directory_user(self, sub: str) -> Any:
        """The directory's view of ``sub``: read once per request, and trusted for
        ``tokens.directory_cache_seconds`` across requests (:mod:`sso.usercache`)."""
        memo: dict[str, Any] = g.setdefault("iam_dir_users", {})
        if sub not in memo:
            memo[sub] = self.directory_cache.get("user", sub, lambda: self.services.directory.get_user(sub))
        return memo[sub]

    def directory_groups(self, user_id: str) -> list[str]:
        return self.directory_cache.get(
            "groups", user_id, lambda: self.services.directory.user_groups(user_id)
        )

    def hooked_claims(self, sub: str, exp: int) -> dict[str, Any]:
        """The feature packages' claims (:func:`sso.claims.token_extras`) for a token about
        ``sub`` expiring at ``exp``, asked once per request: hooks may only shorten ``exp``, so
        one answer for the farthest expiry serves the access and the ID token alike."""
        memo: dict[str, dict[str, Any]] = g.setdefault("iam_token_extras", {})
        if sub not in memo:
            memo[sub] = token_extras(web_reader(), sub, FAR_FUTURE)
        out = dict(memo[sub])
        if "exp" in out:
            out["exp"] = min(exp, int(out["exp"]))
        return out

    def session_sid(self, session_id: str) -> str | None:
        """The ``sid`` claim of the SSO session a token belongs to (read once per request,
        from the request's reads: the session was committed when the person signed in)."""
        memo: dict[str, str | None] = g.setdefault("iam_sso_sids", {})
        if session_id not in memo:
            memo[session_id] = web_reader().connection().execute(_SESSION_SID, {"id": session_id}).scalar()
        return memo[session_id]

    def user_is_active(self, sub: str) -> bool:
        """R-SSO-1: a disabled or locked directory account gets no tokens."""
        if web_reader().connection().execute(_IDENTITY_DISABLED, {"sub": sub}).scalar():
            return False
        try:
            user = self.directory_user(sub)
        except DirectoryError as exc:
            log.warning("directory check of %s failed, refusing tokens: %s", sub, type(exc).__name__)
            return False
        return user is not None and user.enabled and not user.locked

    # -- tokens -------------------------------------------------------------------------------
    def audiences_for(self, client: Client, requested: list[str]) -> list[str]:
        """RFC 8707: the requested resources, each one the client may ask for — its registered
        audiences, and the provider's own API (``settings.api_resource``: the scopes still decide
        what the token may do there). Without a request: the client's audiences or its id."""
        if requested:
            own_api = self.services.settings.api_resource
            bad = [a for a in requested if a not in client.audiences and a != own_api]
            if bad:
                raise InvalidScopeError(description="The requested audience is not allowed for this client.")
            return requested
        return list(client.audiences) or [client.client_id]

    def _generate_token(
        self,
        grant_type: str,
        client: OAuthClient,
        user: OAuthUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        from flask import request as flask_request

        settings = self.services.settings
        row = client.row
        scope = scope or ""
        requested = flask_request.form.getlist("resource") + flask_request.form.getlist("audience")
        audience = self.audiences_for(row, requested)
        lifetime = settings.tokens.access_token_lifetime
        extra: dict[str, Any] = {}
        if row.agency_code:
            extra["agency_code"] = row.agency_code
        if user is not None:
            extra.update(
                {
                    "auth_time": int(user.ctx.auth_time.timestamp()),
                    "acr": user.ctx.acr,
                    "amr": list(user.ctx.amr),
                }
            )
            if user.ctx.session_id:
                sid = self.session_sid(user.ctx.session_id)
                if sid is not None:
                    extra["sid"] = sid
            hooked = self.hooked_claims(user.ctx.sub, clock.timestamp() + lifetime)
            if "exp" in hooked:  # a package shortened it (PIM: never outlive an elevation)
                lifetime = max(int(hooked.pop("exp")) - clock.timestamp(), 0)
            extra.update(hooked)
        sub = user.ctx.sub if user else row.client_id
        access, claims = self.signer.access_token(
            client_id=row.client_id,
            sub=sub,
            scope=scope,
            audience=audience,
            lifetime=lifetime,
            extra=extra,
        )
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access,
            "expires_in": lifetime,
            "scope": scope,
            "_jti": claims["jti"],
        }
        if user is not None:  # a replay of the code revokes this token (RFC 6749 §4.1.2)
            user.issued.update(jti=claims["jti"], exp=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC))
        if user is not None and include_refresh_token and "refresh_token" in row.grant_types:
            store = functools.partial(
                service.issue_refresh_token,
                _db(),
                settings,
                client_id=row.client_id,
                ctx=user.ctx,
                scope=scope,
                family_id=user.family_id,
                family_expires_at=user.family_expires_at,
                value=user.refresh_value,
            )
            stored = user.write(store)
            if stored is None:  # stored after the claim, with the value and family chosen before
                token["refresh_token"] = user.refresh_value
                user.issued["family"] = user.family_id
            else:
                token["refresh_token"] = stored[0]
        return token

    def id_token(
        self,
        *,
        client: Client,
        user: OAuthUser,
        scope: str,
        nonce: str | None,
        access_token: str | None,
    ) -> str:
        settings = self.services.settings
        now = clock.timestamp()
        alg = client.id_token_alg or settings.tokens.signing_alg
        dir_user = self.directory_user(user.ctx.sub)
        scopes = set(scope.split())
        claims: dict[str, Any] = {}
        if dir_user is not None:
            groups = self.directory_groups(dir_user.id) if "groups" in scopes else []
            claims.update(user_claims(dir_user, groups, scopes))
        claims.update(
            {
                "iss": settings.issuer,
                "sub": user.ctx.sub,
                "aud": client.client_id,
                "azp": client.client_id,
                "iat": now,
                "exp": now + settings.tokens.id_token_lifetime,
                "auth_time": int(user.ctx.auth_time.timestamp()),
                "acr": user.ctx.acr,
                "amr": list(user.ctx.amr),
            }
        )
        claims.update(self.hooked_claims(user.ctx.sub, int(claims["exp"])))
        if nonce:
            claims["nonce"] = nonce
        if client.agency_code:
            claims["agency_code"] = client.agency_code
        if user.ctx.session_id:
            sid = self.session_sid(user.ctx.session_id)
            if sid is not None:
                claims["sid"] = sid
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        return self.signer.sign(claims, alg=alg)

    def deny(self) -> AccessDeniedError:
        return AccessDeniedError()
