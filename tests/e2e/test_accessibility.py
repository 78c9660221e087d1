"""Accessibility (issue 13 part 5): axe-core (npm, ``tests/e2e/node``) run in Chromium over
every HTML page the application serves — the GET routes are read from the app's ``url_map``,
so a page added later is covered without touching this test — each seen by a person who may
open it, and the pages with a path argument (a request, an application, a person …) reached by
the first link to each found on those pages; zero serious or critical violations, and a ``lang`` on every page. Keyboard only:
sign-in, the one-time code and the policy acknowledgement without a mouse."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iam.directory.errors import EntryExists
from tests.e2e.conftest import CI, DEMO_PASSWORD, NODE_DIR, LiveProvider, _provider_env, free_port, unique

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = pytest.mark.e2e

AXE = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "Corr3ct-Horse-Battery-9"
ROLE = """
title = "Operations admins"
groups = ["Ops Admins"]
approvers = ["bob"]
min_level = "password"
"""
#: Who looks at each page, in this order: the first who gets it (200, no redirect) is used.
VIEWERS = ("admin", "bob", "alice", None)
#: Routes that are no page (machine endpoints); the answer's content type decides the rest.
NOT_PAGES = ("/api/", "/scim/", "/.well-known/", "/static/")
LAST = ("logout", "cancel", "/demo/login", "/demo/callback", "/login/continue")
#: Searches whose answers link to pages with a path argument (a person …).
SEARCHES = ("/admin/people?q=alice",)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    """Demo users; the policy acknowledgement on; admin a security officer and in the console's
    roles, bob an approver and HR operator, alice eligible for a PIM role."""
    var_dir = tmp_path_factory.mktemp("provider-a11y")
    roles = var_dir / "roles"
    roles.mkdir()
    (roles / "ops.toml").write_text(ROLE)
    port = free_port()
    env = _provider_env(var_dir, port, None)
    env.update(
        {
            "IAM_POLICY__REQUIRED": "true",
            "IAM_PIM__ROLES_DIR": str(roles),
            "IAM_PIM__SECURITY_OFFICERS": '["admin"]',
            "IAM_LANGUAGES": '["en", "sr-Latn"]',
            # admin holds the console's roles too (its session is raised to mfa after sign-in)
            "IAM_ADMIN__IT_ADMINS": '["admin"]',
            "IAM_ADMIN__SECURITY_OFFICERS": '["admin"]',
            "IAM_ADMIN__HR_OPERATORS": '["admin"]',
        }
    )
    live = LiveProvider(kind="local", port=port, var_dir=var_dir, env=env)
    try:
        live.start()
        directory = live.services().directory
        for group in ("Ops Admins", "iam-hr-operators"):
            with contextlib.suppress(EntryExists):
                directory.create_group(group)
        bob = directory.find_user(username="bob")
        assert bob is not None
        directory.add_member("iam-hr-operators", bob.id)
        live.cli("pim", "eligible", "add", "ops", "alice")
        live.cli("pim", "request", "ops", "--as", "alice", "--justification", "axe: a pending request")
        live.cli(
            "client", "add", "--name", "Intranet", "--redirect-uri", "https://intranet.example/cb",
            "--launch-uri", "https://intranet.example/", "--description", "News and forms",
            "--logo-uri", "/static/iam.css",
        )  # fmt: skip
        live.cli(
            "client", "add", "--name", "Third party", "--client-id", "third-party", "--require-consent",
            "--redirect-uri", "https://third.example/cb",
        )  # fmt: skip
        yield live
    finally:
        live.stop()


def _get_routes(provider: LiveProvider) -> list[str]:
    from iam.app import create_app

    app = create_app(services=provider.services())
    paths = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or rule.arguments or rule.endpoint == "static":
            continue
        if rule.rule.startswith(NOT_PAGES):
            continue
        paths.add(rule.rule)
    # pages that end or start a session (sign-out, cancel, the demo's own sign-in) come last,
    # so every other page is seen while the viewers are still signed in
    return sorted(paths, key=lambda p: (any(w in p for w in LAST), p))


def _parameterised(provider: LiveProvider) -> Any:
    """A matcher of paths onto the GET routes that take arguments (``/pim/requests/<id>`` …):
    the endpoint's name, or None."""
    from werkzeug.exceptions import HTTPException

    from iam.app import create_app

    app = create_app(services=provider.services())
    adapter = app.url_map.bind("localhost")
    with_args = {
        r.endpoint for r in app.url_map.iter_rules() if r.arguments and "GET" in (r.methods or set())
    }

    def match(path: str) -> str | None:
        if path.startswith(NOT_PAGES) or any(w in path for w in LAST):
            return None
        try:
            endpoint, _ = adapter.match(path, method="GET")
        except HTTPException:
            return None
        return str(endpoint) if endpoint in with_args else None

    return match


