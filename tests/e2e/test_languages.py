"""Issue 13: every page in the person's language, in real Chromium against a live provider
(``iam serve`` + ``iam worker``) that offers all six languages.

Known translated strings are asserted (not only "not English"): sign-in, change password, the
authenticator set-up (TOTP), a PIM request and the HR pages in each language; ``ui_locales=
sr-Cyrl`` of an application gives Cyrillic; a language chosen with the switch is remembered
across page loads (cookie for a visitor, saved for a signed-in person). A screenshot of the login
page in each language goes to ``$IAM_LANGUAGE_SCREENSHOTS`` (default: the test's folder)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from iam.directory.errors import EntryExists
from tests.e2e.conftest import CI, DEMO_PASSWORD, LiveProvider, _provider_env, free_port

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e

LANGUAGES = ["en", "sr-Latn", "sr-Cyrl", "pl", "ro", "vi"]
ROLE = """
title = "Operations admins"
groups = ["Ops Admins"]
max_minutes = 120
default_minutes = 30
approvers = ["bob"]
min_level = "password"
"""

#: What each page says in each language (from the catalogues).
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "sign_in": "Sign in",
        "username": "Username",
        "password": "Password",
        "change_password": "Change your password",
        "totp": "Set up an authenticator app",
        "reauth": "Confirm your password",
        "pim": "My privileged roles",
        "pim_request": "Request: Operations admins",
        "hr": "HR events",
        "switch": "Change language",
    },
    "sr-Latn": {
        "sign_in": "Prijava",
        "username": "Korisničko ime",
        "password": "Lozinka",
        "change_password": "Promenite lozinku",
        "totp": "Podesi aplikaciju za autentifikaciju",
        "reauth": "Potvrdite lozinku",
        "pim": "Moje privilegovane uloge",
        "pim_request": "Zahtev: Operations admins",
        "hr": "Kadrovski događaji",
        "switch": "Promeni jezik",
    },
    "sr-Cyrl": {
        "sign_in": "Пријава",
        "username": "Корисничко име",
        "password": "Лозинка",
        "change_password": "Промените лозинку",
        "totp": "Подеси апликацију за аутентификацију",
        "reauth": "Потврдите лозинку",
        "pim": "Моје привилеговане улоге",
        "pim_request": "Захтев: Operations admins",
        "hr": "Кадровски догађаји",
        "switch": "Промени језик",
    },
    "pl": {
        "sign_in": "Zaloguj się",
        "username": "Identyfikator",
        "password": "Hasło",
        "change_password": "Zmień hasło",
        "totp": "Skonfiguruj aplikację uwierzytelniającą",
        "reauth": "Potwierdź hasło",
        "pim": "Moje role uprzywilejowane",
        "pim_request": "Wniosek: Operations admins",
        "hr": "Zdarzenia kadrowe",
        "switch": "Zmień język",
    },
    "ro": {
        "sign_in": "Autentificare",
        "username": "Nume de utilizator",
        "password": "Parolă",
        "change_password": "Schimbați parola",
        "totp": "Configurați o aplicație de autentificare",
        "reauth": "Confirmați parola",
        "pim": "Rolurile mele privilegiate",
        "pim_request": "Cerere: Operations admins",
        "hr": "Evenimente de resurse umane",
        "switch": "Schimbați limba",
    },
    "vi": {
        "sign_in": "Đăng nhập",
        "username": "Tên người dùng",
        "password": "Mật khẩu",
        "change_password": "Đổi mật khẩu của bạn",
        "totp": "Thiết lập ứng dụng xác thực",
        "reauth": "Xác nhận mật khẩu",
        "pim": "Vai trò đặc quyền của tôi",
        "pim_request": "Yêu cầu: Operations admins",
        "hr": "Sự kiện nhân sự",
        "switch": "Đổi ngôn ngữ",
    },
}


@pytest.fixture(scope="module")
def polyglot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """A provider offering all six languages; alice may request ``ops``, bob is an HR operator."""
    var_dir = tmp_path_factory.mktemp("provider-languages")
    roles = var_dir / "roles"
    roles.mkdir()
    (roles / "ops.toml").write_text(ROLE)
    port = free_port()
    env = _provider_env(var_dir, port, None)
    env.update(
        {
            "IAM_ORGANISATION": "Grad Čačak",
            "IAM_TIMEZONE": "Europe/Belgrade",
            "IAM_LANGUAGES": '["' + '", "'.join(LANGUAGES) + '"]',
            "IAM_PIM__ROLES_DIR": str(roles),
        }
    )
    provider = LiveProvider(kind="local", port=port, var_dir=Path(var_dir), env=env)
    try:
        provider.start()
        directory = provider.services().directory
        for group in ("Ops Admins", "iam-hr-operators"):
            with contextlib.suppress(EntryExists):
                directory.create_group(group)
        bob = directory.find_user(username="bob")
        assert bob is not None
        directory.add_member("iam-hr-operators", bob.id)
        provider.cli("pim", "eligible", "add", "ops", "alice")
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("IAM_LANGUAGE_SCREENSHOTS") or tmp_path_factory.mktemp("screens"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sign_in(page: Page, provider: LiveProvider, username: str, text: dict[str, str]) -> None:
    page.goto(f"{provider.issuer}/login")
    page.get_by_label(text["username"], exact=True).fill(username)
    page.get_by_label(text["password"], exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name=text["sign_in"], exact=True).click()
    expect(page).to_have_url(f"{provider.issuer}/account")


@pytest.mark.parametrize("language", LANGUAGES)
def test_pages_in_each_language(polyglot: LiveProvider, browser: Any, screens: Path, language: str) -> None:
    text = TEXT[language]
    context = browser.new_context(locale=language)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(f"{polyglot.issuer}/login")
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.get_by_role("heading", name=text["sign_in"], exact=True)).to_be_visible()
        expect(page.locator("#language-submit")).to_have_text(text["switch"])
        page.screenshot(path=str(screens / f"login-{language}.png"), full_page=True)

        _sign_in(page, polyglot, "alice", text)
        page.goto(f"{polyglot.issuer}/password/change")
        expect(page.get_by_role("heading", name=text["change_password"])).to_be_visible()
        page.goto(f"{polyglot.issuer}/mfa/enroll")
        expect(
            page.get_by_role("heading", name=re.compile(f"^({text['totp']}|{text['reauth']})$"))
        ).to_be_visible()
        page.goto(f"{polyglot.issuer}/pim/")
        expect(page.get_by_role("heading", name=text["pim"], exact=True)).to_be_visible()
        page.locator("#request-ops").click()
        expect(page.get_by_role("heading", name=text["pim_request"])).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", language)
        context.clear_cookies()

        _sign_in(page, polyglot, "bob", text)
        page.goto(f"{polyglot.issuer}/hr/events")
        expect(page.get_by_role("heading", name=text["hr"], exact=True)).to_be_visible()
    finally:
        context.close()


def test_ui_locales_sr_cyrl_gives_cyrillic(polyglot: LiveProvider, browser: Any) -> None:
    context = browser.new_context(locale="en-GB")  # the browser asks for English
    try:
        page = context.new_page()
        params = {
            "response_type": "code",
            "client_id": "demo-app",
            "redirect_uri": f"{polyglot.issuer}/demo/callback",
            "scope": "openid",
            "state": "st-1",
            "nonce": "n-1",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "ui_locales": "sr-Cyrl en",
        }
        page.goto(f"{polyglot.issuer}/authorize?{urlencode(params)}")
        expect(page).to_have_url(re.compile(r"/login$"))
        expect(page.locator("html")).to_have_attribute("lang", "sr-Cyrl")
        expect(page.get_by_role("heading", name="Пријава", exact=True)).to_be_visible()
        page.get_by_label("Корисничко име", exact=True).fill("alice")
        page.get_by_label("Лозинка", exact=True).fill("wrong-password")
        page.get_by_role("button", name="Пријава", exact=True).click()
        expect(page.locator("[role=alert]").first).to_contain_text("Погрешно корисничко име или лозинка")
    finally:
        context.close()


def test_switch_is_remembered_for_a_visitor(polyglot: LiveProvider, browser: Any) -> None:
    context = browser.new_context(locale="en-GB")
    try:
        page = context.new_page()
        page.goto(f"{polyglot.issuer}/login")
        expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
        page.locator("#language-select").select_option("pl")
        page.locator("#language-submit").click()  # a plain form POST with its CSRF token
        expect(page).to_have_url(f"{polyglot.issuer}/login")
        expect(page.get_by_role("heading", name="Zaloguj się", exact=True)).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "pl")
        page.goto(f"{polyglot.issuer}/login")  # a new page load: still Polish (the cookie)
        expect(page.get_by_role("heading", name="Zaloguj się", exact=True)).to_be_visible()
    finally:
        context.close()


def test_switch_is_saved_for_a_signed_in_person(polyglot: LiveProvider, browser: Any) -> None:
    first = browser.new_context(locale="en-GB")
    try:
        page = first.new_page()
        _sign_in(page, polyglot, "hana", TEXT["en"])
        page.locator("#language-select").select_option("ro")
        page.locator("#language-submit").click()
        expect(page).to_have_url(f"{polyglot.issuer}/account")
        expect(page.locator("html")).to_have_attribute("lang", "ro")
    finally:
        first.close()
    # another browser (no cookie), English Accept-Language: after signing in, Romanian
    second = browser.new_context(locale="en-GB")
    try:
        page = second.new_page()
        _sign_in(page, polyglot, "hana", TEXT["en"])
        expect(page.locator("html")).to_have_attribute("lang", "ro")
        page.goto(f"{polyglot.issuer}/password/change")
        expect(page.get_by_role("heading", name="Schimbați parola")).to_be_visible()
        # back to English for the other tests of this module
        page.locator("#language-select").select_option("en")
        page.locator("#language-submit").click()
        expect(page.locator("html")).to_have_attribute("lang", "en")
    finally:
        second.close()
