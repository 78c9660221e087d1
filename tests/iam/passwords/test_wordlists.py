"""Issue 13 part 2: dictionary words in every configured language, folded for diacritics."""

from __future__ import annotations

import pytest

from iam.config import load_settings
from iam.passwords import check
from iam.passwords.profiles import profile_from_settings
from iam.passwords.wordlists import fold_word, is_word

ALL = ["en", "pl", "sr-Latn", "sr-Cyrl", "ro", "vi"]


def pabianice(languages: list[str]):
    settings = load_settings(dev_mode=True, languages=languages, passwords={"profile": "pabianice"})
    return profile_from_settings(settings.passwords, languages=settings.languages)


def rules(profile, password: str) -> set[str]:
    return {v.rule for v in check(profile, password)}


@pytest.mark.parametrize("password", ["Samochod#12", "Samochód#12", "SAMOCHÓD!2026"])
def test_polish_word_refused_when_polish_configured(password: str) -> None:
    assert "dictionary_word" in rules(pabianice(["en", "pl"]), password)


def test_polish_word_passes_when_only_english_configured() -> None:
    """The regression of the issue: before the word lists, this passed in a Polish office."""
    assert "dictionary_word" not in rules(pabianice(["en"]), "Samochod#12")


@pytest.mark.parametrize(
    ("language", "password"),
    [
        ("sr-Latn", "Lozinka#2026"),  # lozinka
        ("sr-Cyrl", "Računar#770"),  # računar (both scripts share one list)
        ("sr-Latn", "Лозинка#2026"),  # typed in Cyrillic
        ("ro", "Parolă#1234"),  # parolă
        ("ro", "Calculator#9"),
        ("vi", "Matkhau#2026"),  # mật khẩu: two syllables
        ("vi", "Nguyễn#12345"),  # one syllable of 4+ letters
    ],
)
def test_word_of_each_language_refused(language: str, password: str) -> None:
    assert "dictionary_word" in rules(pabianice(["en", language]), password)


@pytest.mark.parametrize("password", ["Xq7#vLp9!mZt", "Trzy-4*Kwzrp!", "Vbq9#Zt4%Kwm"])
def test_unrelated_strong_password_passes(password: str) -> None:
    assert rules(pabianice(ALL), password) == set()


def test_only_profiles_that_ban_dictionary_words_get_lists() -> None:
    settings = load_settings(dev_mode=True, languages=ALL, passwords={"profile": "default"})
    profile = profile_from_settings(settings.passwords, languages=settings.languages)
    if not profile.refuse_dictionary_words:
        assert profile.dictionary_languages == ()
        assert "dictionary_word" not in rules(profile, "Samochod#12345")


def test_fold_word() -> None:
    assert fold_word("Samochód") == "samochod"
    assert fold_word("Лозинка") == "lozinka"
    assert fold_word("Đặng") == "dang"
    assert fold_word("Ștefan") == "stefan"
    assert not is_word("abc", ["pl"])  # too short to count
