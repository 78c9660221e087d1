"""Password profiles: data files in ``policies/passwords/<name>.toml``, validated by pydantic
into a frozen :class:`PasswordProfile` (R-PW-1).

The organisation picks a profile with ``passwords.profile`` and may override it setting by
setting with ``passwords.overrides``; the overrides are validated exactly like the file. An
invalid file or override is a :class:`~iam.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from iam.errors import ConfigError

if TYPE_CHECKING:
    from iam.config import PasswordSettings

__all__ = [
    "IDENTITY_FIELDS",
    "CharClass",
    "PasswordProfile",
    "available_profiles",
    "load_profile",
    "profile_from_settings",
]

IDENTITY_FIELDS = frozenset({"given_name", "family_name", "username", "email", "birth_date", "phone"})
"""Identity data a profile may ban from passwords."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class CharClass(enum.StrEnum):
    """Character classes a profile can require."""

    LOWER = "lower"
    UPPER = "upper"
    LETTER = "letter"
    """Any letter, lower or upper case (PABIANICE §19: "litery")."""
    DIGIT = "digit"
    SPECIAL = "special"
    """Anything that is neither a letter nor a digit (punctuation, symbols, space)."""

    def matches(self, char: str) -> bool:
        if self is CharClass.LOWER:
            return char.islower()
        if self is CharClass.UPPER:
            return char.isupper()
        if self is CharClass.LETTER:
            return char.isalpha()
        if self is CharClass.DIGIT:
            return char.isdigit()
        return not char.isalnum()


@dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=False))
class PasswordProfile:
    """One password policy. Zero switches a numeric rule off."""

    name: str
    description: str = ""
    sources: tuple[str, ...] = ()
    """The articles this profile implements, e.g. ``"CACAK Član 20"``."""

    min_length: int = Field(default=8, ge=1, le=1024)
    max_length: int = Field(default=256, ge=1, le=4096)
    required_classes: frozenset[CharClass] = frozenset()
    """Every one of these classes must occur."""
    class_choice: frozenset[CharClass] = frozenset()
    """Together with ``min_classes``: at least that many of these classes must occur."""
    min_classes: int = Field(default=0, ge=0, le=5)

    banned_identity_fields: frozenset[str] = frozenset()
    """Identity data that must not appear in the password: ``given_name``, ``family_name``,
    ``username``, ``email`` (its local part), ``birth_date``, ``phone``."""
    min_banned_part_length: int = Field(default=3, ge=1, le=64)
    """Name parts shorter than this are not searched for (a two-letter name is everywhere)."""
    phone_digits: int = Field(default=6, ge=3, le=20)
    """The last this many digits of the phone number are banned."""
    refuse_common: bool = False
    """Refuse the most common passwords (zxcvbn's list of 30,000), also with digits or symbols
    added before or after."""
    refuse_dictionary_words: bool = False
    """Refuse a password whose letters are one dictionary word or common name (English words
    and names, and the frequent words of every language in ``dictionary_languages``)."""
    dictionary_languages: tuple[str, ...] = ()
    """Languages (BCP 47 tags) whose word lists are refused besides English: the service sets
    the organisation's ``languages`` here (see :mod:`iam.passwords.wordlists`)."""

    history_count: int = Field(default=0, ge=0, le=100)
    """The new password must differ from the last N passwords (count-based history)."""
    history_days: int = Field(default=0, ge=0, le=3660)
    """A password used within the last D days must not be used again (time-based history)."""

    max_age_days: int = Field(default=0, ge=0, le=3660)
    """The password expires this many days after it was set; 0 = never."""
    expiry_warning_days: int = Field(default=0, ge=0, le=3660)
    """Warn this many days before the password expires."""
    min_age_days: int = Field(default=0, ge=0, le=365)
    """A password may not be changed again by its user before this many days."""

    change_new_account: bool = False
    """A new account must change its initial password at the first sign-in."""
    change_after_reset: bool = True
    """After an administrator reset, the temporary password must be changed at first use."""
    temporary_password_length: int = Field(default=16, ge=8, le=256)

    @model_validator(mode="after")
    def _consistent(self) -> PasswordProfile:
        if not _NAME.match(self.name):
            raise ValueError("name must be lowercase letters, digits, '-' or '_'")
        if self.max_length < self.min_length:
            raise ValueError("max_length is shorter than min_length")
        if self.min_classes > len(self.class_choice):
            raise ValueError("min_classes is larger than the number of classes in class_choice")
        needed = len(self.required_classes) + self.min_classes
        if needed > self.max_length:
            raise ValueError("max_length cannot hold every required character class")
        unknown = set(self.banned_identity_fields) - IDENTITY_FIELDS
        if unknown:
            raise ValueError(
                f"banned_identity_fields has unknown field(s) {sorted(unknown)}; "
                f"allowed: {sorted(IDENTITY_FIELDS)}"
            )
        if self.max_age_days and self.expiry_warning_days >= self.max_age_days:
            raise ValueError("expiry_warning_days must be shorter than max_age_days")
        if self.max_age_days and self.min_age_days >= self.max_age_days:
            raise ValueError("min_age_days must be shorter than max_age_days")
        return self

    @property
    def temporary_length(self) -> int:
        """Length of generated temporary passwords: within the profile's bounds."""
        return min(max(self.temporary_password_length, self.min_length), self.max_length)

    def as_dict(self) -> dict[str, Any]:
        """The profile as plain data (sorted sets), e.g. for ``iam policy show --json``."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, frozenset):
                value = sorted(str(v) for v in value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


_ADAPTER: TypeAdapter[PasswordProfile] = TypeAdapter(PasswordProfile)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(profile)"
    msg = err["msg"].removeprefix("Value error, ")
    return key, msg


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The password profile file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The password profile file {path} is not valid TOML: {exc}.") from None


def available_profiles(policy_dir: Path) -> list[str]:
    """Names of the profiles in ``policy_dir``."""
    return sorted(p.stem for p in policy_dir.glob("*.toml"))


def load_profile(name: str, policy_dir: Path, overrides: dict[str, Any] | None = None) -> PasswordProfile:
    """Load ``<policy_dir>/<name>.toml`` and apply ``overrides`` setting by setting.

    Raises :class:`ConfigError` naming the file and key (or ``passwords.overrides.<key>``).
    """
    if not _NAME.match(name):
        raise ConfigError(f"The password profile name {name!r} is not valid.")
    path = policy_dir / f"{name}.toml"
    raw = _read(path)
    raw.setdefault("name", name)
    if raw["name"] != name:
        raise ConfigError(f"Invalid password profile {path}: key name: must be {name!r}, the file's name.")
    try:
        profile = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        key, msg = _first_error(exc)
        raise ConfigError(f"Invalid password profile {path}: key {key}: {msg}.") from None
    if not overrides:
        return profile
    if "name" in overrides:
        raise ConfigError(
            "Invalid setting passwords.overrides.name: choose the profile with passwords.profile."
        )
    try:
        return _ADAPTER.validate_python({**raw, **overrides})
    except ValidationError as exc:
        key, msg = _first_error(exc)
        where = f"passwords.overrides.{key}" if key in overrides else f"passwords.overrides (with {path})"
        raise ConfigError(f"Invalid setting {where}: {msg}.") from None


def profile_from_settings(
    settings: PasswordSettings, name: str | None = None, *, languages: Sequence[str] = ()
) -> PasswordProfile:
    """The effective profile: the configured one with its overrides, or ``name`` as shipped
    (overrides apply only to the configured profile); ``languages`` (the organisation's) add
    their word lists to a profile that refuses dictionary words."""
    if name is None or name == settings.profile:
        profile = load_profile(settings.profile, settings.policy_dir, settings.overrides)
    else:
        profile = load_profile(name, settings.policy_dir)
    if languages and profile.refuse_dictionary_words:
        profile = dataclasses.replace(profile, dictionary_languages=tuple(languages))
    return profile
