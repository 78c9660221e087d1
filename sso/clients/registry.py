"""Registered applications in the database: register, change, disable, remove, rotate the
secret (returned once, stored as a hash), recent activity, and the checks the token endpoint
uses (secret, networks)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, cluster, events
from iam.crypto import Cipher, equal, token_hash
from iam.errors import Conflict, NotFound, ValidationFailed
from iam.models.audit import AuditEvent
from sso.clients.validation import (
    SECRET_METHODS,
    ClientSpec,
    PortalFields,
    check_portal_fields,
    validate_spec,
)
from sso.models import AuthMethod, Client


def create_client(
    session: Session,
    cipher: Cipher,
    spec: ClientSpec,
    *,
    actor: str,
    allow_http: bool,
    reason: str = "",
    ip: str | None = None,
) -> tuple[Client, str | None]:
    """Register a client; return it and, for confidential clients, the secret (shown once)."""
    validate_spec(spec, allow_http=allow_http)
    # never starting with '-' (a command line would read it as an option)
    client_id = spec.client_id or "c" + secrets.token_urlsafe(18)
    if session.get(Client, client_id) is not None:
        raise Conflict(f"A client with id {client_id!r} already exists.")
    method = AuthMethod(spec.token_endpoint_auth_method)
    secret: str | None = None
    row = Client(client_id=client_id, disabled=False)
    _write(row, spec)
    if method in SECRET_METHODS:
        secret = _new_secret(row, cipher)
    session.add(row)
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.created",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        ip=ip,
        details={
            "name": row.name,
            "grant_types": row.grant_types,
            "auth_method": str(method),
            **({"reason": reason} if reason else {}),
        },
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


def remove_client(
    session: Session, client_id: str, *, actor: str, reason: str = "", ip: str | None = None
) -> None:
    row = get_client(session, client_id)
    session.delete(row)
    session.flush()
    _changed(session, client_id)
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
    _changed(session, client_id)
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


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _optional(value: str | None) -> str | None:
    return value or None


def _same(value: Any) -> Any:
    return value


_TO_ROW: dict[str, Callable[[Any], Any]] = {
    "name": str.strip,
    "token_endpoint_auth_method": AuthMethod,
    **dict.fromkeys(
        ("redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audiences"), _unique
    ),
    "allowed_networks": list,
    "require_consent": _same,
    "jwks": _same,
    "description": lambda text: (text or "").strip() or None,
    "allowed_groups": lambda groups: _unique(g.strip() for g in groups),
}
"""How a setting of :class:`ClientSpec` (or :class:`PortalFields`) is stored in the column of
the same name; a setting not named here is optional text, stored as given or NULL when empty."""

_TO_SPEC: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(
        ("redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audiences"), list
    ),
    "allowed_networks": list,
    "allowed_groups": lambda groups: list(groups or []),
    "jwks": lambda jwks: dict(jwks) if jwks else None,
}
"""How a column is read back into the :class:`ClientSpec` setting of the same name (copies, so
that editing the spec leaves the row alone); a column not named here is taken as it is."""


def _write(row: Client, settings: ClientSpec | PortalFields) -> None:
    """Store every setting of SETTINGS (but the client id, which never changes) in ROW, each
    normalised as :data:`_TO_ROW` says."""
    for f in fields(settings):
        if f.name != "client_id":
            setattr(row, f.name, _TO_ROW.get(f.name, _optional)(getattr(settings, f.name)))


def spec_of(client: Client) -> ClientSpec:
    """The registration of a client as a :class:`ClientSpec` (to edit it)."""
    return ClientSpec(
        **{f.name: _TO_SPEC.get(f.name, _same)(getattr(client, f.name)) for f in fields(ClientSpec)}
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
    _write(row, spec)
    if method != AuthMethod.PRIVATE_KEY_JWT:  # a move away from private_key_jwt drops its keys
        row.jwks = None
        row.jwks_uri = None
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
    _changed(session, client_id)
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
    _changed(session, client_id)
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
        "description": client.description,
        "logo_uri": client.logo_uri,
        "launch_uri": client.launch_uri,
        "allowed_groups": list(client.allowed_groups or []),
        "created_at": client.created_at.isoformat(),
    }
    if client.jwks:
        data["jwks"] = client.jwks
    if client.jwks_uri:
        data["jwks_uri"] = client.jwks_uri
    if secret is not None:
        data["client_secret"] = secret
    return data


def set_portal_fields(
    session: Session, client_id: str, portal: PortalFields, *, actor: str, allow_http: bool
) -> Client:
    """Set how the portal shows the application and which groups may use it."""
    check_portal_fields(portal, allow_http=allow_http)
    row = get_client(session, client_id)
    before = {"allowed_groups": list(row.allowed_groups or [])}
    _write(row, portal)
    session.flush()
    _changed(session, client_id)
    audit.record(
        session,
        "client.portal_changed",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        client_id=client_id,
        details={
            "before": before,
            "allowed_groups": row.allowed_groups,
            "launch_uri": row.launch_uri,
            "logo_uri": row.logo_uri,
        },
    )
    return row


def may_use(client: Client, groups: list[str]) -> bool:
    """Whether a person in ``groups`` (nested membership, any case) may use ``client``: an
    empty "who may use it" list lets everyone in."""
    wanted = {g.casefold() for g in client.allowed_groups or []}
    return not wanted or bool(wanted & {g.casefold() for g in groups})
