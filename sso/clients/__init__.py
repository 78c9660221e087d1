"""Registered applications (OpenID Connect / OAuth clients), in three rooms: ``validation``
(what a registration may say), ``registry`` (the rows: register, change, disable, remove,
rotate the secret, activity, token-endpoint checks) and ``keys`` (public keys for
``private_key_jwt``: pasted, or fetched from the client's ``jwks_uri``)."""

from sso.clients.keys import parse_public_keys, remote_jwks
from sso.clients.registry import (
    check_secret,
    client_as_dict,
    client_secret_for_jwt,
    create_client,
    get_client,
    list_clients,
    network_allowed,
    recent_activity,
    remove_client,
    rotate_secret,
    set_disabled,
    set_required_level,
    spec_of,
    update_client,
)
from sso.clients.validation import (
    GRANT_TYPES,
    SECRET_METHODS,
    SUPPORTED_SCOPES,
    ClientSpec,
    InvalidClient,
    parse_jwks,
    validate_spec,
)

__all__ = [
    "GRANT_TYPES",
    "SECRET_METHODS",
    "SUPPORTED_SCOPES",
    "ClientSpec",
    "InvalidClient",
    "check_secret",
    "client_as_dict",
    "client_secret_for_jwt",
    "create_client",
    "get_client",
    "list_clients",
    "network_allowed",
    "parse_jwks",
    "parse_public_keys",
    "recent_activity",
    "remote_jwks",
    "remove_client",
    "rotate_secret",
    "set_disabled",
    "set_required_level",
    "spec_of",
    "update_client",
    "validate_spec",
]
