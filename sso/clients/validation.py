"""What a registration may say (R-SSO-2..5): the settings of a client, their validation — the
same for the CLI, the API and the console, whose form shows each message next to the setting
named by :attr:`InvalidClient.field`."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from iam.errors import ValidationFailed
from sso.models import AuthMethod

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SUPPORTED_SCOPES = ("openid", "profile", "email", "groups", "offline_access")
SECRET_METHODS = (
    AuthMethod.CLIENT_SECRET_BASIC,
    AuthMethod.CLIENT_SECRET_POST,
    AuthMethod.CLIENT_SECRET_JWT,
)
"""Authentication methods that use a client secret."""


@dataclass
class ClientSpec:
    """What an administrator registers. Validated by :func:`validate_spec`."""

    name: str
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scopes: list[str] = field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    audiences: list[str] = field(default_factory=list)
    token_endpoint_auth_method: str = AuthMethod.CLIENT_SECRET_BASIC
    backchannel_logout_uri: str | None = None
    allowed_networks: list[str] = field(default_factory=list)
    agency_code: str | None = None
    require_consent: bool = False
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    """Where the client publishes its public keys (``private_key_jwt``; instead of ``jwks``)."""
    id_token_alg: str | None = None
    client_id: str | None = None
    require_acr: str | None = None
    """Minimum level of assurance (a name from ``mfa.levels``; checked by the caller)."""


class InvalidClient(ValidationFailed):
    """A registration was refused; ``field`` names the setting at fault (the console shows the
    message next to it; the CLI and API show the message)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _check_uri(uri: str, what: str, *, allow_http: bool, field: str) -> None:
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise InvalidClient(f"The {what} {uri!r} is not an absolute http(s) URL.", field) from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise InvalidClient(f"The {what} {uri!r} is not an absolute http(s) URL.", field)
    if parts.fragment:
        raise InvalidClient(f"The {what} {uri!r} must not contain a fragment.", field)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not (allow_http or local):
        raise InvalidClient(f"The {what} {uri!r} must use https.", field)


def validate_spec(spec: ClientSpec, *, allow_http: bool) -> None:
    """Refuse an invalid registration with :class:`InvalidClient` (nothing is stored)."""
    if not spec.name.strip():
        raise InvalidClient("A client needs a name.", "name")
    try:
        method = AuthMethod(spec.token_endpoint_auth_method)
    except ValueError:
        allowed = ", ".join(m.value for m in AuthMethod)
        raise InvalidClient(
            f"Unknown token endpoint auth method {spec.token_endpoint_auth_method!r}; use one of {allowed}.",
            "token_endpoint_auth_method",
        ) from None
    bad = [g for g in spec.grant_types if g not in GRANT_TYPES]
    if bad or not spec.grant_types:
        raise InvalidClient(
            f"Unsupported grant type(s) {bad or '(none)'}; use {', '.join(GRANT_TYPES)}.", "grant_types"
        )
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        raise InvalidClient(
            "A client using the authorization code grant needs a redirect URI.", "redirect_uris"
        )
    if "refresh_token" in spec.grant_types and "authorization_code" not in spec.grant_types:
        raise InvalidClient("The refresh_token grant needs the authorization_code grant.", "grant_types")
    if method == AuthMethod.NONE and "client_credentials" in spec.grant_types:
        raise InvalidClient(
            "A public client cannot use the client credentials grant.", "token_endpoint_auth_method"
        )
    if spec.jwks_uri:
        if method != AuthMethod.PRIVATE_KEY_JWT:
            raise InvalidClient("A JWKS URI is only used with private_key_jwt.", "jwks_uri")
        if spec.jwks:
            raise InvalidClient("Give the public keys or a JWKS URI, not both.", "jwks_uri")
        _check_uri(spec.jwks_uri, "JWKS URI", allow_http=allow_http, field="jwks_uri")
    if method == AuthMethod.PRIVATE_KEY_JWT and not spec.jwks_uri:
        if not spec.jwks:
            raise InvalidClient("private_key_jwt needs the client's public keys (--jwks).", "jwks")
        try:
            KeySet.import_key_set(spec.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise InvalidClient("The client's JWKS is not a valid JSON Web Key Set.", "jwks") from None
    for uri in spec.redirect_uris:
        _check_uri(uri, "redirect URI", allow_http=allow_http, field="redirect_uris")
    for uri in spec.post_logout_redirect_uris:
        _check_uri(uri, "post-logout redirect URI", allow_http=allow_http, field="post_logout_redirect_uris")
    if spec.backchannel_logout_uri:
        _check_uri(
            spec.backchannel_logout_uri,
            "back-channel logout URI",
            allow_http=allow_http,
            field="backchannel_logout_uri",
        )
    for net in spec.allowed_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise InvalidClient(f"{net!r} is not an IP address or network.", "allowed_networks") from None
    unknown = [s for s in spec.scopes if not s or " " in s]
    if unknown:
        raise InvalidClient("Scopes must be single words.", "scopes")
    if spec.id_token_alg and spec.id_token_alg not in ("ES256", "RS256"):
        raise InvalidClient("The ID token algorithm must be ES256 or RS256.", "id_token_alg")


def parse_jwks(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidClient("The JWKS is not valid JSON.", "jwks") from None
    if not isinstance(value, dict) or "keys" not in value:
        raise InvalidClient('The JWKS must be an object with a "keys" list.', "jwks")
    return value
