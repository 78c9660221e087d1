"""Registered applications: validation, secrets, networks (R-SSO-2..5)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, cluster, events
from iam.crypto import Cipher, equal, token_hash
from iam.errors import Conflict, NotFound, ValidationFailed
from sso.models import AuthMethod, Client

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SUPPORTED_SCOPES = ("openid", "profile", "email", "groups", "offline_access")


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
    id_token_alg: str | None = None
    client_id: str | None = None
    require_acr: str | None = None
    """Minimum level of assurance (a name from ``mfa.levels``; checked by the caller)."""


def _check_uri(uri: str, what: str, *, allow_http: bool) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValidationFailed(f"The {what} {uri!r} is not an absolute http(s) URL.")
    if parts.fragment:
        raise ValidationFailed(f"The {what} {uri!r} must not contain a fragment.")
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not (allow_http or local):
        raise ValidationFailed(f"The {what} {uri!r} must use https.")


def validate_spec(spec: ClientSpec, *, allow_http: bool) -> None:
    if not spec.name.strip():
        raise ValidationFailed("A client needs a name.")
    try:
        method = AuthMethod(spec.token_endpoint_auth_method)
    except ValueError:
        allowed = ", ".join(m.value for m in AuthMethod)
        raise ValidationFailed(
            f"Unknown token endpoint auth method {spec.token_endpoint_auth_method!r}; use one of {allowed}."
        ) from None
    bad = [g for g in spec.grant_types if g not in GRANT_TYPES]
    if bad or not spec.grant_types:
        raise ValidationFailed(f"Unsupported grant type(s) {bad or '(none)'}; use {', '.join(GRANT_TYPES)}.")
    if "authorization_code" in spec.grant_types and not spec.redirect_uris:
        raise ValidationFailed("A client using the authorization code grant needs a redirect URI.")
    if "refresh_token" in spec.grant_types and "authorization_code" not in spec.grant_types:
        raise ValidationFailed("The refresh_token grant needs the authorization_code grant.")
    if method == AuthMethod.NONE and "client_credentials" in spec.grant_types:
        raise ValidationFailed("A public client cannot use the client credentials grant.")
    if method == AuthMethod.PRIVATE_KEY_JWT:
        if not spec.jwks:
            raise ValidationFailed("private_key_jwt needs the client's public keys (--jwks).")
        try:
            KeySet.import_key_set(spec.jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise ValidationFailed("The client's JWKS is not a valid JSON Web Key Set.") from None
    for uri in spec.redirect_uris:
        _check_uri(uri, "redirect URI", allow_http=allow_http)
    for uri in spec.post_logout_redirect_uris:
        _check_uri(uri, "post-logout redirect URI", allow_http=allow_http)
    if spec.backchannel_logout_uri:
        _check_uri(spec.backchannel_logout_uri, "back-channel logout URI", allow_http=allow_http)
    for net in spec.allowed_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ValidationFailed(f"{net!r} is not an IP address or network.") from None
    unknown = [s for s in spec.scopes if not s or " " in s]
    if unknown:
        raise ValidationFailed("Scopes must be single words.")
    if spec.id_token_alg and spec.id_token_alg not in ("ES256", "RS256"):
        raise ValidationFailed("The ID token algorithm must be ES256 or RS256.")


def create_client(
    session: Session, cipher: Cipher, spec: ClientSpec, *, actor: str, allow_http: bool
) -> tuple[Client, str | None]:
    """Register a client; return it and, for confidential clients, the secret (shown once)."""
    validate_spec(spec, allow_http=allow_http)
    # never starting with '-' (a command line would read it as an option)
    client_id = spec.client_id or "c" + secrets.token_urlsafe(18)
    if session.get(Client, client_id) is not None:
        raise Conflict(f"A client with id {client_id!r} already exists.")
    method = AuthMethod(spec.token_endpoint_auth_method)
    secret: str | None = None
    row = Client(
        client_id=client_id,
        name=spec.name.strip(),
        token_endpoint_auth_method=method,
        redirect_uris=list(dict.fromkeys(spec.redirect_uris)),
        post_logout_redirect_uris=list(dict.fromkeys(spec.post_logout_redirect_uris)),
        grant_types=list(dict.fromkeys(spec.grant_types)),
        scopes=list(dict.fromkeys(spec.scopes)),
        audiences=list(dict.fromkeys(spec.audiences)),
        jwks=spec.jwks,
        backchannel_logout_uri=spec.backchannel_logout_uri,
        allowed_networks=spec.allowed_networks,
        agency_code=spec.agency_code,
        require_consent=spec.require_consent,
        id_token_alg=spec.id_token_alg,
        require_acr=spec.require_acr or None,
        disabled=False,
    )
    if method in (
        AuthMethod.CLIENT_SECRET_BASIC,
        AuthMethod.CLIENT_SECRET_POST,
        AuthMethod.CLIENT_SECRET_JWT,
    ):
        secret = secrets.token_urlsafe(32)
        row.secret_hash = token_hash(secret)
        if method == AuthMethod.CLIENT_SECRET_JWT:
            row.secret_encrypted = cipher.encrypt(secret.encode(), context=client_id.encode())
    session.add(row)
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.created",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={"name": row.name, "grant_types": row.grant_types, "auth_method": str(method)},
    )
    return row, secret


def _changed(session: Session, client_id: str) -> None:
    """Drop the cached registration in this process now and in every other process when the
    transaction commits (``iam.cluster``)."""
    events.client_changed.send(client_id)
    cluster.notify(session, "client", client_id)


def get_client(session: Session, client_id: str) -> Client:
    row = session.get(Client, client_id)
    if row is None:
        raise NotFound(f"There is no client {client_id!r}.")
    return row


def list_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.name)))


def remove_client(session: Session, client_id: str, *, actor: str) -> None:
    row = get_client(session, client_id)
    session.delete(row)
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.removed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={"name": row.name},
    )


def set_disabled(session: Session, client_id: str, disabled: bool, *, actor: str) -> Client:
    row = get_client(session, client_id)
    row.disabled = disabled
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.disabled" if disabled else "client.enabled",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
    )
    return row


def set_required_level(session: Session, client_id: str, level: str | None, *, actor: str) -> Client:
    """Set (or with None clear) the client's minimum level of assurance (R-MFA-4)."""
    row = get_client(session, client_id)
    before = row.require_acr
    row.require_acr = level or None
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.required_level_changed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={"before": before, "after": row.require_acr},
    )
    return row


