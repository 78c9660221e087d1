"""Dictionary words per language (issue 13 part 2): the most frequent words of Polish,
Serbian, Romanian and Vietnamese (and any other language ``wordfreq`` knows), folded like
passwords are (no diacritics, Cyrillic written in Latin letters), for the profiles that refuse
dictionary words.

The words come from the ``wordfreq`` package (code Apache-2.0; its word frequency data
CC-BY-SA 4.0, built from Wikipedia, subtitles, news, books, web text and more). A list is loaded
the first time a password is checked in that language, cut to the :data:`TOP_N` most frequent
words of at least :data:`MIN_LETTERS` letters, and kept as a frozenset; ``wordfreq``'s own cache
of the full list is dropped again. English words and names come from ``zxcvbn``
(:func:`iam.passwords.rules.dictionary_words`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from functools import cache

from anyascii import anyascii

log = logging.getLogger("iam.passwords")

TOP_N = 50_000
"""How many of a language's most frequent words are kept (before the length cut)."""

MIN_LETTERS = 4
"""Shorter words are not refused (every short string is some word in some language)."""

SYLLABIC = frozenset({"vi"})
"""Languages whose words are written as separate syllables (``mật khẩu``): a password made of
two of their frequent syllables (``matkhau``) counts as a word too."""

_WORDFREQ_CODES = {"sr": "sh", "hr": "sh", "bs": "sh", "me": "sh"}
"""Language codes ``wordfreq`` files under another name (Serbo-Croatian, both scripts)."""

_lock = threading.Lock()


def fold_word(word: str) -> str:
    """A word as the password check compares it: lower case, no diacritics, Latin letters only
    (``Samochód`` → ``samochod``, ``лозинка`` → ``lozinka``, ``Đặng`` → ``dang``)."""
    from iam.passwords.rules import fold

    return "".join(c for c in anyascii(fold(word)).casefold() if c.isalpha())


def language_code(tag: str) -> str:
    """The ``wordfreq`` language of a BCP 47 tag (``sr-Cyrl`` → ``sh``, ``pl-PL`` → ``pl``)."""
    base = tag.replace("_", "-").split("-")[0].lower()
    return _WORDFREQ_CODES.get(base, base)


def _raw_words(code: str) -> list[str]:
    import wordfreq

    try:
        return list(wordfreq.top_n_list(code, TOP_N, wordlist="small"))
    except LookupError:
        log.warning("no word list for language %r; only English dictionary words are refused", code)
        return []
    finally:
        wordfreq.get_frequency_list.cache_clear()  # keep only our cut list in memory


@cache
def _syllables(code: str) -> frozenset[str]:
    with _lock:
        return frozenset(w for w in (fold_word(x) for x in _raw_words(code)) if len(w) >= 2)


@cache
def words(code: str) -> frozenset[str]:
    """The folded frequent words of ``code`` with at least :data:`MIN_LETTERS` letters."""
    if code == "en":
        return frozenset()  # English comes from zxcvbn
    if code in SYLLABIC:
        return frozenset(w for w in _syllables(code) if len(w) >= MIN_LETTERS)
    with _lock:
        return frozenset(w for w in (fold_word(x) for x in _raw_words(code)) if len(w) >= MIN_LETTERS)


def _two_syllables(letters: str, code: str) -> bool:
    syllables = _syllables(code)
    return any(letters[:i] in syllables and letters[i:] in syllables for i in range(2, len(letters) - 1))


def is_word(letters: str, tags: Iterable[str]) -> bool:
    """Whether ``letters`` (already folded, letters only) is a frequent word of one of the
    languages ``tags``."""
    if len(letters) < MIN_LETTERS:
        return False
    for code in {language_code(t) for t in tags}:
        if letters in words(code):
            return True
        if code in SYLLABIC and _two_syllables(letters, code):
            return True
    return False
