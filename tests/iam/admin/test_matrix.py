"""The authorisation matrix: every route under /admin × every role (and anonymous, and a
signed-in person without a role) → allowed or refused, as the route declares. Built from the
app's url_map, so a new admin route is covered without touching this test; a route that does
not declare its roles fails it. And CSRF on every admin form."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from iam.admin import PREFIX, Role, allowed_roles
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in

pytestmark = pytest.mark.parametrize("services", ["sqlite"], indirect=True)

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
READS = "reads"
"""Marks a view whose POST only builds a file (``require_admin(reads=True)``): the auditor may."""


def may(roles: frozenset[Role], declared: frozenset[Any], method: str) -> bool:
    reads = READS in declared
    return bool(roles & allowed_roles({r for r in declared if r != READS}, "GET" if reads else method))


def writes(method: str, declared: frozenset[Any]) -> bool:
    return method in WRITE_METHODS and READS not in declared


CONSOLE_PAGES_OUTSIDE_ADMIN = ("/audit/report", "/audit/review", "/security/", "/hr/", "/policy/acceptances")
"""Pages of the console that kept the URLs they had before it (links in mails, bookmarks)."""
NOT_CONSOLE = ("/hr/activate/",)
"""The manager's one-time activation link: a token page for one person, not the console."""


def _console_rule(rule: str) -> bool:
    if rule == PREFIX or rule.startswith(PREFIX + "/"):
        return True
    return rule.startswith(CONSOLE_PAGES_OUTSIDE_ADMIN) and not rule.startswith(NOT_CONSOLE)


def admin_routes(app: Flask) -> list[tuple[str, str, str, frozenset[Role]]]:
    """(method, url, endpoint, declared roles) for every console rule (arguments filled in):
    everything under /admin and the console's pages that kept their older URLs."""
    out = []
    for rule in app.url_map.iter_rules():
        if not _console_rule(rule.rule):
            continue
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, "iam_admin_roles", None)
        assert declared, f"{rule.rule} ({rule.endpoint}) declares no role: use @require_admin(...)"
        if getattr(view, "iam_admin_reads", False):
            declared = frozenset(declared) | {READS}
        url = re.sub(r"<int:[^<>]+>", "0", rule.rule)
        url = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", "unknown-id", url)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, url, rule.endpoint, frozenset(declared)))
    return out


def _token(client: Any) -> str:
    page = client.get("/login").get_data(as_text=True)
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert m
    return m.group(1)


def _call(client: Any, method: str, url: str, token: str) -> Any:
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data={"csrf_token": token, "reason": "matrix test"})


def test_every_admin_route_for_every_role(app: Flask, services: Services) -> None:
    routes = admin_routes(app)
    assert {e for _, _, e, _ in routes} >= {
        "admin.home",
        "admin.people",
        "admin.audit_search",
        "admin.unlock",
        "audit_report.report",
        "audit_report.review",
        "detect.alerts",
        "detect.alert",
        "detect.statistics",
        "provisioning.event_log",
        "provisioning.replay",
        "sso.acceptances",
        "conformance_admin.page",
    }
    who: dict[str, tuple[Any, frozenset[Role]]] = {}
    anonymous = app.test_client()
    who["anonymous"] = (anonymous, frozenset())
    nobody = app.test_client()
    sign_in(nobody, services, person(services))
    who["no role"] = (nobody, frozenset())
    for role in Role:
        c = app.test_client()
        sign_in(c, services, person(services, role))
        who[role.value] = (c, frozenset({role}))
    failures = []
    for name, (client, roles) in who.items():
        token = _token(client)
        for method, url, endpoint, declared in routes:
            resp = _call(client, method, url, token)
            status = resp.status_code
            location = resp.headers.get("Location", "")
            if name == "anonymous":
                ok = status in (302, 303) and location.endswith("/login")
                expected = "sign-in"
            elif may(roles, declared, method):
                ok = status != 403 and status < 500 and not location.endswith("/login")
                expected = "allowed"
            else:
                ok = status == 403
                expected = "403"
            if not ok:
                failures.append(
                    f"{name:16} {method:5} {url:45} {endpoint:28} expected {expected}, got {status}"
                )
    assert not failures, "\n".join(failures)


def test_the_auditor_reads_every_page_and_changes_nothing(app: Flask, services: Services) -> None:
    client = app.test_client()
    sign_in(client, services, person(services, Role.AUDITOR))
    token = _token(client)
    for method, url, _endpoint, declared in admin_routes(app):
        status = _call(client, method, url, token).status_code
        if writes(method, declared):
            assert status == 403, (method, url)
        else:
            assert status != 403, (method, url)


def test_below_mfa_is_sent_to_step_up(app: Flask, services: Services) -> None:
    """Every console page asks a console role for the second factor — except the pages older
    than the console for the people their own settings name (``require_admin(also=…)``): those
    let them in as before (the role groups here are also those settings' default groups)."""
    client = app.test_client()
    sign_in(client, services, person(services, *Role), level="password")
    for method, url, endpoint, _declared in admin_routes(app):
        if endpoint != "admin.home" and getattr(app.view_functions[endpoint], "iam_admin_also", False):
            continue  # (the overview takes the older pages' people only when they hold no role)
        if method == "GET":
            resp = client.get(url)
            assert resp.status_code == 302 and "/mfa/" in resp.headers["Location"], url


def test_every_admin_post_needs_its_csrf_token(app: Flask, services: Services) -> None:
    client = app.test_client()
    sign_in(client, services, person(services, *Role))
    posts = [(m, u) for m, u, _e, _d in admin_routes(app) if m in WRITE_METHODS]
    assert posts
    for method, url in posts:
        resp = client.open(url, method=method, data={"reason": "no token"})
        assert resp.status_code == 400, (method, url)
        assert "The form expired or was sent from elsewhere" in resp.get_data(as_text=True)


def test_every_form_on_admin_pages_carries_a_csrf_token(app: Flask, services: Services) -> None:
    """Every POST form a page of the console renders (people, person, audit …) has the token."""
    from sqlalchemy import select

    from iam import lockout
    from sso.models import SsoSession

    client = app.test_client()
    admin = person(services, *Role)
    sign_in(client, services, admin)
    target = person(services)
    with services.transaction() as s:
        lockout.record_failure(
            s,
            services.settings.lockout,
            account=lockout.Account(target.username, target.id),
            ip=None,
            user_agent=None,
        )
        assert s.scalars(select(SsoSession)).first() is not None
    pages = [
        "/admin/",
        "/admin/people?q=" + target.username,
        f"/admin/people/{target.id}",
        f"/admin/people/{admin.id}",
        "/admin/audit",
    ]
    forms = 0
    for url in pages:
        html = client.get(url).get_data(as_text=True)
        for form in re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", html, flags=re.S | re.I):
            forms += 1
            assert 'name="csrf_token"' in form, (url, form[:200])
    assert forms >= 4
