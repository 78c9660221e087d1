"""The content rules, table-driven per profile: one case per rule, with the article it comes
from in the test id. Every violation is reported, not only the first."""

from __future__ import annotations

import datetime as dt

import pytest

from iam.passwords import IdentityFacts, check
from iam.passwords.rules import birth_date_forms, fold

from .conftest import profile

ANA = IdentityFacts(
    sub="u-1",
    username="ana.petrovic",
    given_name="Ana-Marija",
    family_name="Petrović",
    email="marija.p@cacak.example",
    birth_date=dt.date(1984, 3, 7),
    phone="+381 32 123-4567",
)
WOJ = IdentityFacts(
    username="wkowalczyk",
    given_name="Wojciech",
    family_name="Łukasiewicz",
    birth_date=dt.date(1979, 11, 23),
    phone="42 215 40 77",
)

# (profile, article, password, identity, expected rules)
CASES = [
    # -- Čačak, Član 20
    ("cacak", "CACAK Član 20: minimum 8", "Ab1!xyz", None, ["min_length"]),
    ("cacak", "CACAK Član 20: lower, upper, digit, special", "abcdefgh1!", None, ["character_classes"]),
    ("cacak", "CACAK Član 20: special required", "Abcdefgh12", None, ["character_classes"]),
    ("cacak", "CACAK Član 20: no given name", "Marija#2024x", ANA, ["personal_data"]),
    ("cacak", "CACAK Član 20: no surname (diacritics folded)", "PETROVIC!9x", ANA, ["personal_data"]),
    ("cacak", "CACAK Član 20: no date of birth", "Xy!07.03.1984", ANA, ["personal_data"]),
    ("cacak", "CACAK Član 20: no phone number", "Zz!1234567q", ANA, ["personal_data"]),
    ("cacak", "CACAK Član 20: other recognisable data (username)", "Q!9ana.petrovic", ANA, ["personal_data"]),
    ("cacak", "CACAK Član 20: acceptable", "Sunce-nad-Moravom7", ANA, []),
    # -- BISTrezor, Član 22
    ("bistrezor", "BISTREZOR Član 22: upper, lower, digit", "sve-mala-slova", None, ["character_classes"]),
    ("bistrezor", "BISTREZOR Član 22: no surname", "Petrovic2023", ANA, ["personal_data"]),
    ("bistrezor", "BISTREZOR Član 22: no birth date YYYYMMDD", "Kuca19840307", ANA, ["personal_data"]),
    ("bistrezor", "BISTREZOR Član 22: special not required", "Zeleni8Konj", ANA, []),
    # -- Pabianice, §19
    ("pabianice", "PABIANICE §19.1: minimum 8", "a1!b2@", None, ["min_length"]),
    ("pabianice", "PABIANICE §19.2: letters, digits, special", "abcdefghij", None, ["character_classes"]),
    ("pabianice", "PABIANICE §19.3: no dictionary word", "Parliament77!", None, ["dictionary_word"]),
    ("pabianice", "PABIANICE §19.3: no name (ł folded)", "lukasiewicz#1", WOJ, ["personal_data"]),
    ("pabianice", "PABIANICE §19.3: no birth date DDMMYYYY", "x!23111979q", WOJ, ["personal_data"]),
    ("pabianice", "PABIANICE §19.3: no phone number", "q!421540-77z", WOJ, ["personal_data"]),
    ("pabianice", "PABIANICE §19.3: no common password", "password1!", None, ["common_password"]),
    ("pabianice", "PABIANICE §19: acceptable", "Zq7!mvtr#Kp", WOJ, []),
    # -- strictest
    (
        "strictest",
        "CACAK Član 20 + PABIANICE §19: all at once",
        "ana",
        ANA,
        ["min_length", "character_classes", "personal_data"],
    ),
    # -- default (modern)
    ("default", "R-PW-1 default: 12 characters", "Short1!", None, ["min_length"]),
    ("default", "R-PW-1 default: no composition rules", "correct horse battery staple", None, []),
    ("default", "R-PW-1 default: common password refused", "qwertyuiop123", None, ["common_password"]),
    ("default", "R-PW-1 default: maximum 256", "x" * 257, None, ["max_length"]),
    ("default", "R-PW-1 default: e-mail local part", "my marija.p is long", ANA, ["personal_data"]),
]


@pytest.mark.parametrize(
    ("name", "article", "password", "identity", "expected"),
    CASES,
    ids=[f"{c[0]}: {c[1]}" for c in CASES],
)
def test_rule(
    name: str, article: str, password: str, identity: IdentityFacts | None, expected: list[str]
) -> None:
    violations = check(profile(name), password, identity=identity)
    assert sorted({v.rule for v in violations}) == sorted(expected), (article, violations)
    for v in violations:
        assert v.message.endswith(".") and v.message[0].isupper()


def test_every_violation_is_listed() -> None:
    """Not only the first: length, classes, given name, user name and birth date at once."""
    violations = check(profile("strictest"), "ana1984", identity=ANA)
    messages = [v.message for v in violations]
    assert [v.rule for v in violations] == ["min_length", "character_classes"] + ["personal_data"] * 3
    assert any("given name" in m for m in messages)
    assert any("user name" in m for m in messages)
    assert any("date of birth" in m for m in messages)
    assert "upper-case letter" in messages[1] and "special character" in messages[1]


def test_at_least_n_of_these_classes() -> None:
    p = profile("default", class_choice=["lower", "upper", "digit", "special"], min_classes=3)
    assert [v.rule for v in check(p, "onlylowercaseletters")] == ["character_classes"]
    assert "at least 3 of these kinds" in check(p, "onlylowercaseletters")[0].message
    assert check(p, "Lower and Upper and 7") == []


def test_short_name_parts_are_ignored() -> None:
    """Parts shorter than 3 characters (e.g. "Ana" is 3, kept; "Li" is ignored)."""
    li = IdentityFacts(given_name="Li", family_name="Wu")
    assert check(profile("cacak"), "Lizard-Wumpus1!", identity=li) == []


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Čačak", "cacak"),
        ("Łódź", "lodz"),
        ("Đặng Thị Hương", "dang thi huong"),
        ("Ștefan Țăranu", "stefan taranu"),
        ("Søren", "soren"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_vietnamese_name_is_found_without_tones() -> None:
    huong = IdentityFacts(given_name="Hương", family_name="Nguyễn")
    assert [v.rule for v in check(profile("cacak"), "Huong!2024Z", identity=huong)] == ["personal_data"]
    assert [v.rule for v in check(profile("cacak"), "NGUYEN#z9x", identity=huong)] == ["personal_data"]


@pytest.mark.parametrize(
    "form", ["19840307", "07031984", "07.03.1984", "7.3.1984", "1984-03-07", "0703", "1984", "070384"]
)
def test_birth_date_forms(form: str) -> None:
    assert form in birth_date_forms(dt.date(1984, 3, 7))
    violations = check(profile("cacak"), f"Qx!{form}z", identity=ANA)
    assert [v.rule for v in violations] == ["personal_data"]
