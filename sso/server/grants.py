"""Our authlib grants (authorization code, refresh token, client credentials), PKCE S256, the ID
token hook, and the objects they hand to authlib."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants.util import is_openid_scope

from iam.crypto import token_hash
from iam.web import reader as web_reader
from sso import service
from sso.models import AuthMethod
from sso.server.clients import AUTH_METHODS, OAuthClient, _db, _services

if TYPE_CHECKING:
    from sso.server.authorization import IamAuthorizationServer


T = TypeVar("T")


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
