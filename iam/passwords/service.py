"""The password policy's domain operations: evaluate a candidate, generate a temporary
password, compute expiry, record a password that was set (R-PW-1..4).

Functions take a ``Session`` and flush but never commit; no Flask here.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import string
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit
from iam.directory.base import DirectoryUser
from iam.directory.errors import PasswordRejected
from iam.i18n import N_, Msg, Nn_
from iam.models.passwords import PasswordHistory
from iam.passwords import history
from iam.passwords.profiles import CharClass, PasswordProfile
from iam.passwords.rules import IdentityFacts, Violation, check, must_change_at_next_sign_in

__all__ = [
    "ExpiryState",
    "effective_expiry",
    "evaluate",
    "expiry_state",
    "generate_temporary_password",
    "with_random_password",
    "must_change_at_next_sign_in",
    "record_password_set",
]


def facts_for(user: DirectoryUser, *, must_change: bool, birth_date: dt.date | None = None) -> IdentityFacts:
    """What the rules may compare a new password with: the directory's record, plus the birth
    date from our identity record (AD has no standard attribute for it; HR provisioning sets it)."""
    return IdentityFacts(
        sub=user.id,
        username=user.username,
        given_name=user.given_name,
        family_name=user.family_name,
        email=user.email,
        birth_date=birth_date,
        phone=user.phone,
        password_set_at=user.password_last_set,
        must_change=must_change or user.must_change_password,
    )


def identity_facts(session: Session, user: DirectoryUser, *, must_change: bool) -> IdentityFacts:
    """:func:`facts_for` with the birth date from our identity record, when we have one."""
    from iam.models.identity import Identity

    birth_date = session.scalar(select(Identity.birth_date).where(Identity.sub == user.id))
    return facts_for(user, must_change=must_change, birth_date=birth_date)


def evaluate(
    session: Session,
    profile: PasswordProfile,
    *,
    password: str,
    identity: IdentityFacts | None,
    now: dt.datetime,
) -> list[Violation]:
    """Every rule ``password`` breaks for this account: the content rules, the history (count-
    and time-based) and the minimum age. Empty list = acceptable."""
    violations = check(profile, password, identity=identity)
    if identity is None:
        return violations
    if identity.sub and history.reused(session, profile, sub=identity.sub, password=password, now=now):
        template, params = _history_message(profile)
        violations.append(Violation.of("history", template, **params))
    if profile.min_age_days and identity.password_set_at is not None and not identity.must_change:
        allowed_from = identity.password_set_at + dt.timedelta(days=profile.min_age_days)
        if now < allowed_from:
            violations.append(
                Violation.of(
                    "min_age",
                    N_(
                        "The password was changed less than %(days)s ago; it can be changed again from %(when)s."  # noqa: E501
                    ),
                    days=_days(profile.min_age_days),
                    when=f"{allowed_from:%Y-%m-%d %H:%M} UTC",
                )
            )
    return violations


def _days(n: int) -> Msg:
    singular, plural = Nn_("%(num)d day", "%(num)d days")
    return Msg(singular, {"num": n}, plural=plural)


def _history_message(profile: PasswordProfile) -> tuple[str, dict[str, Any]]:
    if profile.history_count and profile.history_days:
        return N_(
            "The password must differ from %(last)s and from any password you used in the last %(days)s."
        ), {
            "last": _last(profile.history_count),
            "days": _days(profile.history_days),
        }
    if profile.history_count:
        return N_("The password must differ from %(last)s."), {"last": _last(profile.history_count)}
    return N_("The password must differ from any password you used in the last %(days)s."), {
        "days": _days(profile.history_days)
    }


def _last(n: int) -> Msg:
    if n == 1:
        return Msg(N_("your current password"))
    singular, plural = Nn_("your last %(num)d password", "your last %(num)d passwords")
    return Msg(singular, {"num": n}, plural=plural)


# Temporary passwords avoid characters that are easily confused when read out or copied
# (0/O, 1/l/I) and those that are awkward to type on Serbian, Polish, Romanian or Vietnamese
# keyboards.
_ALPHABETS: dict[CharClass, str] = {
    CharClass.LOWER: "abcdefghijkmnopqrstuvwxyz",
    CharClass.UPPER: "ABCDEFGHJKLMNPQRSTUVWXYZ",
    CharClass.DIGIT: "23456789",
    CharClass.SPECIAL: "!#%+-=?_*",
}
_ALPHABETS[CharClass.LETTER] = _ALPHABETS[CharClass.LOWER] + _ALPHABETS[CharClass.UPPER]
_ALL = "".join(_ALPHABETS[c] for c in (CharClass.LOWER, CharClass.UPPER, CharClass.DIGIT, CharClass.SPECIAL))
assert set(_ALL) <= set(string.printable)
# Active Directory's complexity rule counts these four (a temporary password holds each).
_DIRECTORY_CLASSES = (CharClass.LOWER, CharClass.UPPER, CharClass.DIGIT, CharClass.SPECIAL)


def generate_temporary_password(profile: PasswordProfile, *, rng: random.Random | None = None) -> str:
    """A random password that satisfies ``profile`` (retried until it does).

    It also holds a small letter, a capital, a digit and a symbol whenever its length allows,
    whatever the profile asks: Active Directory's own complexity rule (three of those four) is
    checked on every password set, and a profile asking for fewer classes (``default``) must
    not make a reset or a joiner fail now and then. Randomness comes from :mod:`secrets`
    (``rng`` lets property tests replay a seed).
    """
    rand: random.Random = rng or secrets.SystemRandom()
    length = profile.temporary_length
    for _ in range(1000):
        choice = list(profile.class_choice)
        rand.shuffle(choice)
        wanted = [*profile.required_classes, *choice[: profile.min_classes]]
        wanted += [c for c in _DIRECTORY_CLASSES if c not in wanted]
        chars = [rand.choice(_ALPHABETS[c]) for c in wanted]
        chars += [rand.choice(_ALL) for _ in range(length - len(chars))]
        rand.shuffle(chars)
        candidate = "".join(chars[:length])
        if not check(profile, candidate):
            return candidate
    raise RuntimeError(f"could not generate a password for profile {profile.name}")  # pragma: no cover


T = TypeVar("T")


def with_random_password(
    profile: PasswordProfile, write: Callable[[str], T], *, tries: int = 3
) -> tuple[str, T]:
    """``write(password)`` with a new random temporary password, and the password used.

    The directory may refuse a random password although the profile accepts it (AD's own rules
    can be stricter, e.g. no part of the person's name); a refused write changed nothing, so
    another password is tried at once, up to ``tries`` times, before
    :class:`~iam.directory.errors.PasswordRejected` is raised."""
    attempt = 1
    while True:
        temporary = generate_temporary_password(profile)
        try:
            return temporary, write(temporary)
        except PasswordRejected:
            if attempt >= tries:
                raise
            attempt += 1


class ExpiryState(NamedTuple):
    expires_at: dt.datetime | None
    """None when the profile sets no maximum age."""
    warn: bool
    """Within the warning period before expiry (and not yet expired)."""
    expired: bool


def expiry_state(profile: PasswordProfile, password_set_at: dt.datetime, now: dt.datetime) -> ExpiryState:
    """When the password set at ``password_set_at`` expires, and whether to warn or force a
    change now (CACAK Član 20, BISTREZOR Član 22, PABIANICE §16.2)."""
    if not profile.max_age_days:
        return ExpiryState(None, False, False)
    expires_at = password_set_at + dt.timedelta(days=profile.max_age_days)
    if now >= expires_at:
        return ExpiryState(expires_at, False, True)
    warn_from = expires_at - dt.timedelta(days=profile.expiry_warning_days)
    return ExpiryState(expires_at, bool(profile.expiry_warning_days) and now >= warn_from, False)


def effective_expiry(profile: PasswordProfile, user: DirectoryUser, now: dt.datetime) -> ExpiryState:
    """The earlier of the directory's own computed expiry (AD ``msDS-UserPasswordExpiryTimeComputed``,
    which already follows fine-grained policies) and our profile's maximum age counted from when
    the password was last set; the warning period is the profile's."""
    ours = (
        expiry_state(profile, user.password_last_set, now)
        if user.password_last_set is not None
        else ExpiryState(None, False, False)
    )
    theirs = user.password_expires_at
    if theirs is None or (ours.expires_at is not None and ours.expires_at <= theirs):
        return ours
    if now >= theirs:
        return ExpiryState(theirs, False, True)
    warn_from = theirs - dt.timedelta(days=profile.expiry_warning_days)
    return ExpiryState(theirs, bool(profile.expiry_warning_days) and now >= warn_from, False)


