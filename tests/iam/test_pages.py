"""What every page shares (iam/pages.py): language tags and the time zone checked at start,
times in the organisation's zone, the navigation registry (deny by default), our own error
pages (JSON for the APIs), and the change-password page bound to the signed-in person.
The same pages in a real browser: tests/e2e/test_pages.py."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask

from iam.config import load_settings
from iam.errors import ConfigError
from iam.pages import NavLink, display, localtime, nav_links, register_nav
from iam.services import Services
from tests.sso.helpers import PASSWORD, csrf_from, login, make_user


# -- settings checked at start -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "canonical", "catalogues"),
    [
        (["en", "sr-Latn"], ["en", "sr-Latn"], {"en": "en", "sr-Latn": "sr_Latn"}),
        (["sr-latn", "de-AT"], ["sr-Latn", "de-AT"], {"sr-Latn": "sr_Latn", "de-AT": "de_AT"}),
        (["sr-Cyrl-RS"], ["sr-Cyrl-RS"], {"sr-Cyrl-RS": "sr_Cyrl_RS"}),
    ],
)
def test_language_tags_map_to_catalogue_names(
    tags: list[str], canonical: list[str], catalogues: dict[str, str]
) -> None:
    settings = load_settings(dev_mode=True, languages=tags)
    assert settings.languages == canonical
    assert settings.catalogues == catalogues


@pytest.mark.parametrize("bad", [["xx-Foo"], ["sr_Latn"], ["en", "zz"], [], ["en", "EN"]])
def test_a_bad_language_stops_the_start_naming_the_setting(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"^Invalid setting languages"):
        load_settings(dev_mode=True, languages=bad)


def test_time_zone_is_checked_and_hr_dates_follow_it() -> None:
    settings = load_settings(dev_mode=True, timezone="Europe/Belgrade")
    assert settings.provisioning.timezone == "Europe/Belgrade"  # one org-wide setting
    own = load_settings(dev_mode=True, timezone="Europe/Belgrade", provisioning={"timezone": "UTC"})
    assert own.provisioning.timezone == "UTC"  # an explicit HR zone still wins
    with pytest.raises(ConfigError, match=r"^Invalid setting timezone.*IANA"):
        load_settings(dev_mode=True, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"^Invalid setting provisioning.timezone"):
        load_settings(dev_mode=True, provisioning={"timezone": "CEST+1"})


# -- pages in the organisation's language and time -----------------------------------------------
@pytest.fixture
def town(services: Services, monkeypatch: pytest.MonkeyPatch) -> Flask:
    from iam.app import create_app

    settings = services.settings.model_copy(
        update={"languages": ["en", "sr-Latn"], "timezone": "Europe/Belgrade", "organisation": "Grad Čačak"}
    )
    monkeypatch.setattr(services, "settings", settings)
    app = create_app(services=services)
    app.config.update(TESTING=True)
    return app


def test_serbian_latin_browser_gets_every_page(town: Flask) -> None:
    client = town.test_client()
    for path in ("/login", "/password/change", "/no-such-page"):
        resp = client.get(path, headers={"Accept-Language": "sr-Latn,sr;q=0.8"})
        assert resp.status_code in (200, 404), path
        html = resp.get_data(as_text=True)
        assert '<html lang="sr-Latn">' in html
        assert "Grad Čačak" in html


def test_times_in_the_organisations_zone(town: Flask) -> None:
    winter = dt.datetime(2026, 1, 15, 23, 30, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 7, 15, 23, 30, tzinfo=dt.UTC)
    with town.app_context():
        assert localtime(winter) == "2026-01-16 00:30 CET"
        assert localtime(summer, "seconds") == "2026-07-16 01:30:00 CEST"
        assert localtime(winter.replace(tzinfo=None)) == "2026-01-16 00:30 CET"  # naive = UTC
        assert localtime(winter, "date") == "2026-01-16"
        assert localtime("2026-01-15T23:30:00+00:00") == "2026-01-16 00:30 CET"
        assert localtime("2026-01-15") == "2026-01-15"
        assert localtime(None) == "—"
        result = {"username": "dara.dokic", "start_at": "2026-01-15T23:00:00+00:00", "groups": ["a", "b"]}
        assert display(result["start_at"]) == "2026-01-16 00:00 CET"
        assert display(result["groups"]) == "a, b"
        assert display({}) == "—" and display([]) == "—" and display(None) == "—"
        assert display("20260115") == "20260115"  # an employee number is not a date
        assert display(True) == "yes"


# -- navigation: deny by default -----------------------------------------------------------------
def test_navigation_shows_a_link_only_when_its_check_passes(town: Flask) -> None:
    def boom() -> bool:
        raise RuntimeError("directory down")

    register_nav(
        town,
        NavLink("iam.healthz", "Always", lambda: True, order=1, link_id="always"),
        NavLink("iam.metrics", "Never", lambda: False, order=2),
        NavLink("iam.readyz", "Broken", boom, order=3),
    )
    with town.test_request_context("/healthz"):
        town.preprocess_request()
        links = nav_links()
    assert [(n["label"], n["id"], n["current"]) for n in links if n["id"] == "always"] == [
        ("Always", "always", True)
    ]
    labels = {n["label"] for n in links}
    assert "Never" not in labels and "Broken" not in labels
    assert "Your account" not in labels  # nobody is signed in


def test_signed_in_navigation_follows_rights(town: Flask, services: Services) -> None:
    make_user(services, "alice")
    client = town.test_client()
    assert login(client, "alice", PASSWORD).status_code == 302
    html = client.get("/account").get_data(as_text=True)
    nav = re.findall(r'<li><a href="([^"]+)" id="nav-[^"]+"', html)
    assert nav == [
        "/",
        "/account",
        "/my-access",
        "/mfa/devices",
        "/password/change",
        "/pim/",
        "/requests/inbox",
        "/requests/",
        "/reviews/",
        "/logout",
    ]
    assert "/hr/events" not in nav and "/pim/overview" not in nav

    group = services.settings.provisioning.operators_group
    alice = services.directory.find_user(username="alice")
    assert alice is not None
    services.directory.create_group(group)
    services.directory.add_member(group, alice.id)
    html = client.get("/account").get_data(as_text=True)
    # the HR pages are in the console now: the header names the console, not each page
    assert 'href="/admin/" id="nav-admin"' in html and "/hr/events" not in html
    assert client.get("/hr/events").status_code == 200  # the operators' group opens it as before


# -- error pages ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status", "title"),
    [
        ("get", "/no-such-page", 404, "Page not found"),
        ("post", "/account", 405, "Not possible here"),
        ("post", "/account/sessions/x/end", 400, "The request could not be understood"),
    ],
)
def test_error_pages_are_ours(town: Flask, method: str, path: str, status: int, title: str) -> None:
    resp = getattr(town.test_client(), method)(path, headers={"Accept": "text/html"})
    assert resp.status_code == status
    html = resp.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in html
    assert 'id="organisation">Grad Čačak<' in html and 'id="error-next"' in html
    for stock in ("The requested URL was not found", "The method is not allowed", "CSRF token"):
        assert stock not in html


def test_api_errors_stay_json(town: Flask) -> None:
    resp = town.test_client().get("/api/v1/nothing-here", headers={"Accept": "text/html"})
    assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"


# -- change password: bound to the signed-in person ----------------------------------------------
def test_signed_in_person_changes_only_their_own_password(town: Flask, services: Services) -> None:
    make_user(services, "alice")
    make_user(services, "bob", password="Bobs-0wn-Passw0rd!")
    client = town.test_client()
    assert login(client, "alice", PASSWORD).status_code == 302
    page = client.get("/password/change").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="username"[^>]*readonly[^>]*value="alice"', page)
    assert re.search(r'<div id="password-rules">.*?<li>', page, re.S)
    new = "Fresh-Horse-Battery-42"
    resp = client.post(
        "/password/change",
        data={
            "csrf_token": csrf_from(page),
            "username": "bob",  # a crafted name is ignored: the field is the signed-in person's
            "current_password": PASSWORD,
            "new_password": new,
            "confirm": new,
        },
    )
    assert resp.status_code == 302
    assert services.directory.authenticate("alice", new).username == "alice"
    assert services.directory.authenticate("bob", "Bobs-0wn-Passw0rd!").username == "bob"


def test_errors_name_their_field(town: Flask, services: Services) -> None:
    make_user(services, "alice")
    client = town.test_client()
    login(client, "alice", PASSWORD)
    page = client.get("/password/change").get_data(as_text=True)

    def post(**fields: Any) -> str:
        data = {"csrf_token": csrf_from(page), "current_password": PASSWORD, **fields}
        resp = client.post("/password/change", data=data)
        assert resp.status_code == 400
        return str(resp.get_data(as_text=True))

    html = post(new_password="short", confirm="short")
    assert re.search(r'<input aria-describedby="new_password-error password-rules" aria-invalid="true"', html)
    assert 'id="new_password-error"' in html
    assert 'id="current_password-error"' not in html
    html = post(new_password="Fresh-Horse-Battery-42", confirm="Fresh-Horse-Battery-43")
    assert re.search(r'<input aria-describedby="confirm-error" aria-invalid="true"[^>]*id="confirm"', html)
    html = post(
        current_password="wrong-wrong",
        new_password="Fresh-Horse-Battery-42",
        confirm="Fresh-Horse-Battery-42",
    )
    assert re.search(
        r'aria-describedby="current_password-error" aria-invalid="true"[^>]*id="current_password"', html
    )
