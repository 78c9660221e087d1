"""TOTP (RFC 6238): enrollment, verification without replay, removal and administrator reset.
Recovery codes live in :mod:`sso.mfa.recovery`, the code-entry throttle in
:mod:`sso.mfa.throttle`; their public names are re-exported here.

Functions take a :class:`~sqlalchemy.orm.Session`, flush but never commit, and write their own
audit rows; no Flask. Time comes from :func:`iam.clock.now`.

No replay: a code is accepted only for a time step later than the credential's ``last_step``,
and accepting it is one conditional ``UPDATE … WHERE last_step IS NULL OR last_step < :step``;
of two concurrent submissions of one code exactly one updates the row (PostgreSQL re-checks the
condition after the row lock; SQLite serialises writers). Recovery codes are spent the same way
(``UPDATE … WHERE used_at IS NULL``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import MfaSettings
from iam.crypto import Cipher
from sso.mfa.models import RecoveryCode, TotpCredential
from sso.mfa.recovery import has_recovery_codes, issue_recovery_codes, recovery_codes_left, use_recovery_code
from sso.mfa.throttle import Throttled, check_throttle, clear_throttle, count_failure, throttled_until

__all__ = [
    "Enrollment",
    "NoAuthenticator",
    "Throttled",
    "admin_reset",
    "confirm_enrollment",
    "confirmed_totp",
    "has_recovery_codes",
    "has_totp",
    "recovery_codes_left",
    "regenerate_recovery_codes",
    "remove_totp",
    "start_enrollment",
    "status",
    "throttled_until",
    "use_recovery_code",
    "verify_totp",
]

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


class NoAuthenticator(Exception):
    """The account has no confirmed authenticator (or no such enrollment in progress)."""


@dataclass(frozen=True)
class Enrollment:
    """An enrollment in progress: what the page shows once (the secret never leaves it)."""

    credential_id: str
    secret: str
    uri: str
    svg: str


# -- helpers ----------------------------------------------------------------------------------
def _context(credential_id: str) -> bytes:
    return b"mfa-totp:" + credential_id.encode()


def _secret(cipher: Cipher, row: TotpCredential) -> str:
    return cipher.decrypt(row.secret_encrypted, context=_context(row.id)).decode()


def _totp(secret: str, row: TotpCredential) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=row.digits, digest=_DIGESTS[row.algorithm], interval=row.period)


def current_step(row: TotpCredential) -> int:
    return int(clock.now().timestamp()) // row.period


def code_at(cipher: Cipher, row: TotpCredential, step: int) -> str:
    """The code of time step ``step`` (tests and the CLI's self-check)."""
    return _totp(_secret(cipher, row), row).generate_otp(step)


def qr_svg(uri: str) -> str:
    """The provisioning URI as an inline SVG QR code, rendered here (nothing leaves the server)."""
    return str(segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff"))


# -- reading ----------------------------------------------------------------------------------
def confirmed_totp(session: Session, sub: str) -> TotpCredential | None:
    return session.scalar(
        select(TotpCredential)
        .where(TotpCredential.sub == sub, TotpCredential.confirmed_at.is_not(None))
        .order_by(TotpCredential.confirmed_at.desc())
        .limit(1)
    )


_HAS_TOTP = (
    select(TotpCredential.id)
    .where(TotpCredential.sub == bindparam("sub"), TotpCredential.confirmed_at.is_not(None))
    .limit(1)
)
"""Asked on every password sign-in (is a second factor due?): built once, reads one column."""


def has_totp(session: Session, sub: str) -> bool:
    return session.execute(_HAS_TOTP, {"sub": sub}).first() is not None


def status(session: Session, sub: str) -> dict[str, object]:
    """A user's second factors, for administrators and the JSON API (nothing secret)."""
    row = confirmed_totp(session, sub)
    return {
        "sub": sub,
        "totp": None
        if row is None
        else {
            "id": row.id,
            "label": row.label,
            "confirmed_at": row.confirmed_at.isoformat() if row.confirmed_at else None,
            "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
            "algorithm": row.algorithm,
            "digits": row.digits,
            "period": row.period,
        },
        "recovery_codes_left": recovery_codes_left(session, sub),
        "throttled_until": (lambda t: t.isoformat() if t else None)(throttled_until(session, sub)),
    }


def resolve_user(session: Session, directory: Any, user: str) -> str | None:
    """A user's ``sub`` from their ``sub``, username or UPN (a known identity, else the directory)."""
    from iam.identities import find_identity
    from iam.models.identity import Identity

    user = user.strip()[:256]
    if not user:
        return None
    if session.get(Identity, user) is not None:
        return user
    identity = find_identity(session, user)
    if identity is not None:
        return identity.sub
    found = directory.find_user(**({"upn": user} if "@" in user else {"username": user}))
    return str(found.id) if found is not None else None


# -- enrollment -------------------------------------------------------------------------------
def start_enrollment(
    session: Session,
    settings: MfaSettings,
    cipher: Cipher,
    *,
    sub: str,
    account_name: str,
    issuer_label: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Enrollment:
    """A new secret for ``sub`` (replacing an unfinished enrollment); confirmed by a first code."""
    session.execute(
        delete(TotpCredential).where(TotpCredential.sub == sub, TotpCredential.confirmed_at.is_(None))
    )
    secret = pyotp.random_base32()  # 160 bits
    row = TotpCredential(
        id=secrets.token_hex(16),
        sub=sub,
        label="Authenticator app",
        digits=settings.digits,
        period=settings.period,
        algorithm=settings.algorithm,
        created_at=clock.now(),
    )
    row.secret_encrypted = cipher.encrypt(secret.encode(), context=_context(row.id))
    session.add(row)
    session.flush()
    audit.record(
        session,
        "mfa.totp.enrollment_started",
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"id": row.id},
    )
    return enrollment_view(cipher, row, account_name=account_name, issuer_label=issuer_label)


def enrollment_view(
    cipher: Cipher, row: TotpCredential, *, account_name: str, issuer_label: str
) -> Enrollment:
    """What the enrollment page shows for an unconfirmed credential (again after a wrong code)."""
    if row.confirmed_at is not None:
        raise NoAuthenticator("already confirmed: its secret is never shown again")
    secret = _secret(cipher, row)
    uri = _totp(secret, row).provisioning_uri(name=account_name, issuer_name=issuer_label)
    return Enrollment(row.id, secret, uri, qr_svg(uri))


def pending_enrollment(session: Session, sub: str, credential_id: str) -> TotpCredential | None:
    row = session.get(TotpCredential, credential_id)
    if row is None or row.sub != sub or row.confirmed_at is not None:
        return None
    return row


def confirm_enrollment(
    session: Session,
    settings: MfaSettings,
    cipher: Cipher,
    *,
    sub: str,
    credential_id: str,
    code: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> list[str] | None:
    """Confirm an enrollment with its first code. Returns the new recovery codes (to show
    once) or None when the code is wrong. A previous authenticator of the user is replaced."""
    row = session.get(TotpCredential, credential_id)
    if row is None or row.sub != sub or row.confirmed_at is not None:
        raise NoAuthenticator("no such enrollment in progress")
    check_throttle(session, sub)
    if not _accept(session, cipher, row, code, settings.valid_window):
        count_failure(session, settings, sub, ip, user_agent)
        audit.record(
            session,
            "mfa.totp.enrollment_code_rejected",
            outcome="failure",
            actor=sub,
            subject=sub,
            ip=ip,
            user_agent=user_agent,
            details={"id": row.id},
        )
        return None
    replaced = session.scalars(
        select(TotpCredential.id).where(
            TotpCredential.sub == sub,
            TotpCredential.confirmed_at.is_not(None),
            TotpCredential.id != row.id,
        )
    ).all()
    if replaced:
        session.execute(delete(TotpCredential).where(TotpCredential.id.in_(replaced)))
    row.confirmed_at = clock.now()
    clear_throttle(session, sub)
    codes = issue_recovery_codes(session, settings, sub)
    audit.record(
        session,
        "mfa.totp.enrolled",
        severity=audit.Severity.SIGNIFICANT,
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"id": row.id, "replaced": list(replaced), "recovery_codes": len(codes)},
    )
    return codes


# -- verification -----------------------------------------------------------------------------
def _matching_step(cipher: Cipher, row: TotpCredential, code: str, window: int) -> int | None:
    code = "".join(code.split())
    if len(code) != row.digits or not code.isdigit():
        return None
    totp = _totp(_secret(cipher, row), row)
    now_step = current_step(row)
    found: int | None = None
    for step in range(now_step - window, now_step + window + 1):
        # compare every candidate (constant time, no early exit); the latest match wins
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _accept(session: Session, cipher: Cipher, row: TotpCredential, code: str, window: int = 1) -> bool:
    step = _matching_step(cipher, row, code, window)
    if step is None:
        return False
    claimed = session.execute(
        update(TotpCredential)
        .where(
            TotpCredential.id == row.id,
            or_(TotpCredential.last_step.is_(None), TotpCredential.last_step < step),
        )
        .values(last_step=step, last_used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return False
    session.refresh(row)
    return True


def verify_totp(
    session: Session,
    settings: MfaSettings,
    cipher: Cipher,
    *,
    sub: str,
    code: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Is ``code`` a fresh code of ``sub``'s authenticator? A code is accepted once: never
    again, and neither is a code of an earlier time step. Wrong codes count towards the
    throttle; raises :class:`Throttled` while it blocks, :class:`NoAuthenticator` without one."""
    check_throttle(session, sub)
    row = confirmed_totp(session, sub)
    if row is None:
        raise NoAuthenticator("no confirmed authenticator")
    if _accept(session, cipher, row, code, settings.valid_window):
        clear_throttle(session, sub)
        return True
    replay = _matching_step(cipher, row, code, settings.valid_window) is not None
    count_failure(session, settings, sub, ip, user_agent)
    audit.record(
        session,
        "mfa.code_rejected",
        severity=audit.Severity.SIGNIFICANT if replay else audit.Severity.NORMAL,
        outcome="failure",
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"method": "totp", "reason": "replayed" if replay else "wrong"},
    )
    return False


# -- recovery codes ---------------------------------------------------------------------------
def regenerate_recovery_codes(
    session: Session,
    settings: MfaSettings,
    *,
    sub: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> list[str]:
    """New recovery codes (the old ones stop working); needs a confirmed authenticator."""
    if not has_totp(session, sub):
        raise NoAuthenticator("no confirmed authenticator")
    codes = issue_recovery_codes(session, settings, sub)
    audit.record(
        session,
        "mfa.recovery_codes.regenerated",
        severity=audit.Severity.SIGNIFICANT,
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"count": len(codes)},
    )
    return codes


# -- removal ----------------------------------------------------------------------------------
def remove_totp(
    session: Session,
    *,
    sub: str,
    actor: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """The user removes their authenticator (and its recovery codes). True if one existed."""
    removed = _remove_all(session, sub)
    if removed:
        audit.record(
            session,
            "mfa.totp.removed",
            severity=audit.Severity.SIGNIFICANT,
            actor=actor,
            subject=sub,
            ip=ip,
            user_agent=user_agent,
            details={"by": "user"},
        )
    return removed


def _remove_all(session: Session, sub: str) -> bool:
    had = has_totp(session, sub)
    session.execute(delete(TotpCredential).where(TotpCredential.sub == sub))
    session.execute(delete(RecoveryCode).where(RecoveryCode.sub == sub))
    return had


def admin_reset(
    session: Session,
    *,
    sub: str,
    actor: str,
    reason: str = "",
    end_sessions: bool = False,
    ip: str | None = None,
    user_agent: str | None = None,
) -> dict[str, object]:
    """An administrator removes a user's authenticator and recovery codes and lifts the code
    throttle (lost phone); with ``end_sessions`` the user's SSO sessions and refresh tokens end
    too (stolen phone). Critical audit event: it is a classic step in taking over an account,
    so the security officer hears of it at once."""
    had_totp = has_totp(session, sub)
    left = recovery_codes_left(session, sub)
    _remove_all(session, sub)
    clear_throttle(session, sub)
    ended = 0
    if end_sessions:  # the phone was stolen, not just lost: sign the user out everywhere too
        from sso.service import end_all_sessions

        ended = end_all_sessions(session, sub, reason="mfa_reset", actor=actor)
    audit.record(
        session,
        "mfa.reset",
        severity=audit.Severity.CRITICAL,
        actor=actor,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={
            "had_totp": had_totp,
            "recovery_codes_removed": left,
            "sessions_ended": ended,
            "reason": reason[:500],
        },
    )
    return {"sub": sub, "had_totp": had_totp, "recovery_codes_removed": left, "sessions_ended": ended}
