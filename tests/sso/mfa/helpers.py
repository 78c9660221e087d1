"""Helpers for second-factor tests: enroll a user, compute codes at the (moved) clock."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pyotp

from iam import clock
from iam.services import Services
from sso.mfa import service as mfa

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def totp_for(services: Services, secret: str) -> pyotp.TOTP:
    m = services.settings.mfa
    return pyotp.TOTP(secret, digits=m.digits, digest=_DIGESTS[m.algorithm], interval=m.period)


def step_now(services: Services) -> int:
    return int(clock.now().timestamp()) // services.settings.mfa.period


def code(services: Services, secret: str, offset: int = 0) -> str:
    """The code of the current time step (+ ``offset`` steps)."""
    return totp_for(services, secret).generate_otp(step_now(services) + offset)


def next_step(services: Services) -> None:
    """Move the clock to the start of the next time step (tests never sleep)."""
    period = services.settings.mfa.period
    now = clock.now()
    into = now.timestamp() % period
    clock.freeze(now + dt.timedelta(seconds=period - into + 0.5))


def enroll(services: Services, sub: str, *, account: str = "alice") -> tuple[str, list[str]]:
    """A confirmed authenticator for ``sub``; returns (secret, recovery codes)."""
    with services.transaction() as s:
        e = mfa.start_enrollment(
            s, services.settings.mfa, services.cipher, sub=sub, account_name=account, issuer_label="Test"
        )
    with services.transaction() as s:
        codes = mfa.confirm_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=sub,
            credential_id=e.credential_id,
            code=code(services, e.secret),
        )
    assert codes is not None
    next_step(services)  # the confirming code is spent
    return e.secret, codes


def verify(services: Services, sub: str, value: str) -> Any:
    with services.transaction() as s:
        return mfa.verify_totp(s, services.settings.mfa, services.cipher, sub=sub, code=value)
