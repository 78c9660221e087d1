"""Registered applications: validation, secrets, networks (R-SSO-2..5)."""

from __future__ import annotations

import ipaddress
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, events
from iam.crypto import Cipher, equal, token_hash
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.models.audit import AuditEvent
from sso.models import AuthMethod, Client

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
        jwks_uri=spec.jwks_uri or None,
        backchannel_logout_uri=spec.backchannel_logout_uri,
        allowed_networks=spec.allowed_networks,
        agency_code=spec.agency_code,
        require_consent=spec.require_consent,
        id_token_alg=spec.id_token_alg,
        require_acr=spec.require_acr or None,
        disabled=False,
    )
    if method in SECRET_METHODS:
        secret = _new_secret(row, cipher)
    session.add(row)
    session.flush()
    events.client_changed.send(client_id)
    audit.record(
        session,
        "client.created",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={"name": row.name, "grant_types": row.grant_types, "auth_method": str(method)},
    )
    return row, secret


def get_client(session: Session, client_id: str) -> Client:
    row = session.get(Client, client_id)
    if row is None:
        raise NotFound(f"There is no client {client_id!r}.")
    return row


def list_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.name)))


def remove_client(
    session: Session, client_id: str, *, actor: str, reason: str = "", ip: str | None = None
) -> None:
    row = get_client(session, client_id)
    session.delete(row)
    session.flush()
    events.client_changed.send(client_id)
    details: dict[str, Any] = {"name": row.name}
    if reason:
        details["reason"] = reason
    audit.record(
        session,
        "client.removed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        ip=ip,
        details=details,
    )


def set_disabled(
    session: Session,
    client_id: str,
    disabled: bool,
    *,
    actor: str,
    reason: str = "",
    ip: str | None = None,
) -> Client:
    row = get_client(session, client_id)
    row.disabled = disabled
    session.flush()
    events.client_changed.send(client_id)
    audit.record(
        session,
        "client.disabled" if disabled else "client.enabled",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        ip=ip,
        details={"reason": reason} if reason else None,
    )
    return row


def set_required_level(session: Session, client_id: str, level: str | None, *, actor: str) -> Client:
    """Set (or with None clear) the client's minimum level of assurance (R-MFA-4)."""
    row = get_client(session, client_id)
    before = row.require_acr
    row.require_acr = level or None
    session.flush()
    events.client_changed.send(client_id)
    audit.record(
        session,
        "client.required_level_changed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={"before": before, "after": row.require_acr},
    )
    return row


def spec_of(client: Client) -> ClientSpec:
    """The registration of a client as a :class:`ClientSpec` (to edit it)."""
    return ClientSpec(
        name=client.name,
        client_id=client.client_id,
        redirect_uris=list(client.redirect_uris),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris),
        grant_types=list(client.grant_types),
        scopes=list(client.scopes),
        audiences=list(client.audiences),
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        backchannel_logout_uri=client.backchannel_logout_uri,
        allowed_networks=list(client.allowed_networks),
        agency_code=client.agency_code,
        require_consent=client.require_consent,
        jwks=dict(client.jwks) if client.jwks else None,
        jwks_uri=client.jwks_uri,
        id_token_alg=client.id_token_alg,
        require_acr=client.require_acr,
    )


def _new_secret(row: Client, cipher: Cipher) -> str:
    secret = secrets.token_urlsafe(32)
    row.secret_hash = token_hash(secret)
    row.secret_encrypted = (
        cipher.encrypt(secret.encode(), context=row.client_id.encode())
        if row.token_endpoint_auth_method == AuthMethod.CLIENT_SECRET_JWT
        else None
    )
    return secret


def update_client(
    session: Session,
    cipher: Cipher,
    client_id: str,
    spec: ClientSpec,
    *,
    actor: str,
    allow_http: bool,
    reason: str = "",
    ip: str | None = None,
) -> tuple[Client, str | None]:
    """Change a client's registration (same validation as :func:`create_client`). Returns the
    client and, when it moved to a secret-based method without a secret, its new secret (shown
    once); a move away from a secret-based method deletes the stored secret."""
    validate_spec(spec, allow_http=allow_http)
    row = get_client(session, client_id)
    before = client_as_dict(row)
    method = AuthMethod(spec.token_endpoint_auth_method)
    old_method = row.token_endpoint_auth_method
    row.name = spec.name.strip()
    row.token_endpoint_auth_method = method
    row.redirect_uris = list(dict.fromkeys(spec.redirect_uris))
    row.post_logout_redirect_uris = list(dict.fromkeys(spec.post_logout_redirect_uris))
    row.grant_types = list(dict.fromkeys(spec.grant_types))
    row.scopes = list(dict.fromkeys(spec.scopes))
    row.audiences = list(dict.fromkeys(spec.audiences))
    row.jwks = spec.jwks if method == AuthMethod.PRIVATE_KEY_JWT else None
    row.jwks_uri = (spec.jwks_uri or None) if method == AuthMethod.PRIVATE_KEY_JWT else None
    row.backchannel_logout_uri = spec.backchannel_logout_uri or None
    row.allowed_networks = list(spec.allowed_networks)
    row.agency_code = spec.agency_code or None
    row.require_consent = spec.require_consent
    row.id_token_alg = spec.id_token_alg or None
    row.require_acr = spec.require_acr or None
    secret: str | None = None
    if method in SECRET_METHODS:
        jwt_change = (method == AuthMethod.CLIENT_SECRET_JWT) != (old_method == AuthMethod.CLIENT_SECRET_JWT)
        if not row.secret_hash or jwt_change:
            secret = _new_secret(row, cipher)
    else:
        row.secret_hash = None
        row.secret_encrypted = None
    session.flush()
    after = client_as_dict(row)
    changed = sorted(k for k in after if k not in ("updated_at",) and after.get(k) != before.get(k))
    events.client_changed.send(client_id)
    audit.record(
        session,
        "client.updated",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        ip=ip,
        details={"changed": changed, "reason": reason, "new_key_issued": secret is not None},
    )
    return row, secret


def rotate_secret(
    session: Session, cipher: Cipher, client_id: str, *, actor: str, reason: str = "", ip: str | None = None
) -> str:
    """A new secret for a confidential client; the old one stops working at once. The secret
    is returned once and stored only as a hash (encrypted too for ``client_secret_jwt``)."""
    row = get_client(session, client_id)
    if row.token_endpoint_auth_method not in SECRET_METHODS:
        raise ValidationFailed("This application does not authenticate with a secret.")
    secret = _new_secret(row, cipher)
    session.flush()
    events.client_changed.send(client_id)
    audit.record(
        session,
        "client.credential_rotated",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        ip=ip,
        details={"reason": reason},
    )
    return secret


def recent_activity(session: Session, client_id: str, *, limit: int = 20) -> list[AuditEvent]:
    """The latest audit events about one client (sign-ins, tokens, changes), newest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.client_id == client_id)
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )


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
    if client.jwks_uri:
        data["jwks_uri"] = client.jwks_uri
    if secret is not None:
        data["client_secret"] = secret
    return data


def parse_jwks(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidClient("The JWKS is not valid JSON.", "jwks") from None
    if not isinstance(value, dict) or "keys" not in value:
        raise InvalidClient('The JWKS must be an object with a "keys" list.', "jwks")
    return value


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


# -- keys published by the client (private_key_jwt with a jwks_uri) -------------------------------
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
