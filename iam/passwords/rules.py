"""The rules a candidate password is checked against. :func:`check` returns every violation,
never only the first, each as a :class:`Violation` with a plain-English message.

These rules need no database: length, character classes, identity data, common passwords and
dictionary words. History and minimum age, which need stored state, are added by
:func:`iam.passwords.service.evaluate`.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from iam.i18n import N_, Msg
from iam.passwords import wordlists
from iam.passwords.profiles import CharClass, PasswordProfile

__all__ = ["IdentityFacts", "Violation", "check", "fold"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule. ``rule`` is a stable identifier, ``message`` one plain English sentence
    (APIs, ``--json``), ``text`` the same sentence to show in the reader's language."""

    rule: str
    message: str
    text: Msg | None = None

    @classmethod
    def of(cls, rule: str, template: str, **params: Any) -> Violation:
        text = Msg(template, params)
        return cls(rule, str(text), text)

    def localized(self) -> str:
        """The sentence in the language of the page (English outside a request)."""
        return self.text.localized() if self.text is not None else self.message


@dataclass(frozen=True, slots=True)
class IdentityFacts:
    """What we know about the account whose password is checked. Everything is optional."""

    sub: str | None = None
    username: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    birth_date: dt.date | None = None
    phone: str | None = None
    password_set_at: dt.datetime | None = None
    """When the current password was set (for the minimum age)."""
    must_change: bool = False
    """The account must change its password now (reset, new account, expiry): no minimum age."""


# Letters that Unicode does not decompose into a base letter plus a mark.
_FOLD_TABLE = str.maketrans(
    {
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "ð": "d",
        "ø": "o",
        "Ø": "o",
        "ħ": "h",
        "ı": "i",
        "ŀ": "l",
        "ß": "ss",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "þ": "th",
        "Þ": "th",
    }
)


def fold(text: str) -> str:
    """Lower case without diacritics: ``Čačak`` → ``cacak``, ``Łódź`` → ``lodz``,
    ``Đặng`` → ``dang``, ``Ștefan`` → ``stefan``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD_TABLE))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold().translate(_FOLD_TABLE)


_CLASS_NAMES = {
    CharClass.LOWER: Msg(N_("a lower-case letter")),
    CharClass.UPPER: Msg(N_("an upper-case letter")),
    CharClass.LETTER: Msg(N_("a letter")),
    CharClass.DIGIT: Msg(N_("a digit")),
    CharClass.SPECIAL: Msg(N_("a special character (such as ! ? # or a space)")),
}
_ORDER = list(CharClass)


def _sorted(classes: Iterable[CharClass]) -> list[CharClass]:
    return sorted(classes, key=_ORDER.index)


def _length(profile: PasswordProfile, password: str) -> list[Violation]:
    n = len(password)
    if n < profile.min_length:
        return [
            Violation.of(
                "min_length",
                N_("The password must be at least %(count)d characters long."),
                count=profile.min_length,
            )
        ]
    if n > profile.max_length:
        return [
            Violation.of(
                "max_length",
                N_("The password must be at most %(count)d characters long."),
                count=profile.max_length,
            )
        ]
    return []


def _classes(profile: PasswordProfile, password: str) -> list[Violation]:
    present = {c for c in CharClass if any(c.matches(ch) for ch in password)}
    out: list[Violation] = []
    missing = [c for c in _sorted(profile.required_classes) if c not in present]
    if missing:
        out.append(
            Violation.of(
                "character_classes",
                N_("The password must contain %(classes)s."),
                classes=tuple(_CLASS_NAMES[c] for c in missing),
            )
        )
    if profile.min_classes and len(present & profile.class_choice) < profile.min_classes:
        names = [_CLASS_NAMES[c] for c in _sorted(profile.class_choice)]
        out.append(
            Violation.of(
                "character_classes",
                N_("The password must contain characters of at least %(count)d of these kinds: %(kinds)s."),
                count=profile.min_classes,
                kinds=tuple(names),
            )
        )
    return out


_SPLIT = re.compile(r"[\s._@+\-'’]+")


def _parts(value: str | None, minimum: int) -> set[str]:
    """The value and its words, folded, without those shorter than ``minimum``."""
    if not value:
        return set()
    folded = fold(value.strip())
    found = {folded, *_SPLIT.split(folded)}
    return {p for p in found if len(p) >= minimum}


def birth_date_forms(day: dt.date) -> set[str]:
    """The usual written forms of a date (day-first, year-first and US month-first)."""
    d, m, y = f"{day.day:02d}", f"{day.month:02d}", f"{day.year:04d}"
    d1, m1, yy = str(day.day), str(day.month), y[2:]
    forms = {y + m + d, d + m + y, m + d + y, yy + m + d, d + m + yy, y, d + m}
    for sep in ".-/ ":
        forms |= {
            sep.join((d, m, y)),
            sep.join((y, m, d)),
            sep.join((m, d, y)),
            sep.join((d1, m1, y)),
            sep.join((d, m, yy)),
            sep.join((d, m)),
        }
    forms |= {f"{d1}.{m1}.{y}.", f"{d}.{m}.{y}."}
    return forms


_PHONE_NOISE = re.compile(r"[\s()./+\-]")


def _personal(profile: PasswordProfile, password: str, identity: IdentityFacts | None) -> list[Violation]:
    banned = profile.banned_identity_fields
    if identity is None or not banned:
        return []
    pw = fold(password)
    minimum = profile.min_banned_part_length
    out: list[Violation] = []

    def contains_any(parts: set[str]) -> bool:
        return any(p in pw for p in parts)

    if "given_name" in banned and contains_any(_parts(identity.given_name, minimum)):
        out.append(Violation.of("personal_data", N_("The password must not contain your given name.")))
    if "family_name" in banned and contains_any(_parts(identity.family_name, minimum)):
        out.append(Violation.of("personal_data", N_("The password must not contain your surname.")))
    if "username" in banned and contains_any(_parts(identity.username, minimum)):
        out.append(Violation.of("personal_data", N_("The password must not contain your user name.")))
    if "email" in banned and identity.email and "@" in identity.email:
        local = identity.email.rsplit("@", 1)[0]
        if contains_any(_parts(local, minimum)):
            out.append(
                Violation.of("personal_data", N_("The password must not contain your e-mail address."))
            )
    if "birth_date" in banned and identity.birth_date is not None:
        if any(form in pw for form in birth_date_forms(identity.birth_date)):
            out.append(Violation.of("personal_data", N_("The password must not contain your date of birth.")))
    if "phone" in banned and identity.phone:
        digits = "".join(c for c in identity.phone if c.isdigit())
        tail = digits[-profile.phone_digits :]
        if len(tail) >= profile.phone_digits and tail in _PHONE_NOISE.sub("", pw):
            out.append(Violation.of("personal_data", N_("The password must not contain your phone number.")))
    return out


@cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords that ship with the ``zxcvbn`` package."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(fold(p) for p in FREQUENCY_LISTS["passwords"])


@cache
def dictionary_words() -> frozenset[str]:
    """English words and common first and last names that ship with ``zxcvbn`` (4+ letters)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    words: set[str] = set()
    for name in ("english_wikipedia", "us_tv_and_film", "female_names", "male_names", "surnames"):
        words.update(fold(w) for w in FREQUENCY_LISTS[name] if len(w) >= 4 and w.isalpha())
    return frozenset(words)


