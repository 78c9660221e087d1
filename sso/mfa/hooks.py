"""How sign-in methods and security devices plug into the MFA pages.

The TOTP part of this package registers itself here; other methods (the smart-card sign-in of
``sso/x509``) do the same from their own package, so the step-up page ("choose a method") and
the "my security devices" page list them without this package importing theirs::

    from sso.mfa import hooks

    hooks.register_method(hooks.SignInMethod(
        key="card", label=lazy_gettext("Smart card"), endpoint="x509.sign_in",
        amr=("sc", "hwk"), available=lambda session, sub: True, order=10))
    hooks.register_device_source(lambda session, sub: [hooks.Device(...), ...])

The method's page, once it has verified the user, calls
:func:`sso.views.signin.complete_authentication` with its ``amr`` values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class SignInMethod:
    """A way to prove who one is, offered on the "choose a method" page."""

    key: str
    """Short stable name (``totp``, ``recovery``, ``card``)."""
    label: Any
    """Shown to the user (a str or a lazy translation)."""
    endpoint: str
    """Flask endpoint of the method's page (``url_for(endpoint)``)."""
    amr: tuple[str, ...]
    """The RFC 8176 values a successful use adds to the sign-in."""
    available: Callable[[Session, str], bool]
    """Can this user (``sub``) use it now? (e.g. has a confirmed authenticator)"""
    order: int = 100
    """Lower first on the page."""
    second_factor: bool = True
    """Offered after the password (and for step-up on an existing session)."""


@dataclass(frozen=True)
class Device:
    """One row of "my security devices"."""

    kind: str
    """``totp``, ``recovery_codes``, ``card`` …"""
    label: str
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    detail: str = ""
    """A short non-secret description (e.g. "7 of 10 recovery codes left", a card's issuer)."""
    remove_endpoint: str | None = None
    """Flask endpoint (POST, CSRF-protected, re-authentication required) that removes it."""
    remove_args: dict[str, str] = field(default_factory=dict)


DeviceSource = Callable[[Session, str], Iterable[Device]]

_methods: dict[str, SignInMethod] = {}
_device_sources: list[DeviceSource] = []


def register_method(method: SignInMethod) -> None:
    """Add (or replace, by ``key``) a sign-in method."""
    _methods[method.key] = method


def register_device_source(source: DeviceSource) -> None:
    """Add a function listing a user's devices of one kind (idempotent)."""
    if source not in _device_sources:
        _device_sources.append(source)


def methods() -> list[SignInMethod]:
    return sorted(_methods.values(), key=lambda m: (m.order, m.key))


def devices_for(session: Session, sub: str) -> list[Device]:
    out: list[Device] = []
    for source in _device_sources:
        out.extend(source(session, sub))
    return out
