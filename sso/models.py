"""Tables of the OpenID Connect provider. Codes, tokens and secrets are stored hashed."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from iam import clock
from iam.db import Base


class AuthMethod(enum.StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 — a method name
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    CLIENT_SECRET_JWT = "client_secret_jwt"  # noqa: S105
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


class Client(Base):
    """A registered application (R-SSO-2, R-SSO-3)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    """Only for ``client_secret_jwt``, whose HMAC check needs the secret itself."""
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    jwks: Mapped[dict[str, object] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(1024))
    """Where the client publishes its public keys (``private_key_jwt``), instead of ``jwks``."""
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(1024))
    allowed_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    agency_code: Mapped[str | None] = mapped_column(String(64))
    require_consent: Mapped[bool] = mapped_column(default=False)
    id_token_alg: Mapped[str | None] = mapped_column(String(16))
    require_acr: Mapped[str | None] = mapped_column(String(32))
    """Minimum level of assurance (an ``mfa.levels`` name) for signing in to this client."""
    description: Mapped[str | None] = mapped_column(Text)
    """What the application is for, shown on the portal."""
    logo_uri: Mapped[str | None] = mapped_column(String(1024))
    """Logo shown on the portal: an https URL or a path under ``/static/``."""
    launch_uri: Mapped[str | None] = mapped_column(String(1024))
    """Where the portal opens the application; without it the portal does not list it."""
    allowed_groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Who may use it: directory groups (nested membership counts). Empty: everyone. Enforced
    at ``/authorize``; the portal lists the application only to members."""
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[dt.datetime] = mapped_column(default=clock.now, onupdate=clock.now)

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == AuthMethod.NONE


class SigningKey(Base):
    """Token-signing keys; the private part is AES-GCM encrypted at rest (R-OPS-1)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[dict[str, object]] = mapped_column(JSON)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    activated_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    publish_until: Mapped[dt.datetime | None]


class KeyStatus(enum.StrEnum):
    NEXT = "next"  # published, not yet signing
    ACTIVE = "active"  # signs new tokens
    RETIRED = "retired"  # published until every token it signed has expired
    REMOVED = "removed"


class SsoSession(Base):
    """The single sign-on session. The cookie carries a secret; we store its hash."""

    __tablename__ = "sso_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    sid: Mapped[str] = mapped_column(String(64), unique=True)  # public id (OIDC ``sid``)
    sub: Mapped[str] = mapped_column(String(64), index=True)
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[dt.datetime]
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ended_at: Mapped[dt.datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))


class SessionClient(Base):
    """Which clients a session has signed in to (for logout fan-out)."""

    __tablename__ = "sso_session_clients"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    first_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    family_id: Mapped[str | None] = mapped_column(String(64))
    """Refresh-token family issued from this code; revoked if the code is replayed."""
    access_jti: Mapped[str | None] = mapped_column(String(64))
    """``jti`` of the access token issued for this code; revoked if the code is replayed."""
    access_expires_at: Mapped[dt.datetime | None]


class RefreshToken(Base):
    """One refresh token. A family shares ``family_id``; using a rotated token revokes it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_sub", "sub"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(32))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    replaced_by: Mapped[str | None] = mapped_column(String(64))
    """The hash of the token its rotation issued (set in the same write that marks it used)."""
    revoked_reason: Mapped[str | None] = mapped_column(String(32))
    """``superseded`` when a retry within ``tokens.refresh_retry_grace_seconds`` replaced it."""


class RevokedAccessToken(Base):
    """JWT access tokens revoked before their expiry (checked by introspection and userinfo)."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class UsedAssertion(Base):
    """``jti`` of client assertions already used (no replay of client_secret_jwt/private_key_jwt)."""

    __tablename__ = "used_client_assertions"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class Consent(Base):
    """A user's consent to a third-party client (first-party clients need none)."""

    __tablename__ = "consents"

    sub: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[dt.datetime] = mapped_column(default=clock.now)


# the tables of the second factors belong to this package's metadata too
from sso.mfa import models as _mfa_models  # noqa: E402, F401
from sso.x509 import models as _x509_models  # noqa: E402, F401


class PolicyAcceptance(Base):
    """A person accepted a version of the security policy (R-SSO-6: the signed statement)."""

    __tablename__ = "policy_acceptances"
    __table_args__ = (Index("ix_policy_acceptances_sub_version", "sub", "version", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    sub: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(64), index=True)
    """SHA-256 of the policy files at the time (see ``sso.policy.service.load``)."""
    language: Mapped[str] = mapped_column(String(16))
    """The language of the text the person was shown."""
    accepted_at: Mapped[dt.datetime] = mapped_column(default=clock.now)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
