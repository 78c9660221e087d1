"""Card sign-in as domain operations: validate a presented certificate, map it to an account,
bind cards, manage uploaded CAs and account requests. Takes a Session; never imports Flask;
each state change writes its audit event in the same transaction.

Rooms: ``validation`` (validator, sign-in), ``bindings``, ``cas`` (uploaded CAs),
``requests`` (account requests, R-MFA-2).
"""

from sso.x509.service.bindings import bind, binding_dict, has_card, list_bindings, revoke_binding
from sso.x509.service.cas import add_ca, list_anchors, remove_ca
from sso.x509.service.requests import (
    approve_request,
    deny_request,
    list_requests,
    proposed_account,
    request_account,
    request_dict,
)
from sso.x509.service.validation import (
    CardValidator,
    Validated,
    cert_details,
    sign_in,
    tls_refused,
    trust_dir,
    validator_for,
)

__all__ = [
    "CardValidator",
    "Validated",
    "add_ca",
    "list_anchors",
    "approve_request",
    "bind",
    "binding_dict",
    "cert_details",
    "deny_request",
    "has_card",
    "list_bindings",
    "list_requests",
    "proposed_account",
    "remove_ca",
    "request_account",
    "request_dict",
    "revoke_binding",
    "sign_in",
    "tls_refused",
    "trust_dir",
    "validator_for",
]
