"""The conformance report in each rulebook's own language: Polish for Pabianice, Romanian for
Cluj, Vietnamese for Hai Duong (lgsp), Serbian for Čačak and BISTrezor — the fixed words and each
article's rule in plain words, in the HTML and in the PDF's text; any other language is English."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from iam.admin import Role
from iam.cli import cli
from iam.conformance import catalogue, render, service
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in

#: The rulebooks, their language, and one served article's rule in that language.
BOOKS = {
    "pabianice": ("pl", "§ 19", "Hasła są zmieniane co najmniej co 30 dni."),
    "cluj": ("ro", "V Servere e", "Criptarea copiilor de siguranță."),
    "lgsp": ("vi", "Điều 4", "Nền tảng hoạt động 24/7 trên nhiều máy như một hệ thống"),
    "bistrezor": ("sr", "Član 4", "Mere zaštite važe za svakog korisnika"),
    "cacak": ("sr", "Član 20", "Lozinka: najmanje 8 karaktera"),
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _pdf_text(report: dict[str, Any], tmp_path: Path) -> str:
    pdf = tmp_path / f"{report['rulebook']['id']}-{report['language']}.pdf"
    pdf.write_bytes(render.pdf(report))
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return _flat(out)


def test_every_served_article_has_its_rule_in_english_and_in_the_rulebooks_language() -> None:
    """Read from the TOML files themselves, not through the model."""
    files = sorted(catalogue.CATALOGUE_DIR.glob("*.toml"))
    assert {f.stem for f in files} == set(BOOKS)
    for path in files:
        with path.open("rb") as fh:
            book = tomllib.load(fh)
        language = book["language"]
        assert language == BOOKS[path.stem][0], path.stem
        served = [a for a in book["articles"] if a.get("checks")]
        assert served, path.stem
        for article in served:
            plain = article.get("plain", {})
            assert plain.get("en", "").strip(), (path.stem, article["ref"], "en")
            assert plain.get(language, "").strip(), (path.stem, article["ref"], language)
            assert plain[language] != plain["en"], (path.stem, article["ref"])
        for article in book["articles"]:  # wherever English is given, the rulebook's language is too
            if "en" in article.get("plain", {}):
                assert language in article["plain"], (path.stem, article["ref"])


def test_the_pabianice_texts_are_spelled_in_polish() -> None:
    """The seed's extraction had dropped ą ę ś ć ż ź ń; none of its broken words is left."""
    book = catalogue.load("pabianice")
    texts = " ".join(a.text for a in book.articles)
    for broken in (
        "przetwarzaj cego",
        "Bezpiecze stwa",
        " s przez",
        "Starost ",
        "u ytkownik",
        "no nik",
        " si ",
    ):
        assert broken not in texts, broken
    assert "Starostę Pabianickiego" in texts and "Bezpieczeństwa Informacji" in texts
    assert "nie może być zmieniany" in texts and "Źródło pochodzenia" in texts


def test_every_language_has_every_word() -> None:
    assert set(render.WORDS) == {"en", "sr", "pl", "ro", "vi"} == set(render.LANGUAGES)
    for language, words in render.WORDS.items():
        assert words.keys() == render.WORDS["en"].keys(), language
        if language != "en":
            assert words["title"] != render.WORDS["en"]["title"], language
    reasons = {a.outside for name in catalogue.known() for a in catalogue.load(name).articles if a.outside}
    assert reasons <= render.WORDS["en"].keys()  # every reason an article is outside has its words


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("pl", "pl"),
        ("ro-RO", "ro"),
        ("vi", "vi"),
        ("sr-Latn", "sr"),
        ("sr-Cyrl", "sr"),  # Cyrillic pages get Serbian in Latin script (see render.WORDS)
        ("sr_Latn", "sr"),
        ("SR", "sr"),
        ("de", "en"),
        ("", "en"),
    ],
)
def test_a_tag_picks_its_words_and_an_unknown_language_gets_english(tag: str, expected: str) -> None:
    assert render.words(tag) == render.WORDS[expected]


