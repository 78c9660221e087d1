"""One-time recovery codes: issued in tens at enrollment, stored as SHA-256 hashes (they are
random, 80 bits), each spent once by a conditional UPDATE (``… WHERE used_at IS NULL``)."""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.config import MfaSettings
from iam.crypto import token_hash
from sso.mfa.models import RecoveryCode
from sso.mfa.throttle import check_throttle, clear_throttle, count_failure

_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))  # 80 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def recovery_codes_left(session: Session, sub: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.sub == sub, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


_HAS_CODES = (
    select(RecoveryCode.id)
    .where(RecoveryCode.sub == bindparam("sub"), RecoveryCode.used_at.is_(None))
    .limit(1)
)
"""Asked on every password sign-in (is a second factor due?): built once, reads one row at most."""


def has_recovery_codes(session: Session, sub: str) -> bool:
    return session.execute(_HAS_CODES, {"sub": sub}).first() is not None


def issue_recovery_codes(session: Session, settings: MfaSettings, sub: str) -> list[str]:
    session.execute(delete(RecoveryCode).where(RecoveryCode.sub == sub))
    codes = [_new_recovery_code() for _ in range(settings.recovery_codes)]
    now = clock.now()
    for code in codes:
        session.add(RecoveryCode(sub=sub, code_hash=token_hash(_normalise_recovery(code)), created_at=now))
    session.flush()
    return codes


def use_recovery_code(
    session: Session,
    settings: MfaSettings,
    *,
    sub: str,
    code: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Spend one recovery code of ``sub`` (each works once, atomically). Throttled like codes."""
    check_throttle(session, sub)
    digest = token_hash(_normalise_recovery(code))
    spent = session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.sub == sub, RecoveryCode.code_hash == digest, RecoveryCode.used_at.is_(None))
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if getattr(spent, "rowcount", 0) == 1:
        clear_throttle(session, sub)
        audit.record(
            session,
            "mfa.recovery_code_used",
            severity=audit.Severity.SIGNIFICANT,
            actor=sub,
            subject=sub,
            ip=ip,
            user_agent=user_agent,
            details={"left": recovery_codes_left(session, sub)},
        )
        return True
    count_failure(session, settings, sub, ip, user_agent)
    audit.record(
        session,
        "mfa.code_rejected",
        outcome="failure",
        actor=sub,
        subject=sub,
        ip=ip,
        user_agent=user_agent,
        details={"method": "recovery"},
    )
    return False
