"""The page's language: ui_locales → saved choice (person or cookie) → Accept-Language →
default; the switch (CSRF-protected POST) and ``<html lang>``; refusals translated on pages."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from iam import i18n
from iam.errors import Conflict
from iam.services import Services

ALL = ["en", "sr-Latn", "sr-Cyrl", "pl", "ro", "vi"]


def test_match() -> None:
    assert i18n.match(["sr-Cyrl-RS"], ALL) == "sr-Cyrl"
    assert i18n.match(["pl-PL"], ALL) == "pl"
    assert i18n.match(["sr"], ALL) == "sr-Latn"  # the first Serbian one offered
    assert i18n.match(["SR-cyrl"], ALL) == "sr-Cyrl"
    assert i18n.match(["de", "vi-VN"], ALL) == "vi"
    assert i18n.match(["de"], ALL) is None


@pytest.fixture
def polyglot(services: Services, monkeypatch: pytest.MonkeyPatch) -> Flask:
    from iam.app import create_app

    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"languages": ALL}))
    app = create_app(services=services)
    app.config.update(TESTING=True)
    return app


def _lang(html: str) -> str:
    found = re.search(r'<html lang="([^"]+)">', html)
    assert found
    return found.group(1)


def test_order_of_sources(polyglot: Flask) -> None:
    client = polyglot.test_client()
    # Accept-Language when nothing else
    assert _lang(client.get("/login", headers={"Accept-Language": "ro-RO,ro;q=0.9"}).get_data(True)) == "ro"
    # nothing at all: the organisation's default
    assert _lang(client.get("/login").get_data(True)) == "en"
    # the visitor's switch (a form POST with its CSRF token) beats Accept-Language
    page = client.get("/login", headers={"Accept-Language": "ro"}).get_data(True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    refused = client.post("/language", data={"language": "pl", "next": "/login"})
    assert refused.status_code == 400  # no CSRF token: refused, nothing changed
    assert client.get_cookie(i18n.COOKIE) is None
    resp = client.post("/language", data={"language": "pl", "next": "/login", "csrf_token": token.group(1)})
    assert resp.status_code == 303 and resp.headers["Location"] == "/login"
    html = client.get("/login", headers={"Accept-Language": "ro"}).get_data(True)
    assert _lang(html) == "pl" and "Zaloguj się" in html
    # an application's ui_locales beats the visitor's choice for that sign-in
    client.get("/authorize?ui_locales=sr-Cyrl&client_id=nobody&redirect_uri=https://x.test/cb")
    html = client.get("/login", headers={"Accept-Language": "ro"}).get_data(True)
    assert _lang(html) == "sr-Cyrl" and "Пријава" in html


def test_switch_refuses_unknown_language_and_foreign_next(polyglot: Flask) -> None:
    client = polyglot.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(True))
    assert token
    bad = client.post("/language", data={"language": "de", "csrf_token": token.group(1)})
    assert bad.status_code == 400
    away = client.post(
        "/language", data={"language": "vi", "next": "//evil.test/", "csrf_token": token.group(1)}
    )
    assert away.status_code == 303 and away.headers["Location"] == "/"


def test_refusal_translated_on_a_page_english_in_str(polyglot: Flask) -> None:
    exc = Conflict(i18n.N_("The request is already %(state)s."), state="approved")
    assert str(exc) == "The request is already approved."
    with polyglot.test_request_context("/", headers={"Accept-Language": "pl"}):
        assert exc.localized() == "Wniosek ma już stan approved."
    with polyglot.test_request_context("/", headers={"Accept-Language": "sr-Cyrl"}):
        assert exc.localized() == "Захтев је већ у стању approved."
