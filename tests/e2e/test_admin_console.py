"""The administration console in real Chromium against a live provider (``iam serve`` +
``iam worker``) on the real Samba AD DC. Every administrator signs in through SSO (password,
then the authenticator code: the console needs ``mfa``) and holds their role through an AD
group (groups with unique names, in the test's OU):

- the help desk finds a person by name, unlocks their AD-locked account (they can sign in
  again), resets their password (forced change at next sign-in), and is refused for the
  person's PIM admin account;
- the security officer finds the person's failed sign-in by their name, not a GUID;
- the auditor sees every page and can change nothing.

With ``IAM_SCREENS=<dir>`` the console's main pages are saved there as PNGs (README).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from iam.directory.base import DirectoryUser, NewUser
from iam.models.audit import AuditEvent
from tests.e2e.conftest import CI, LiveProvider, _provider_env, free_port, samba_fixture, unique

try:
    from playwright.sync_api import Page, expect
except ImportError:
    if CI:
        raise
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

pytestmark = [pytest.mark.e2e, pytest.mark.samba]

PASSWORD = "Str0ng-Passw0rd!1"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
SCREENS = os.environ.get("IAM_SCREENS", "")


@dataclass
class Admin:
    user: DirectoryUser
    totp: pyotp.TOTP


def _enroll(provider: LiveProvider, user: DirectoryUser) -> pyotp.TOTP:
    """An authenticator app for ``user``, enrolled and confirmed as the enrollment page would."""
    from sso.mfa import service as mfa

    services = provider.services()
    with services.transaction() as s:
        view = mfa.start_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=user.id,
            account_name=user.username,
            issuer_label="t",
        )
        totp = pyotp.TOTP(view.secret)
        codes = mfa.confirm_enrollment(
            s,
            services.settings.mfa,
            services.cipher,
            sub=user.id,
            credential_id=view.credential_id,
            code=totp.at(time.time() - 30),
        )
        assert codes
    return totp


def _sign_in(page: Page, provider: LiveProvider, admin: Admin, target: str = "/admin/") -> None:
    """Through SSO: the console sends to sign-in, then to the code, then back."""
    page.goto(f"{provider.issuer}{target}")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Username", exact=True).fill(admin.user.username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/mfa/code$"))
    page.get_by_label("Code", exact=True).fill(admin.totp.now())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


def _http_sign_in(provider: LiveProvider, username: str, password: str) -> tuple[int, str]:
    with httpx.Client(base_url=provider.issuer, timeout=30) as http:
        page = http.get("/login")
        token = CSRF.search(page.text)
        assert token
        r = http.post(
            "/login", data={"csrf_token": token.group(1), "username": username, "password": password}
        )
        return r.status_code, r.headers.get("location", "")


def _shot(page: Page, name: str) -> None:
    if SCREENS:
        Path(SCREENS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENS) / f"admin-{name}.png"), full_page=True)


@pytest.fixture
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    ad = samba_fixture(request, "ad_directory")
    samba_ad = samba_fixture(request, "samba_ad")
    groups = {role: unique(f"t-{role[:6]}-") for role in ("it", "desk", "officer", "hr", "auditor")}
    for name in groups.values():
        ad.create_group(name)
    var_dir = tmp_path_factory.mktemp("provider-admin")
    port = free_port()
    env = _provider_env(var_dir, port, samba_ad)
    env.update(
        {
            "IAM_ADMIN__IT_ADMIN_GROUP": groups["it"],
            "IAM_ADMIN__HELPDESK_GROUP": groups["desk"],
            "IAM_ADMIN__SECURITY_OFFICER_GROUP": groups["officer"],
            "IAM_ADMIN__HR_OPERATOR_GROUP": groups["hr"],
            "IAM_ADMIN__AUDITOR_GROUP": groups["auditor"],
        }
    )
    provider = LiveProvider(kind="ad", port=port, var_dir=Path(var_dir), env=env, directory_settings=samba_ad)

    def make(prefix: str, given: str, family: str, group: str | None = None) -> DirectoryUser:
        username = unique(prefix)
        user = ad.create_user(NewUser(username=username, given_name=given, family_name=family))
        ad.set_password(user.id, PASSWORD, must_change=False)
        ad.enable(user.id)
        if group:
            ad.add_member(group, user.id)
        return ad.get_user(user.id) or user

    try:
        provider.start()
        people = {
            "desk": make("tdesk", "Dragan", "Petrović", groups["desk"]),
            "officer": make("tsec", "Sanja", "Ilić", groups["officer"]),
            "auditor": make("taud", "Ivana", "Nowak", groups["auditor"]),
            "victim": make("tvic", "Đurđa", "Šćepanović"),
        }
        adm = ad.create_user(
            NewUser(username=f"adm-{people['victim'].username}", given_name="Đurđa", family_name="Šćepanović")
        )
        ad.set_password(adm.id, PASSWORD, must_change=False)
        ad.enable(adm.id)
        from pim.models import AdminAccount

        with provider.services().transaction() as s:
            s.add(
                AdminAccount(
                    person_sub=people["victim"].id,
                    person_username=people["victim"].username,
                    username=adm.username,
                    account_id=adm.id,
                )
            )
        admins = {k: Admin(people[k], _enroll(provider, people[k])) for k in ("desk", "officer", "auditor")}
        yield {"provider": provider, "admins": admins, "victim": people["victim"], "adm": adm, "ad": ad}
    finally:
        provider.stop()


def test_help_desk_security_officer_and_auditor_in_chromium(
    console: dict[str, Any], request: pytest.FixtureRequest, browser: Any
) -> None:
    provider: LiveProvider = console["provider"]
    victim: DirectoryUser = console["victim"]
    adm: DirectoryUser = console["adm"]
    samba_dc = samba_fixture(request, "samba_dc")
    services = provider.services()

    # AD locks the victim's account (wrong passwords straight at the DC, past AD's threshold)
    pso = samba_fixture(request, "ad_user_policy")
    pso(victim.dn, lockout_threshold=2)
    for _ in range(3):
        try:
            samba_dc.connect(victim.upn or f"{victim.username}@example.test", "Wrong-Passw0rd!9").unbind()
        except Exception:  # noqa: BLE001, S110 — refused, as intended
            pass
    assert services.directory.get_user(victim.id).locked  # type: ignore[union-attr]
    assert _http_sign_in(provider, victim.username, PASSWORD)[0] == 401

    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    try:
        # -- help desk -------------------------------------------------------------------------
        _sign_in(page, provider, console["admins"]["desk"])
        _shot(page, "home")
        page.locator("#admin-admin-people").click()
        page.get_by_label("Name, username, e-mail or employee number").fill("Šćepanović")
        page.get_by_role("button", name="Search").click()
        _shot(page, "people")
        page.locator("#people-results").get_by_role("link", name="Đurđa Šćepanović").first.click()
        expect(page.locator("#person-name")).to_have_text("Đurđa Šćepanović")
        account = page.locator(f"#account-{victim.username}")
        expect(account.locator(".locked")).to_contain_text("locked in the directory")
        expect(page.locator(f"#account-{adm.username}")).to_contain_text("admin account")
        expect(page.locator(f"#account-{adm.username}")).to_contain_text(
            "its password changes only through privileged access management"
        )
        _shot(page, "person")
        form = page.locator(f"#unlock-{victim.username}")
        form.get_by_label("Reason (kept in the audit log)").fill("ticket 4711: locked out after holidays")
        form.get_by_role("button", name="Unlock").click()
        expect(page.locator(".notice")).to_contain_text("The account is unlocked.")
        expect(account.locator(".locked")).to_contain_text("no")
        status, location = _http_sign_in(provider, victim.username, PASSWORD)
        assert status == 302 and not location.endswith("/login"), (status, location)  # signs in again

        form = page.locator(f"#reset-{victim.username}")
        form.get_by_label("Reason (kept in the audit log)").fill("ticket 4712: forgot the password")
        form.get_by_role("button", name="Reset password").click()
        temporary = page.locator("#temporary-password").inner_text().strip()
        expect(page.locator("#must-change")).to_be_visible()
        assert samba_dc.read(victim.dn, ["pwdLastSet"])["pwdLastSet"][0] == "0"  # change at next sign-in
        status, location = _http_sign_in(provider, victim.username, temporary)
        assert "password" in location, (status, location)  # sent to choose a new password

        # the PIM admin account: no button — and a hand-made POST from the page is refused
        page.goto(f"{provider.issuer}/admin/people/{victim.id}")
        token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
        result = page.evaluate(
            """async ([url, token]) => {
                const body = new URLSearchParams({csrf_token: token, reason: "ticket 4713"});
                const r = await fetch(url, {method: "POST", body});
                return [r.status, await r.text()];
            }""",
            [f"/admin/people/{adm.id}/password", token],
        )
        assert result[0] == 200 and "privileged account" in result[1]
        assert samba_dc.read(adm.dn, ["pwdLastSet"])["pwdLastSet"][0] != "0"
        with services.reader() as s:
            refused = s.scalars(
                select(AuditEvent).where(
                    AuditEvent.event == "password.reset_refused", AuditEvent.subject == adm.id
                )
            ).all()
            unlocked = s.scalars(select(AuditEvent).where(AuditEvent.event == "user.unlocked")).all()
        assert refused and refused[0].severity == "critical"
        assert unlocked[0].actor == console["admins"]["desk"].user.id
        assert unlocked[0].details["reason"] == "ticket 4711: locked out after holidays"
        ctx.clear_cookies()

        # -- security officer: a failed sign-in, found by the person's name ----------------------
        assert _http_sign_in(provider, victim.username, "Not-The-Passw0rd!")[0] == 401
        _sign_in(page, provider, console["admins"]["officer"], "/admin/audit")
        page.get_by_label("Person (name, username or e-mail)").fill("Đurđa Šćepanović")
        page.get_by_label("Event (e.g. login.failed, or login. for all)").fill("login.failed")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#matched-people")).to_contain_text("Đurđa Šćepanović")
        expect(page.locator("table.audit-events tbody tr").first).to_contain_text("login.failed")
        page.get_by_label("Event (e.g. login.failed, or login. for all)").fill("")
        page.get_by_role("button", name="Search").click()
        _shot(page, "audit")
        ctx.clear_cookies()

        # -- auditor: sees everything, changes nothing --------------------------------------------
        _sign_in(page, provider, console["admins"]["auditor"], f"/admin/people/{victim.id}")
        expect(page.locator(f"#account-{victim.username}")).to_be_visible()
        assert page.locator("form[method=post]").count() == 0  # no action is offered
        page.goto(f"{provider.issuer}/admin/audit")
        expect(page.locator("table.audit-events")).to_be_visible()
        assert page.locator("form[method=post]").count() == 0
        page.goto(f"{provider.issuer}/login")  # a valid CSRF token of this browser, for hand-made POSTs
        token = page.locator('input[name="csrf_token"]').first.get_attribute("value") or ""
        for url in (
            f"/admin/people/{victim.id}/unlock",
            f"/admin/people/{victim.id}/password",
            "/admin/audit/verify",
        ):
            status = page.evaluate(
                """async ([url, token]) => (await fetch(url, {method: "POST",
                    body: new URLSearchParams({csrf_token: token, reason: "auditor tries"})})).status""",
                [url, token],
            )
            assert status == 403, url
        for url in ("/admin/", "/admin/people?q=Šćepanović", "/admin/audit"):
            assert page.goto(f"{provider.issuer}{url}").status == 200  # type: ignore[union-attr]

        # usable at 390 px: nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        for name, url in (("person-390", f"/admin/people/{victim.id}"), ("audit-390", "/admin/audit")):
            page.goto(f"{provider.issuer}{url}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, url
            if name == "person-390":
                _shot(page, name)
    finally:
        ctx.close()


def test_auditor_reads_the_conformance_report_and_downloads_the_pdf(
    console: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """The auditor chooses a rulebook and a period in the console, reads the report and saves
    its PDF; building it is recorded in the audit log under the auditor's name."""
    provider: LiveProvider = console["provider"]
    auditor: Admin = console["admins"]["auditor"]
    ctx = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    try:
        _sign_in(page, provider, auditor)
        page.locator("#admin-conformance_admin-page").click()
        page.get_by_label("Rulebook").select_option("cacak")
        page.get_by_label("Period").fill("2026-Q3")
        page.get_by_role("button", name="Show the report").click()
        expect(page.locator("#conformance-report")).to_contain_text("2026-Q3")
        assert page.locator("form[method=post]").count() == 0  # reading only
        _shot(page, "conformance")
        with page.expect_download() as info:
            page.locator("#conformance-pdf").click()
        saved = tmp_path / info.value.suggested_filename
        info.value.save_as(saved)
        assert saved.suffix == ".pdf" and saved.read_bytes().startswith(b"%PDF")
    finally:
        ctx.close()
    with provider.services().reader() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event == "conformance.report")).all()
    mine = [r for r in rows if r.actor == auditor.user.id]
    assert sorted(r.details["format"] for r in mine) == ["html", "pdf"]
