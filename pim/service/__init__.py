"""PIM domain logic (no Flask): takes a Session, flushes, never commits."""

from pim.service import persons as _persons  # noqa: F401 — registers the account links
from pim.service.accounts import (
    add_eligibility,
    add_shared,
    checkout_shared,
    delete_role_override,
    eligible_roles,
    ensure_admin_account,
    put_role,
    remove_eligibility,
    rotate_for_person,
    rotate_shared_now,
)
from pim.service.common import SYSTEM, Actor, is_security_officer, may_approve
from pim.service.ending import cancel, expire, reveal_secret, review, revoke, sweep
from pim.service.queries import inbox, mine, overview, request_dict, show
from pim.service.requests import (
    StepUpRequired,
    break_glass,
    decide,
    request_elevation,
    required_level,
)

__all__ = [
    "SYSTEM",
    "Actor",
    "StepUpRequired",
    "add_eligibility",
    "add_shared",
    "break_glass",
    "cancel",
    "checkout_shared",
    "decide",
    "delete_role_override",
    "eligible_roles",
    "ensure_admin_account",
    "expire",
    "inbox",
    "is_security_officer",
    "may_approve",
    "mine",
    "overview",
    "put_role",
    "remove_eligibility",
    "rotate_shared_now",
    "request_dict",
    "request_elevation",
    "required_level",
    "reveal_secret",
    "review",
    "revoke",
    "rotate_for_person",
    "show",
    "sweep",
]
