"""The authorization server: one per application instance, with our grants, client
authentication, token generation and storage."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import TYPE_CHECKING, Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidScopeError
from flask import Flask, g
from sqlalchemy import bindparam, select

from iam import audit, clock
from iam.directory.errors import DirectoryError
from iam.models.identity import Identity
from iam.web import reader as web_reader
from sso import clients as client_service
from sso import service
from sso.claims import token_extras, user_claims
from sso.models import Client, SsoSession
from sso.server.clients import ClientSecretJwt, OAuthClient, PrivateKeyJwt, _db, load_client
from sso.server.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    IdTokenHook,
    NetworkNotAllowed,
    OAuthUser,
    RefreshTokenGrant,
    S256Only,
)
from sso.tokens import Signer, half_hash
from sso.usercache import DirectoryCache

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("sso.server")

_IDENTITY_DISABLED = select(Identity.__table__.c.disabled).where(Identity.__table__.c.sub == bindparam("sub"))
"""Asked on every token for a person (R-SSO-1): built once."""
_SESSION_SID = select(SsoSession.__table__.c.sid).where(SsoSession.__table__.c.id == bindparam("id"))


#: An expiry beyond any token's, for asking the claim hooks once per request.
FAR_FUTURE = 2**40


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
