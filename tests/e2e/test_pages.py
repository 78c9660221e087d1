"""The pages as a person sees them, in real Chromium against a live provider (``iam serve`` +
``iam worker``) set up as a municipality would: its own name, time zone and languages
(``sr-Latn``), a PIM role with an approver, an HR operator.

Every form is submitted the way the browser does (every field, clicking the button): signing
out from the account page and from an application (RP-initiated logout with its hidden
``client_id`` / ``post_logout_redirect_uri`` / ``state``), the change-password page with its
errors tied to their fields, and the pages at 390 px (a phone) and 1280 px. Screenshots go to
``$IAM_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from iam.directory.errors import EntryExists
from tests.e2e.conftest import CI, DEMO_PASSWORD, LiveProvider, _provider_env, free_port

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

from tests.e2e.test_hr_pages import _dead_joiner

pytestmark = pytest.mark.e2e

ORGANISATION = "Grad Čačak"
ZONE = "Europe/Belgrade"
ROLES = {
    "ops": """
title = "Operations admins"
groups = ["Ops Admins"]
max_minutes = 120
default_minutes = 30
approvers = ["bob"]
min_level = "password"
""",
    "dba": """
title = "Database admins"
groups = ["DB Admins"]
approvers = ["bob"]
min_level = "password"
""",
}
NARROW = {"width": 390, "height": 844}
WIDE = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """A provider with the organisation's own settings; alice is eligible for ``ops`` (bob
    approves), admin is a security officer, bob an HR operator."""
    var_dir = tmp_path_factory.mktemp("provider-town")
    roles = var_dir / "roles"
    roles.mkdir()
    for name, text in ROLES.items():
        (roles / f"{name}.toml").write_text(text)
    port = free_port()
    env = _provider_env(var_dir, port, None)
    env.update(
        {
            "IAM_ORGANISATION": ORGANISATION,
            "IAM_TIMEZONE": ZONE,
            "IAM_LANGUAGES": '["en", "sr-Latn"]',
            "IAM_PIM__ROLES_DIR": str(roles),
            "IAM_PIM__SECURITY_OFFICERS": '["admin"]',
        }
    )
    provider = LiveProvider(kind="local", port=port, var_dir=Path(var_dir), env=env)
    try:
        provider.start()
        directory = provider.services().directory
        for group in ("Ops Admins", "DB Admins", "iam-hr-operators"):
            with contextlib.suppress(EntryExists):  # the demo may have made some already
                directory.create_group(group)
        bob = directory.find_user(username="bob")
        assert bob is not None
        directory.add_member("iam-hr-operators", bob.id)
        provider.cli("pim", "eligible", "add", "ops", "alice")
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("IAM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def _person(browser: Any, provider: LiveProvider, username: str, *, locale: str = "en-GB") -> Page:
    context = browser.new_context(locale=locale)
    context.set_default_timeout(15_000)
    page: Page = context.new_page()
    page.goto(f"{provider.issuer}/login")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{provider.issuer}/account")
    return page


def _nav(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#site-nav a").all_inner_texts()]


# -- 1. signing out ------------------------------------------------------------------------------
def test_sign_out_from_the_account_page(town: LiveProvider, browser: Any) -> None:
    page = _person(browser, town, "alice")
    try:
        page.locator("#account-sign-out").click()
        expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()

        # Cancel keeps the session
        page.get_by_role("link", name="Cancel").click()
        expect(page).to_have_url(f"{town.issuer}/account")
        expect(page.get_by_role("heading", name=re.compile("^Signed in as"))).to_be_visible()

        # the header's "Sign out", then the confirmation's button: signed out for real
        page.locator("#nav-sso-logout").click()
        expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
        expect(page.locator("#site-nav")).to_have_count(0)  # no signed-in navigation any more
        assert not [c for c in page.context.cookies() if c["name"] == "iam_session"]
        page.goto(f"{town.issuer}/account")
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        page.context.close()


def test_logout_confirmation_returns_to_the_application_with_state(town: LiveProvider, browser: Any) -> None:
    """RP-initiated logout without ``id_token_hint``: the confirmation page carries the
    application's ``client_id``, ``post_logout_redirect_uri`` and ``state`` as hidden fields;
    clicking Sign out ends the session and returns to the application with ``state``."""
    page = _person(browser, town, "alice")
    try:
        back = f"{town.issuer}/demo/"
        page.goto(f"{town.issuer}/logout?client_id=demo-app&post_logout_redirect_uri={back}&state=st-4711")
        expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
        form = page.locator("#logout-form")
        expect(form.locator("input[name=client_id]")).to_have_value("demo-app")
        expect(form.locator("input[name=post_logout_redirect_uri]")).to_have_value(back)
        expect(form.locator("input[name=state]")).to_have_value("st-4711")
        with page.expect_request(lambda r: r.url.startswith(back)) as arrived:
            form.get_by_role("button", name="Sign out").click()
        url = urlsplit(arrived.value.url)
        assert f"{url.scheme}://{url.netloc}{url.path}" == back
        assert parse_qs(url.query) == {"state": ["st-4711"]}
        assert not [c for c in page.context.cookies() if c["name"] == "iam_session"]
        page.goto(f"{town.issuer}/account")
        expect(page).to_have_url(re.compile(r"/login$"))
    finally:
        page.context.close()


# -- 2. languages ---------------------------------------------------------------------------------
def test_serbian_latin_browser_gets_the_pages(town: LiveProvider, browser: Any) -> None:
    context = browser.new_context(locale="sr-Latn")
    try:
        page = context.new_page()
        response = page.goto(f"{town.issuer}/login")
        assert response is not None and response.status == 200
        assert response.request.headers.get("accept-language", "").startswith("sr-Latn")
        expect(page.locator("html")).to_have_attribute("lang", "sr-Latn")
        page.get_by_label("Korisničko ime", exact=True).fill("alice")
        page.get_by_label("Lozinka", exact=True).fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Prijava").click()
        expect(page).to_have_url(f"{town.issuer}/account")
        for path in ("/account", "/pim/", "/password/change", "/no-such-page"):
            response = page.goto(f"{town.issuer}{path}")
            assert response is not None and response.status in (200, 404), path
    finally:
        context.close()


# -- 3. one header, one navigation, the organisation's time --------------------------------------
def test_header_names_the_organisation_and_navigation_follows_rights(
    town: LiveProvider, browser: Any
) -> None:
    page = browser.new_page()
    page.goto(f"{town.issuer}/login")
    expect(page.locator("header #organisation")).to_have_text(ORGANISATION)
    assert page.title().endswith(f"— {ORGANISATION}")
    expect(page.locator("#site-nav")).to_have_count(0)  # nobody signed in: no links
    page.close()

    expected = {
        "alice": [
            "Applications", "Your account", "My access", "Security devices", "Change password",
            "Privileged roles", "Waiting for me", "Access requests", "Access reviews", "Sign out",
        ],
        "bob": [
            "Applications", "Your account", "My access", "Security devices", "Change password",
            "Privileged roles", "Approvals", "Waiting for me", "Access requests", "Access reviews",
            "Review campaigns", "Administration", "Sign out",
        ],
        "admin": [
            "Applications", "Your account", "My access", "Security devices", "Change password",
            "Privileged roles", "Security overview", "Waiting for me", "Access requests",
            "Access reviews", "Review campaigns", "Administration", "Sign out",
        ],
    }  # fmt: skip
    # the HR, security and audit pages are in the console (behind "Administration"), not here
    for username, links in expected.items():
        person = _person(browser, town, username)
        try:
            expect(person.locator("header #organisation")).to_have_text(ORGANISATION)
            assert _nav(person) == links, username
            # every link opens (a link never leads to a refusal) and shows the same header
            hrefs = [a.get_attribute("href") for a in person.locator("#site-nav a").all()]
            for href in hrefs:
                if href == "/admin/":
                    person.goto(f"{town.issuer}{href}")  # the console asks for the second factor
                    expect(person).to_have_url(re.compile(r"/mfa/"))
                elif href and not href.endswith("/logout"):
                    response = person.goto(f"{town.issuer}{href}")
                    assert response is not None and response.status == 200, (username, href)
                    assert _nav(person) == links, (username, href)
                    expect(person.locator(f'#site-nav a[href="{href}"]')).to_have_attribute(
                        "aria-current", "page"
                    )
            # and the pages not offered stay refused (deny by default)
            for path, holder in (("/pim/overview", "admin"), ("/hr/events", "bob")):
                if username != holder:
                    response = person.goto(f"{town.issuer}{path}")
                    assert response is not None and response.status == 403, (username, path)
        finally:
            person.context.close()


def test_times_are_shown_in_the_organisations_time_zone(town: LiveProvider, browser: Any) -> None:
    event_id, emp = _dead_joiner(town)
    bob = _person(browser, town, "bob")
    try:
        bob.goto(f"{town.issuer}/hr/dead")
        bob.locator("tr", has_text=emp).get_by_role("button", name="Replay").click()
        for _ in range(60):
            bob.goto(f"{town.issuer}/hr/events/{event_id}")
            if bob.locator("dd.status").inner_text() == "applied":
                break
            bob.wait_for_timeout(250)
        expect(bob.locator("dd.status")).to_have_text("applied")
        main = bob.locator("main").inner_text()
        assert "+00:00" not in main and "{}" not in main, main
        zone = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? CES?T$")
        for which in ("#effective-at", "#accepted-at", "#applied-at"):
            expect(bob.locator(which)).to_have_text(zone)
        # a start date in the result is the local midnight it stands for
        expect(bob.locator('#event-result dd[data-key="start_at"]')).to_have_text(
            re.compile(r"^\d{4}-\d{2}-\d{2} 00:00 CES?T$")
        )
        expect(bob.locator('#event-result dd[data-key="username"]')).to_have_text(re.compile(r"\w"))
        bob.goto(f"{town.issuer}/account")
        expect(bob.locator("#sessions tbody tr").first.locator("td").first).to_contain_text(
            re.compile(r"\d{2}:\d{2} CES?T")
        )
    finally:
        bob.context.close()


# -- 4. usable on a phone -------------------------------------------------------------------------
FIT = """() => {
  const width = document.documentElement.clientWidth;
  const outside = [];
  for (const el of document.querySelectorAll(
      'main button, main input:not([type=hidden]), main select, main textarea, main a, header a')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.left < -0.5 || box.right > width + 0.5)
      outside.push(`${el.tagName} "${(el.textContent || el.name || '').trim().slice(0, 30)}" ${box.left}..${box.right}`);
  }
  return {scroll: document.scrollingElement.scrollWidth, width, outside,
          buttons: document.querySelectorAll('main button').length};
}"""


def _check_fits(page: Page, path: str, shots: Path, name: str, *, min_buttons: int = 0) -> None:
    page.set_viewport_size(NARROW)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    response = page.goto(f"{origin}{path}")
    assert response is not None and response.status == 200, path
    fit = page.evaluate(FIT)
    page.screenshot(path=str(shots / f"{name}-390.png"), full_page=True)
    assert fit["scroll"] <= 390, (path, fit)
    assert not fit["outside"], (path, fit["outside"])
    assert fit["buttons"] >= min_buttons, (path, fit)
    page.set_viewport_size(WIDE)
    page.reload()
    page.screenshot(path=str(shots / f"{name}-1280.png"), full_page=True)
    assert page.evaluate(FIT)["scroll"] <= 1280, path


def _wait_for_state(page: Page, provider: LiveProvider, rid: str, state: str) -> None:
    row = page.locator(f'tr[data-request="{rid}"] .state')
    for _ in range(60):
        page.goto(f"{provider.issuer}/pim/")
        if row.count() and row.first.inner_text() == state:
            return
        page.wait_for_timeout(250)
    expect(row.first).to_have_text(state)


def test_pages_fit_a_390_px_phone(town: LiveProvider, browser: Any, shots: Path) -> None:
    alice = _person(browser, town, "alice")
    bob = _person(browser, town, "bob")
    admin = _person(browser, town, "admin")
    try:
        # alice asks on her phone; bob decides on his
        alice.set_viewport_size(NARROW)
        alice.goto(f"{town.issuer}/pim/")
        alice.locator("#request-ops").click()
        alice.get_by_label("Justification (required)").fill("Patch the file servers tonight")
        # PIM asks for level mfa at least; dev mode lets the password again stand in for it
        alice.get_by_label("Password again", exact=False).fill(DEMO_PASSWORD)
        alice.get_by_role("button", name="Send request").click()
        expect(alice.locator("#pending tbody tr")).to_have_count(1)
        rid = alice.locator("#pending tbody tr").get_attribute("data-request")
        assert rid
        _check_fits(alice, "/pim/", shots, "pim-mine-pending", min_buttons=1)

        _check_fits(bob, "/pim/approvals", shots, "pim-approvals", min_buttons=2)
        bob.set_viewport_size(NARROW)
        row = bob.locator(f'#inbox tr[data-request="{rid}"]')
        approve = row.get_by_role("button", name="Approve")
        deny = row.get_by_role("button", name="Deny")
        for button in (approve, deny):
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        # deciding needs the role's level (R-MFA-4): in dev mode the password again stands in
        row.get_by_label("Password again", exact=False).fill(DEMO_PASSWORD)
        approve.click()  # clicked where it is: inside the viewport
        expect(bob.locator("#inbox")).to_contain_text("Nothing to decide.")

        _wait_for_state(alice, town, rid, "active")
        _check_fits(alice, "/pim/", shots, "pim-mine-active", min_buttons=3)
        _check_fits(admin, "/pim/overview", shots, "pim-overview", min_buttons=3)
        revoke = admin.locator(f'#active tr[data-request="{rid}"]').get_by_role("button", name="Revoke")
        admin.set_viewport_size(NARROW)
        box = revoke.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390, box
        for path in ("/security/alerts", "/security/directory-changes", "/security/statistics"):
            _check_fits(admin, path, shots, "detect-" + path.rsplit("/", 1)[1])

        _dead_joiner(town)
        _check_fits(bob, "/hr/events", shots, "hr-events")
        _check_fits(bob, "/hr/dead", shots, "hr-dead", min_buttons=1)
        detail = bob.locator("table.dead tbody tr a").first.get_attribute("href")
        assert detail
        _check_fits(bob, detail, shots, "hr-event-detail", min_buttons=1)
        _check_fits(bob, "/hr/reconcile", shots, "hr-reconcile")
        _check_fits(bob, "/hr/register", shots, "hr-register")

        _check_fits(alice, "/account", shots, "account", min_buttons=1)
        _check_fits(alice, "/mfa/devices", shots, "devices")
        _check_fits(alice, "/password/change", shots, "change-password", min_buttons=1)
    finally:
        for page in (alice, bob, admin):
            page.context.close()


def test_devices_page_with_a_device_fits_a_phone(town: LiveProvider, browser: Any, shots: Path) -> None:
    import pyotp

    user = town.cli_json(
        "user", "add", "dana", "--given-name", "Dana", "--family-name", "Đurić", stdin=DEMO_PASSWORD + "\n"
    )
    assert user["username"] == "dana"
    page = _person(browser, town, "dana")
    try:
        page.goto(f"{town.issuer}/mfa/devices")
        page.locator("#enroll").click()
        page.get_by_label("Your password", exact=True).fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Continue").click()
        totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
        # the current step: still accepted (as the previous one) if the confirm crosses a
        # 30-second boundary — the previous step's code was refused when it became two steps old
        page.get_by_label("Code", exact=True).fill(totp.now())
        page.get_by_role("button", name="Confirm").click()
        page.locator("#continue").click()
        expect(page.locator("#devices tr[data-kind=totp]")).to_be_visible()
        _check_fits(page, "/mfa/devices", shots, "devices-with-app", min_buttons=2)
    finally:
        page.context.close()


# -- 5. change password ---------------------------------------------------------------------------
def _contrast(a: str, b: str) -> float:
    def luminance(css: str) -> float:
        r, g, bl = (int(x) / 255 for x in re.findall(r"\d+(?:\.\d+)?", css)[:3])

        def lin(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(bl)

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_change_password_page_for_a_signed_in_person(town: LiveProvider, browser: Any, shots: Path) -> None:
    page = _person(browser, town, "alice")
    try:
        page.locator("#nav-sso-change_password").click()
        username = page.get_by_label("Username", exact=True)
        expect(username).to_have_value("alice")
        expect(username).to_have_attribute("readonly", re.compile(".*"))
        # the rules, as a list, before the first try; the new password field points at them
        rules = page.locator("#password-rules li")
        assert rules.count() >= 2
        expect(rules.first).to_contain_text("characters long")
        new = page.get_by_label("New password", exact=True)
        expect(new).to_have_attribute("aria-describedby", re.compile(r"\bpassword-rules\b"))
        for field in ("Current password", "New password", "Repeat the new password"):
            expect(page.get_by_label(field, exact=True)).not_to_have_attribute("aria-invalid", "true")

        # borders and the focus ring reach 3:1 against the card's white
        card_bg = page.locator(".card").evaluate("e => getComputedStyle(e).backgroundColor")
        border = new.evaluate("e => getComputedStyle(e).borderTopColor")
        assert _contrast(border, card_bg) >= 3.0, (border, card_bg)
        new.focus()
        ring = new.evaluate("e => getComputedStyle(e).outlineColor")
        assert new.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
        assert _contrast(ring, card_bg) >= 3.0, (ring, card_bg)

        # a wrong current password: the error names the current-password field
        page.get_by_label("Current password", exact=True).fill("not-my-password")
        new.fill("Brand-new-Passw0rd-2026")
        page.get_by_label("Repeat the new password", exact=True).fill("Brand-new-Passw0rd-2026")
        page.get_by_role("button", name="Change password").click()
        current = page.get_by_label("Current password", exact=True)
        expect(current).to_have_attribute("aria-invalid", "true")
        described = current.get_attribute("aria-describedby")
        assert described
        expect(page.locator(f"#{described.split()[0]}")).to_contain_text("Wrong username or password")
        expect(page.get_by_label("Username", exact=True)).to_have_value("alice")

        # a too short new password: the error names the new-password field
        page.get_by_label("Current password", exact=True).fill(DEMO_PASSWORD)
        page.get_by_label("New password", exact=True).fill("short")
        page.get_by_label("Repeat the new password", exact=True).fill("short")
        page.get_by_role("button", name="Change password").click()
        new = page.get_by_label("New password", exact=True)
        expect(new).to_have_attribute("aria-invalid", "true")
        ids = (new.get_attribute("aria-describedby") or "").split()
        assert "password-rules" in ids and "new_password-error" in ids, ids
        expect(page.locator("#new_password-error")).to_contain_text("at least")
        expect(page.get_by_label("Current password", exact=True)).not_to_have_attribute(
            "aria-invalid", "true"
        )

        # the two new passwords differ: the error names the repeat field
        page.get_by_label("Current password", exact=True).fill(DEMO_PASSWORD)
        page.get_by_label("New password", exact=True).fill("Brand-new-Passw0rd-2026")
        page.get_by_label("Repeat the new password", exact=True).fill("Brand-new-Passw0rd-2027")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_label("Repeat the new password", exact=True)).to_have_attribute(
            "aria-invalid", "true"
        )
        expect(page.locator("#confirm-error")).to_contain_text("differ")
        page.screenshot(path=str(shots / "change-password-errors-1280.png"), full_page=True)
    finally:
        page.context.close()


# -- 6. error pages --------------------------------------------------------------------------------
STOCK = ("The requested URL was not found", "The method is not allowed", "Werkzeug", "Bad Request")


def test_error_pages_are_ours_with_a_next_step(town: LiveProvider, browser: Any, shots: Path) -> None:
    page = _person(browser, town, "alice")
    try:
        cases = [
            ("/no-such-page", 404, "Page not found"),
            ("/hr/events", 403, "Not allowed"),
            ("/pim/request/dba", 403, "You are not eligible for this role"),
            ("/pim/request/no-such-role", 404, "No such privileged role"),
        ]
        for path, status, heading in cases:
            response = page.goto(f"{town.issuer}{path}")
            assert response is not None and response.status == status, path
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            expect(page.locator("header #organisation")).to_have_text(ORGANISATION)
            assert _nav(page), path  # the page layout, with the person's navigation
            body = page.locator("body").inner_text()
            assert not any(s in body for s in STOCK), (path, body)
            expect(page.locator("#error-next")).to_be_visible()
        page.goto(f"{town.issuer}/pim/request/dba")
        expect(page.locator("#error-message")).to_contain_text("Database admins")
        page.set_viewport_size(NARROW)
        page.screenshot(path=str(shots / "error-not-eligible-390.png"), full_page=True)
        page.locator("#error-next").click()
        expect(page.get_by_role("heading", name="My privileged roles")).to_be_visible()

        # 405 and 400 from a form the browser submits (a stale page, a form without its token)
        for action, status, heading in (
            ("/account", 405, "Not possible here"),
            ("/account/sessions/x/end", 400, "The request could not be understood"),
        ):
            page.set_content(
                f'<form method="post" action="{town.issuer}{action}"><input name="x" value="1">'
                '<button type="submit">Send</button></form>'
            )
            with page.expect_navigation() as nav:
                page.get_by_role("button", name="Send").click()
            response = nav.value
            assert response is not None and response.status == status, action
            expect(page.get_by_role("heading", level=1)).to_have_text(heading)
            expect(page.locator("header #organisation")).to_have_text(ORGANISATION)
            body = page.locator("body").inner_text()
            assert not any(s in body for s in STOCK) and "CSRF" not in body, body
        expect(page.locator("#error-message")).to_contain_text("The form expired")
        # the JSON API keeps JSON errors
        api = page.request.get(f"{town.issuer}/api/v1/no-such-thing")
        assert api.status == 404 and api.json()["error"] == "not_found"
    finally:
        page.context.close()
