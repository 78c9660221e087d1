"""Profiles as data (R-PW-1): the shipped files load, are frozen, cite their articles; a bad
file or override is refused with the file and the key named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from iam.config import POLICY_DIR, load_settings
from iam.errors import ConfigError
from iam.passwords import CharClass, load_profile, profile_from_settings
from iam.passwords.profiles import available_profiles

from .conftest import PROFILES, profile


def test_every_shipped_profile_loads_and_cites_its_sources() -> None:
    assert set(PROFILES) <= set(available_profiles(POLICY_DIR))
    for name in PROFILES:
        p = profile(name)
        assert p.name == name
        assert p.sources, name
        assert p.description
        text = (POLICY_DIR / f"{name}.toml").read_text()
        assert "#" in text  # the articles are quoted in comments too


def test_profile_is_frozen() -> None:
    p = profile("cacak")
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.min_length = 4  # type: ignore[misc]


def test_profiles_match_the_requirements_table() -> None:
    """REQUIREMENTS.md section 2, column by column."""
    cacak, bis, pab, strict = (profile(n) for n in ("cacak", "bistrezor", "pabianice", "strictest"))
    assert (cacak.min_length, cacak.max_age_days, cacak.history_days, cacak.history_count) == (8, 182, 365, 0)
    assert cacak.required_classes == set(CharClass) - {CharClass.LETTER}
    assert bis.required_classes == {CharClass.UPPER, CharClass.LOWER, CharClass.DIGIT}
    assert bis.max_age_days <= 91 and bis.change_new_account and bis.change_after_reset
    assert (pab.min_length, pab.max_age_days, pab.history_count) == (8, 30, 5)
    assert pab.refuse_dictionary_words and pab.change_after_reset
    # strictest: each setting at least as strict as all three
    for p in (cacak, bis, pab):
        assert strict.min_length >= p.min_length
        assert strict.max_age_days <= p.max_age_days
        assert strict.history_count >= p.history_count
        assert strict.history_days >= p.history_days
        assert strict.banned_identity_fields >= p.banned_identity_fields
    assert profile("default").max_age_days == 0


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("min_length = 'eight'\n", "min_length"),
        ("min_length = 0\n", "min_length"),
        ("required_classes = ['lower', 'cyrillic']\n", "required_classes"),
        ("maximum_age = 30\n", "maximum_age"),
        ("min_length = 20\nmax_length = 10\n", "max_length is shorter than min_length"),
        ("banned_identity_fields = ['shoe_size']\n", "shoe_size"),
        ("max_age_days = 30\nexpiry_warning_days = 40\n", "expiry_warning_days"),
        ("history_count = -1\n", "history_count"),
    ],
)
def test_invalid_profile_names_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    path = _write(tmp_path, "broken", body)
    with pytest.raises(ConfigError) as info:
        load_profile("broken", tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    _write(tmp_path, "bad", "min_length = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_profile("bad", tmp_path)
    with pytest.raises(ConfigError, match="nothere.toml does not exist"):
        load_profile("nothere", tmp_path)


def test_overrides_apply_setting_by_setting_and_are_validated() -> None:
    p = profile("cacak", history_count=3, max_age_days=90)
    assert (p.history_count, p.history_days, p.max_age_days, p.min_length) == (3, 365, 90, 8)
    with pytest.raises(ConfigError, match=r"passwords\.overrides\.min_length"):
        profile("cacak", min_length="long")
    with pytest.raises(ConfigError, match=r"passwords\.overrides\.colour"):
        profile("cacak", colour="red")


def test_settings_choose_the_profile(tmp_path: Path) -> None:
    settings = load_settings(passwords={"profile": "pabianice", "overrides": {"history_count": 8}})
    assert settings.passwords.policy_dir == POLICY_DIR
    p = profile_from_settings(settings.passwords)
    assert (p.name, p.history_count) == ("pabianice", 8)
    # another profile by name: as shipped, without the organisation's overrides
    assert profile_from_settings(settings.passwords, "cacak").history_count == 0
    with pytest.raises(ConfigError, match="passwords"):
        load_settings(passwords={"profiel": "cacak"})
