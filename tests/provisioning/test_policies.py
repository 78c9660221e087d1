"""Naming and birthright policies as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from iam.errors import ConfigError
from provisioning.service.policies import latin, load_birthright, load_naming, serbian_latin

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.parametrize(
    ("given", "family", "rule", "expected"),
    [
        ("Đorđe", "Anđelković", "given.family", "dorde.andelkovic"),
        ("Łukasz", "Wałęsa", "given.family", "lukasz.walesa"),
        ("Ștefan", "Țăran", "gfamily", "staran"),
        ("Nguyễn", "Thị Minh Khai", "given.family", "nguyen.thiminhkhai"),
        ("Čedomir", "Čačak", "given", "cedomir"),
        ("Ana", "Kovač", "DOnnn", "DO042"),
    ],
)
def test_transliterated_usernames(given: str, family: str, rule: str, expected: str) -> None:
    naming = load_naming(POLICIES, rule)
    assert naming.candidates(given=given, family=family, employee_number="42")[0] == expected


def test_collisions_follow_the_rule_and_fit_twenty_characters() -> None:
    naming = load_naming(POLICIES, "given.family")
    names = naming.candidates(
        given="Maximilian", family="Schwarzenberger-Đurić", employee_number="1", limit=12
    )
    assert names[0] == "maximilian.schwarzen"
    assert names[1] == "maximilian.schwarze2"
    assert names[10] == "maximilian.schwarz11"
    assert all(len(n) <= 20 for n in names)
    assert len(set(names)) == len(names)


def test_dannn_has_no_collision_alternative() -> None:
    assert load_naming(POLICIES, "DOnnn").candidates(given="A", family="B", employee_number="7") == ["DO007"]


@pytest.mark.parametrize(
    ("cyrillic", "latin_spelling"),
    [
        (("Милош", "Јовановић"), ("Miloš", "Jovanović")),
        (("Ђорђе", "Анђелковић"), ("Đorđe", "Anđelković")),
        (("Љиљана", "Шушњар"), ("Ljiljana", "Šušnjar")),
        (("Џевад", "Жижић"), ("Dževad", "Žižić")),
        (("Ћирило", "Чолаковић"), ("Ćirilo", "Čolaković")),
        (("Хана", "Цвијић"), ("Hana", "Cvijić")),
    ],
)
def test_serbian_cyrillic_and_latin_spellings_give_one_username(
    cyrillic: tuple[str, str], latin_spelling: tuple[str, str]
) -> None:
    """R-JML-3: the official Serbian Cyrillic → Latin mapping applies before ASCII folding, so
    Милош and Miloš are one name (anyascii alone reads Ш as "sh", Ж as "zh", Ђ as "dj")."""
    naming = load_naming(POLICIES, "given.family")
    from_cyrillic = naming.candidates(given=cyrillic[0], family=cyrillic[1], employee_number="1")
    from_latin = naming.candidates(given=latin_spelling[0], family=latin_spelling[1], employee_number="1")
    assert from_cyrillic == from_latin
    assert serbian_latin(" ".join(cyrillic)) == " ".join(latin_spelling)


def test_serbian_digraphs_in_capitals() -> None:
    assert serbian_latin("ЉИЉАНА Љиљана ЏЕП Њ") == "LJILJANA Ljiljana DŽEP Nj"
    assert latin("Милош Јовановић") == "Milos Jovanovic"


def test_vietnamese_tone_marks_dropped() -> None:
    assert latin("Trần Hưng Đạo") == "Tran Hung Dao"


def test_birthright_rules_and_ou_mapping() -> None:
    rights = load_birthright(POLICIES)
    assert rights.groups_for(department="finance", title="Head of Budget", kind="civil_servant") == [
        "all-staff",
        "finance",
        "finance-approvers",
    ]
    assert rights.groups_for(department="Legal", title="Clerk", kind="contractor") == ["external-staff"]
    assert rights.ou_for("Finance", "OU=HR,DC=x") == "OU=Finance,OU=HR,DC=x"
    assert rights.ou_for("Legal", "OU=HR,DC=x") == "OU=HR,DC=x"


def test_bad_policy_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "naming.toml").write_text('rule = "x"\n[rules.x]\nformat = "{nickname}"\n')
    with pytest.raises(ConfigError, match="unknown fields"):
        load_naming(tmp_path)
    (tmp_path / "birthright.toml").write_text('[[rule]]\ndepartment = "IT"\n')
    with pytest.raises(ConfigError, match="gives no groups"):
        load_birthright(tmp_path)
