"""Issue 13: every catalogue is complete for a fresh extraction of the source — no missing
message, no fuzzy entry, placeholders as in the source (babel's checkers), the right number of
plural forms for the language — and sr_Cyrl is the transliteration of sr_Latn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent.parent
LANGUAGES = ["en", "sr_Latn", "sr_Cyrl", "pl", "ro", "vi"]
PLURALS = {"en": 2, "sr_Latn": 3, "sr_Cyrl": 3, "pl": 3, "ro": 3, "vi": 1}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The messages of the source as it is now (not the committed .pot)."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run(
        ["bash", str(ROOT / "deploy" / "translations.sh"), "extract", str(pot)],
        check=True,
        cwd=ROOT,
        env={"VENV": str(Path(sys.executable).parent.parent), "PATH": "/usr/bin:/bin"},
    )
    with pot.open("rb") as f:
        return read_po(f)


def load(language: str) -> Catalog:
    with (ROOT / "translations" / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


def test_source_has_messages(fresh: Catalog) -> None:
    assert len(fresh) > 500


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_complete_and_consistent(language: str, fresh: Catalog) -> None:
    catalog = load(language)
    problems: list[str] = []
    for message in fresh:
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        if found is None:
            problems.append(f"missing: {message.id!r}")
            continue
        if found.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        strings = found.string if found.pluralizable else (found.string,)
        if not all(strings):
            problems.append(f"untranslated: {message.id!r}")
        if found.pluralizable and len(strings) != PLURALS[language]:
            problems.append(f"{len(strings)} plural forms instead of {PLURALS[language]}: {message.id!r}")
    for message, errors in catalog.check():  # babel.messages.checkers: placeholders, plurals
        problems.extend(f"{e}: {message.id!r}" for e in errors)
    assert not problems, f"{language}: {len(problems)} problem(s), first: " + "\n".join(problems[:20])


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_forms_header(language: str) -> None:
    catalog = load(language)
    assert catalog.num_plurals == PLURALS[language]
    header = dict(catalog.mime_headers)["Plural-Forms"]
    assert f"nplurals={PLURALS[language]};" in header


def test_placeholders_differ_is_caught(tmp_path: Path) -> None:
    """The checker the test relies on does catch a renamed placeholder."""
    catalog = Catalog(locale="pl")
    catalog.add("Hello %(name)s", "Witaj %(imie)s")
    errors = [e for _m, errs in catalog.check() for e in errs]
    assert errors


def test_serbian_cyrillic_is_the_transliteration() -> None:
    sys.path.insert(0, str(ROOT / "deploy"))
    from sr_cyrl import transliterate

    latin, cyrillic = load("sr_Latn"), load("sr_Cyrl")
    for message in latin:
        if not message.id or message.fuzzy:
            continue
        other = cyrillic.get(message.id)
        assert other is not None, message.id
        if message.pluralizable:
            assert tuple(other.string) == tuple(transliterate(s) for s in message.string)
        else:
            assert other.string == transliterate(message.string)
    assert transliterate('Lozinka za nalog %(username)s <a href="https://x">ovde</a>, PIM') == (
        'Лозинка за налог %(username)s <a href="https://x">овде</a>, PIM'
    )
    assert transliterate("njegova ljubav, džep, {name}") == "његова љубав, џеп, {name}"


def test_every_template_parses() -> None:
    """A template that does not parse is silently skipped by the extraction: fail here instead."""
    from jinja2 import Environment

    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    broken = []
    for path in sorted((ROOT / "templates").rglob("*")):
        if path.suffix in (".html", ".txt"):
            try:
                env.parse(path.read_text())
            except Exception as exc:  # noqa: BLE001 — collect every broken template
                broken.append(f"{path.relative_to(ROOT)}: {exc}")
    assert not broken, broken