_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def _dictionary(profile: PasswordProfile, password: str) -> list[Violation]:
    out: list[Violation] = []
    pw = fold(password)
    if profile.refuse_common:
        core = _EDGES.sub("", pw)
        if pw in common_passwords() or (len(core) >= 4 and core in common_passwords()):
            out.append(
                Violation.of(
                    "common_password",
                    N_(
                        "The password is one of the most common passwords (or one with digits or "
                        "symbols added), which attackers try first."
                    ),
                )
            )
    if profile.refuse_dictionary_words:
        letters = "".join(c for c in pw if c.isalpha())
        if (len(letters) >= 4 and letters in dictionary_words()) or (
            profile.dictionary_languages
            and wordlists.is_word(wordlists.fold_word(password), profile.dictionary_languages)
        ):
            out.append(
                Violation.of(
                    "dictionary_word",
                    N_(
                        "The password must not be a dictionary word or a name, even with digits or "
                        "symbols added."
                    ),
                )
            )
    return out


def check(
    profile: PasswordProfile, password: str, *, identity: IdentityFacts | None = None
) -> list[Violation]:
    """Every rule of ``profile`` that ``password`` breaks (history and minimum age excepted)."""
    return [
        *_length(profile, password),
        *_classes(profile, password),
        *_personal(profile, password, identity),
        *_dictionary(profile, password),
    ]


def must_change_at_next_sign_in(
    profile: PasswordProfile, *, by_admin: bool, new_account: bool = False
) -> bool:
    """Whether a password just set must be changed at the next sign-in: a new account's initial
    password when the profile says so (``change_new_account``; BISTREZOR Član 22, PABIANICE
    §18.3), an administrator's reset when ``change_after_reset`` (PABIANICE §22.2)."""
    if new_account:
        return profile.change_new_account
    return by_admin and profile.change_after_reset