@pytest.mark.parametrize("rulebook", ["pabianice", "cluj", "lgsp", "bistrezor"])
def test_the_report_in_the_rulebooks_language(
    sqlite_services: Services, tmp_path: Path, rulebook: str
) -> None:
    language, ref, rule = BOOKS[rulebook]
    w = render.WORDS[language]
    report = service.build(sqlite_services, rulebook, period="2026", language=language)
    by_ref = {a["ref"]: a for a in report["articles"]}
    assert by_ref[ref]["rule"].startswith(rule)
    english = {a.ref: a.plain["en"] for a in catalogue.load(rulebook).articles if a.plain}
    assert not [r for r, a in by_ref.items() if r in english and a["rule"] == english[r]]

    html = render.html(report)
    assert f'<html lang="{"sr-Latn" if language == "sr" else language}">' in html
    for key in ("title", "period", "generated", "totals", "hash", "why_outside", "outside the system"):
        assert w[key] in html, key
    assert rule in html and w["organisational"] in html
    assert render.WORDS["en"]["title"] not in html and "Not served by the software" not in html

    text = _pdf_text(report, tmp_path)
    assert f"{w['title']}: " in text and w["totals"] in text and w["hash"] in text
    assert rule in text and w["outside the system"].upper() in text
    assert render.WORDS["en"]["title"] not in text


def test_a_language_without_words_falls_back_to_english(sqlite_services: Services, tmp_path: Path) -> None:
    report = service.build(sqlite_services, "pabianice", period="2026", language="de")
    assert {a["ref"]: a["rule"] for a in report["articles"] if a["ref"] == "§ 19"} == {
        "§ 19": "Passwords are changed at least every 30 days."
    }
    assert "Conformance report" in render.html(report) and "Raport zgodności" not in render.html(report)
    assert '<html lang="en">' in render.html(report)  # the words' language, not the one asked for
    assert "Conformance report: " in _pdf_text(report, tmp_path)
    # words in the language, but a rulebook without its rules in it: the rules in English
    mixed = service.build(sqlite_services, "cacak", period="2026", language="pl")
    assert "Raport zgodności" in render.html(mixed)
    assert {a["ref"]: a["rule"] for a in mixed["articles"]}["Član 3"] == "Goals of the rulebook."


def test_serbian_tags_get_the_serbian_rule_texts(sqlite_services: Services) -> None:
    for tag in ("sr", "sr-Latn", "sr-Cyrl", "sr_Latn"):
        report = service.build(sqlite_services, "bistrezor", period="2026", language=tag)
        assert {a["ref"]: a["rule"] for a in report["articles"]}["Član 4"].startswith(BOOKS["bistrezor"][2])
        assert "Izveštaj o usklađenosti" in render.html(report) and '<html lang="sr-Latn">' in render.html(
            report
        )


def test_the_command_line_lists_and_uses_the_languages(sqlite_services: Services, tmp_path: Path) -> None:
    from iam.clitools import Ctx

    help_text = CliRunner().invoke(cli, ["conformance", "report", "--help"]).output
    for language in render.LANGUAGES:
        assert re.search(rf"\b{language}\b", help_text), language
    ctx = Ctx()
    ctx._settings, ctx._services = sqlite_services.settings, sqlite_services
    out = tmp_path / "cluj.html"
    args = ["conformance", "report", "--rulebook", "cluj", "--period", "2026", "--format", "html"]
    done = CliRunner().invoke(cli, [*args, "--language", "ro", "--out", str(out)], obj=ctx)
    assert done.exit_code in (0, 1), done.output
    html = out.read_text()
    assert "Raport de conformitate" in html and BOOKS["cluj"][2] in html


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("accept", "title"),
    [
        ("pl", "Raport zgodności: Instrukcja"),
        ("sr-Cyrl", "Izveštaj o usklađenosti: Instrukcja"),
        ("sr-Latn", "Izveštaj o usklađenosti: Instrukcja"),
        ("vi", "Báo cáo tuân thủ: Instrukcja"),
    ],
)
def test_the_console_page_reports_in_the_pages_language(
    services: Services, monkeypatch: pytest.MonkeyPatch, accept: str, title: str
) -> None:
    from iam.app import create_app

    languages = ["en", "sr-Latn", "sr-Cyrl", "pl", "ro", "vi"]
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"languages": languages}))
    app: Flask = create_app(services=services)
    app.config.update(TESTING=True)
    client = app.test_client()
    sign_in(client, services, person(services, Role.SECURITY_OFFICER))
    page = client.get(
        "/admin/conformance/?rulebook=pabianice&period=2026", headers={"Accept-Language": accept}
    )
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and title in html
    assert f'id="conformance-report" lang="{"sr-Latn" if accept.startswith("sr") else accept}"' in html
