"""``iam policy check``: the directory's own password policies against our profile (R-PW-1).

AD enforces its policy on every password change, also those that do not pass through us
(Ctrl+Alt+Del on a Windows workstation, an administrator's console). A setting of AD that is
*weaker* than the profile lets such changes escape the rulebook; a setting that *contradicts* it
refuses passwords our profile accepts (or locks accounts before we do), and users get a refusal
they cannot understand. Each finding says which and why.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Literal

from iam.config import LockoutSettings
from iam.directory.base import PasswordPolicy
from iam.passwords.profiles import PasswordProfile

Kind = Literal["weaker", "contradicts", "note"]


@dataclass(frozen=True)
class Finding:
    policy: str
    """``domain`` or the name of the fine-grained policy."""
    setting: str
    kind: Kind
    directory: str
    """The directory's value, in words."""
    profile: str
    """Ours, in words."""
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _days(value: dt.timedelta | None) -> str:
    if value is None:
        return "never"
    if value.total_seconds() % 86400 == 0:
        return f"{value.days} days"
    return f"{value.total_seconds() / 3600:g} hours"


def _classes(profile: PasswordProfile) -> int:
    """How many of AD's four classes the profile guarantees."""
    return len(profile.required_classes) + profile.min_classes


def compare(profile: PasswordProfile, lockout: LockoutSettings, policy: PasswordPolicy) -> list[Finding]:
    """Every setting of ``policy`` that is weaker than or contradicts ``profile`` and our lockout."""
    out: list[Finding] = []

    def add(setting: str, kind: Kind, theirs: str, ours: str, message: str) -> None:
        out.append(Finding(policy.name, setting, kind, theirs, ours, message))

    if policy.min_length < profile.min_length:
        add(
            "min_length",
            "weaker",
            str(policy.min_length),
            str(profile.min_length),
            f"AD accepts passwords of {policy.min_length} characters when they are changed outside "
            f"the provider; the profile asks for at least {profile.min_length}.",
        )
    elif policy.min_length > profile.min_length:
        add(
            "min_length",
            "contradicts",
            str(policy.min_length),
            str(profile.min_length),
            f"AD refuses passwords shorter than {policy.min_length} characters that the profile "
            f"allows ({profile.min_length}); raise the profile's min_length to match.",
        )
    if _classes(profile) >= 3 and not policy.complexity:
        add(
            "complexity",
            "weaker",
            "off",
            f"{_classes(profile)} character classes",
            "AD's complexity requirement is off, so passwords changed outside the provider need no "
            "mix of character classes; the profile requires one.",
        )
    elif policy.complexity and _classes(profile) < 3:
        add(
            "complexity",
            "contradicts",
            "on (3 of 4 classes)",
            f"{_classes(profile)} character classes",
            "AD's complexity requirement refuses passwords (e.g. long passphrases in one class) "
            "that the profile accepts; turn complexity off or require three classes in the profile.",
        )
    if policy.history_count < profile.history_count:
        add(
            "history_count",
            "weaker",
            str(policy.history_count),
            str(profile.history_count),
            f"AD remembers {policy.history_count} passwords; the profile forbids reusing the last "
            f"{profile.history_count}. Changes outside the provider can reuse older ones.",
        )
    if profile.history_days:
        # AD has no time-based history: it covers D days only if it remembers every password
        # that can be set within them, which its minimum age bounds
        min_age_days = policy.min_age.total_seconds() / 86400
        needed = math.ceil(profile.history_days / min_age_days) if min_age_days else None
        if needed is None or policy.history_count < needed:
            add(
                "history_days",
                "weaker",
                f"{policy.history_count} passwords, minimum age {_days(policy.min_age)}",
                f"no reuse within {profile.history_days} days",
                f"AD has no time-based history: with {policy.history_count} remembered passwords"
                + ("" if needed else " and no minimum age")
                + f", a change outside the provider can return to a password used within "
                f"{profile.history_days} days. Changes through the provider are checked in full.",
            )
    if profile.max_age_days:
        ours_max = dt.timedelta(days=profile.max_age_days)
        if policy.max_age is None or policy.max_age > ours_max:
            add(
                "max_age",
                "weaker",
                _days(policy.max_age),
                f"{profile.max_age_days} days",
                "AD lets passwords live longer than the profile. The provider forces the change at "
                "its own sign-in, but Windows logons and other LDAP applications are not stopped.",
            )
        elif policy.max_age < ours_max:
            add(
                "max_age",
                "note",
                _days(policy.max_age),
                f"{profile.max_age_days} days",
                "AD expires passwords earlier than the profile; the earlier date applies.",
            )
    ours_min = dt.timedelta(days=profile.min_age_days)
    if policy.min_age > ours_min:
        add(
            "min_age",
            "contradicts",
            _days(policy.min_age),
            f"{profile.min_age_days} days",
            "AD refuses a change sooner than its minimum age, which the profile allows; users get "
            "AD's refusal. Align the two.",
        )
    elif policy.min_age < ours_min:
        add(
            "min_age",
            "weaker",
            _days(policy.min_age),
            f"{profile.min_age_days} days",
            "Outside the provider a password can be changed again sooner than the profile allows "
            "(and cycled through the history).",
        )
    if policy.lockout_threshold == 0:
        add(
            "lockout_threshold",
            "weaker",
            "no lockout",
            f"{lockout.threshold} attempts",
            "AD never locks accounts, so password guessing through other doors (Windows logon, "
            "LDAP, SMB) is unlimited.",
        )
    else:
        # within one AD observation window we let at most `threshold` wrong passwords through per
        # window of ours: AD's threshold must stay above that, or AD locks first
        ad_window = policy.lockout_window.total_seconds() or lockout.window
        let_through = lockout.threshold * max(1, math.ceil(ad_window / lockout.window))
        if policy.lockout_threshold <= let_through:
            add(
                "lockout_threshold",
                "contradicts",
                f"{policy.lockout_threshold} attempts in {_days(policy.lockout_window)}",
                f"{lockout.threshold} attempts in {lockout.window // 60} minutes",
                f"AD would lock the account before the provider does: the provider lets up to "
                f"{let_through} wrong passwords reach AD within AD's observation window. Set AD's "
                f"threshold above {let_through} or lower lockout.threshold.",
            )
    if policy.reversible_encryption:
        add(
            "reversible_encryption",
            "weaker",
            "on",
            "off",
            "AD stores passwords with reversible encryption; turn it off.",
        )
    return out


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind != "note"]