def record_password_set(
    session: Session,
    sub: str,
    password: str,
    *,
    by_admin: bool,
    actor: str | None,
    profile: PasswordProfile | None = None,
    now: dt.datetime | None = None,
    ip: str | None = None,
    reason: str | None = None,
    initial: bool = False,
    password_hash: str | None = None,
) -> PasswordHistory:
    """Remember a password just set for ``sub`` and audit it (PABIANICE §22.3 for resets).

    Every password an account has counts for the history rules (R-PW-2), whoever set it: the
    user's own change, an administrator's reset, the initial password of a new account
    (``initial``: audited as ``password.initial``). With ``profile`` the history is pruned to
    what it still needs. The password itself never reaches the audit log (R-PW-4).
    ``password_hash``: the argon2id hash of ``password`` when the caller computed it already
    (outside its transaction).
    """
    from iam import clock

    at = now or clock.now()
    row = history.add(
        session, sub=sub, password=password, now=at, by_admin=by_admin, password_hash=password_hash
    )
    pruned = history.prune(session, profile, sub=sub, now=at) if profile is not None else 0
    details: dict[str, object] = {"by_admin": by_admin, "history_pruned": pruned}
    if reason:
        details["reason"] = reason
    if profile is not None:
        details["profile"] = profile.name
        details["must_change"] = must_change_at_next_sign_in(profile, by_admin=by_admin, new_account=initial)
    audit.record(
        session,
        "password.initial" if initial else "password.reset" if by_admin else "password.set",
        actor=actor,
        subject=sub,
        ip=ip,
        details=details,
    )
    return row