def check_secret(client: Client, secret: str) -> bool:
    if not client.secret_hash or not secret:
        return False
    return equal(client.secret_hash, token_hash(secret))


def client_secret_for_jwt(client: Client, cipher: Cipher) -> str | None:
    if client.secret_encrypted is None:
        return None
    return cipher.decrypt(client.secret_encrypted, context=client.client_id.encode()).decode()


def network_allowed(client: Client, ip: str | None) -> bool:
    """R-SSO-5: an empty list allows every network."""
    if not client.allowed_networks:
        return True
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in client.allowed_networks)


def client_as_dict(client: Client, secret: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client_id": client.client_id,
        "client_name": client.name,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scope": " ".join(client.scopes),
        "audiences": client.audiences,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "allowed_networks": client.allowed_networks,
        "agency_code": client.agency_code,
        "require_consent": client.require_consent,
        "disabled": client.disabled,
        "public": client.public,
        "require_acr": client.require_acr,
        "created_at": client.created_at.isoformat(),
    }
    if client.jwks:
        data["jwks"] = client.jwks
    if secret is not None:
        data["client_secret"] = secret
    return data


def parse_jwks(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValidationFailed("The JWKS is not valid JSON.") from None
    if not isinstance(value, dict) or "keys" not in value:
        raise ValidationFailed('The JWKS must be an object with a "keys" list.')
    return value