def _links(page: Page, issuer: str) -> list[str]:
    hrefs: list[str] = page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), a => a.href)")
    return [h.removeprefix(issuer).split("#")[0].split("?")[0] for h in hrefs if h.startswith(issuer)]


def _axe(page: Page) -> list[dict[str, Any]]:
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` in tests/e2e/node")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def _context(browser: Any) -> Any:
    context = browser.new_context(locale="en-GB", bypass_csp=True)  # axe is injected as a script
    context.set_default_timeout(15_000)
    return context


def _sign_in(browser: Any, provider: LiveProvider, username: str) -> tuple[Page, list[dict[str, Any]]]:
    """Sign in; the policy page comes first (checked by axe, then accepted)."""
    page: Page = _context(browser).new_page()
    page.goto(f"{provider.issuer}/login")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    found: list[dict[str, Any]] = []
    if page.url.endswith("/policy"):
        found = [{"page": "/policy", "viewer": username, **v} for v in _axe(page)]
        page.locator("#accept-policy").click()
        page.wait_for_load_state()
    if username == "admin":  # the console needs a second factor: raised as the step-up would
        from sqlalchemy import select

        from sso.models import SsoSession

        services = provider.services()
        with services.transaction() as s:
            admin = services.directory.find_user(username="admin")
            assert admin is not None
            for row in s.scalars(select(SsoSession).where(SsoSession.sub == admin.id)):
                row.amr, row.acr = ["pwd", "otp", "mfa"], "mfa"
    return page, found


def test_every_page_has_no_serious_or_critical_axe_violation(
    provider: LiveProvider, browser: Any, tmp_path: Path
) -> None:
    routes = _get_routes(provider)
    assert {"/", "/login", "/my-access", "/policy", "/policy/acceptances", "/account"} <= set(routes)
    match = _parameterised(provider)
    #: pages with a path argument (a request, a client, a person …): the first link to each
    #: endpoint found on the pages visited, seen by the viewer who found it
    found_links: dict[str, tuple[str, str | None]] = {}
    pages: dict[str | None, Page] = {}
    violations: list[dict[str, Any]] = []
    for who in VIEWERS:
        if who is None:
            pages[who] = _context(browser).new_page()
        else:
            pages[who], found = _sign_in(browser, provider, who)
            violations += found
    checked: dict[str, str] = {}
    try:
        # the harness can fail: a picture without a text alternative is a critical violation
        pages[None].set_content('<html lang="en"><body><main><img src="x.png"></main></body></html>')
        assert "image-alt" in {v["id"] for v in _axe(pages[None])}
        # pages that exist only inside a flow (before the sign-out routes at the end): the
        # consent question of a third-party client
        page = pages["alice"]
        page.goto(
            f"{provider.issuer}/authorize?response_type=code&client_id=third-party&scope=openid"
            "&redirect_uri=https://third.example/cb&state=s1"
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        )
        expect(page).to_have_url(f"{provider.issuer}/consent")
        checked["/consent"] = "alice → /consent (in a flow)"
        violations += [{"page": "/consent", "viewer": "alice", **v} for v in _axe(page)]

        def visit(path: str, viewers: tuple[str | None, ...], note: str = "") -> None:
            nonlocal violations
            last: tuple[Page, str] | None = None
            for who in viewers:
                page = pages[who]
                try:
                    response = page.goto(f"{provider.issuer}{path}")
                except PlaywrightError as exc:
                    if "Download is starting" in str(exc):
                        break  # a file (CSV, PDF) for this viewer: not a page
                    raise
                if response is None or "text/html" not in (response.headers.get("content-type") or ""):
                    break  # not a page (JSON, CSV, a redirect out of the provider …)
                last = (page, str(who))
                if (
                    response.status == 200
                    and page.url.split("?")[0] == f"{provider.issuer}{path}".split("?")[0]
                ):
                    break
            if last is None:
                return
            page, who = last
            assert page.evaluate("document.documentElement.lang"), f"{path}: no lang attribute"
            checked[path] = f"{who} → {page.url.removeprefix(provider.issuer)}{note}"
            violations += [{"page": path, "viewer": who, **v} for v in _axe(page)]
            for link in _links(page, provider.issuer):
                endpoint = match(link)
                if endpoint is not None and endpoint not in found_links:
                    found_links[endpoint] = (link, None if who == "None" else who)

        ending = [p for p in routes if any(w in p for w in LAST)]
        for path in [*routes, *SEARCHES]:
            if path not in ending:
                visit(path, VIEWERS)
        visited: set[str] = set()
        while pending := sorted(set(found_links) - visited):  # a page found there may link on
            for endpoint in pending:
                visited.add(endpoint)
                link, viewer = found_links[endpoint]
                visit(link, (viewer,), f" ({endpoint})")
        for path in ending:  # sign-out and the like: last, while every viewer was signed in
            visit(path, VIEWERS)
        # our error page (404) too
        page = pages[None]
        page.goto(f"{provider.issuer}/no-such-page")
        violations += [{"page": "/no-such-page", "viewer": "anonymous", **v} for v in _axe(page)]
    finally:
        for p in pages.values():
            p.context.close()
    (tmp_path / "axe-pages.json").write_text(json.dumps(checked, indent=1))
    print(f"axe checked {len(checked)} pages: {json.dumps(checked, indent=1)}")
    assert len(checked) >= 20, checked
    assert len(found_links) >= 5, found_links  # pages with a path argument were reached too
    assert violations == [], json.dumps(violations, indent=1)


def test_keyboard_only_sign_in_with_a_one_time_code_and_the_policy(
    provider: LiveProvider, browser: Any
) -> None:
    import pyotp

    from sso.mfa import service as mfa

    username = unique("kira")
    created = provider.cli_json(
        "user", "add", username, "--given-name", "Kira", "--family-name", "Kovač", stdin=PASSWORD + "\n"
    )
    services = provider.services()
    with services.transaction() as s:
        enrollment = mfa.start_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=created["id"],
            account_name=username,
            issuer_label="iam",
        )
    totp = pyotp.TOTP(enrollment.secret)
    with services.transaction() as s:
        codes = mfa.confirm_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=created["id"],
            credential_id=enrollment.credential_id,
            code=totp.at(time.time() - 30),  # the previous step: the current one stays usable
        )
    assert codes

    page: Page = _context(browser).new_page()
    try:
        page.goto(f"{provider.issuer}/login")

        def tab_to(name: str) -> None:
            for _ in range(25):
                if page.evaluate("document.activeElement && document.activeElement.name") == name:
                    return
                page.keyboard.press("Tab")
            pytest.fail(f"Tab never reached the field {name!r} on {page.url}")

        def tab_to_id(element_id: str) -> None:
            for _ in range(25):
                if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
                    return
                page.keyboard.press("Tab")
            pytest.fail(f"Tab never reached #{element_id} on {page.url}")

        tab_to("username")
        page.keyboard.type(username)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name") == "password"
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{provider.issuer}/mfa/code")
        assert _axe(page) == []  # only reachable inside a sign-in: checked here
        tab_to("code")
        page.keyboard.type(totp.now())
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{provider.issuer}/policy")
        tab_to_id("accept-policy")
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{provider.issuer}/")
        expect(page.locator("#apps")).to_contain_text("Intranet")
    finally:
        page.context.close()
