"""The console's Applications, Operations and PIM pages in Debian's Chromium, signed in through
SSO as AD people whose console roles come from AD groups on the real Samba DC (unique names):

- the IT administrator registers an application in the wizard (secret shown once, never again)
  and the independent relying party (npm openid-client) signs in through it;
- the IT administrator retries and discards dead jobs with a reason;
- the security officer sees the PIM role editor's validation messages next to the fields;
- the auditor sees the pages and every change is refused (403), nothing changed.

Entering the console needs the ``mfa`` level: each person has an authenticator (TOTP) and
passes the step-up. With ``IAM_SCREENS=<folder>`` the main pages are saved as PNG
(390 px and 1280 px wide) for the README.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect

from iam import jobs
from iam.models.jobs import Job, JobStatus
from sso import clients as client_service
from tests.e2e.conftest import LiveProvider, NodeRP, _provider_env, free_port, samba_fixture, unique
from tests.e2e.test_mfa_protocol import enroll

pytestmark = [pytest.mark.e2e, pytest.mark.samba]

AD_PASSWORD = "Str0ng-Passw0rd!1"
GROUPS = {
    "it_admin": unique("e2e-it-admins-"),
    "auditor": unique("e2e-auditors-"),
    "security_officer": unique("e2e-officers-"),
}
SCREENS = os.environ.get("IAM_SCREENS")


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveProvider]:
    directory = samba_fixture(request, "samba_ad")
    var_dir = tmp_path_factory.mktemp("provider-adminops")
    port = free_port()
    env = _provider_env(var_dir, port, directory)
    env.update(
        {
            "IAM_MFA__REQUIRE_ENROLLED": "false",
            "IAM_ADMIN__IT_ADMIN_GROUP": GROUPS["it_admin"],
            "IAM_ADMIN__AUDITOR_GROUP": GROUPS["auditor"],
            "IAM_ADMIN__SECURITY_OFFICER_GROUP": GROUPS["security_officer"],
            "IAM_ADMIN__HELPDESK_GROUP": unique("e2e-helpdesk-"),
        }
    )
    provider = LiveProvider(kind="ad", port=port, var_dir=var_dir, env=env, directory_settings=directory)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def people(console: LiveProvider, request: pytest.FixtureRequest) -> dict[str, tuple[str, str, str]]:
    """An AD person per role (username, sub, TOTP secret) and an ordinary one, in a fresh OU."""
    from iam.directory.base import NewUser

    ad = samba_fixture(request, "ad_directory")
    out: dict[str, tuple[str, str, str]] = {}
    for role in ("it_admin", "auditor", "security_officer", "ordinary"):
        username = unique("e2eadm")
        user = ad.create_user(NewUser(username=username, given_name="Ada", family_name="Console"))
        ad.set_password(user.id, AD_PASSWORD, must_change=False)
        ad.enable(user.id)
        if role in GROUPS:
            if ad.get_group(GROUPS[role]) is None:
                ad.create_group(GROUPS[role])
            ad.add_member(GROUPS[role], user.id)
        secret = enroll(console, user.id) if role != "ordinary" else ""
        out[role] = (username, user.id, secret)
    return out


def _enter(page: Page, p: LiveProvider, who: tuple[str, str, str], path: str) -> None:
    """Open a console page: sign in with the password, then the step-up with the app's code."""
    username, _sub, secret = who
    page.goto(f"{p.issuer}{path}")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(AD_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/mfa/"))
    if page.get_by_label("Code", exact=True).count() == 0:
        page.locator("a[href*='/mfa/code'], button:has-text('Authenticator')").first.click()
    page.get_by_label("Code", exact=True).fill(pyotp.TOTP(secret).now())
    page.get_by_label("Code", exact=True).press("Enter")
    expect(page).to_have_url(f"{p.issuer}{path}")


def _screen(page: Page, name: str, *, narrow: bool = False) -> None:
    """Save the page at 1280 px (and at 390 px with ``narrow``) when IAM_SCREENS is set."""
    if not SCREENS:
        return
    folder = Path(SCREENS)
    folder.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390) if narrow else (1280,):
        page.set_viewport_size({"width": width, "height": 900})
        suffix = "" if width == 1280 else "-390"
        page.screenshot(path=str(folder / f"{name}{suffix}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_it_admin_registers_an_application_and_openid_client_signs_in(
    console: LiveProvider, people: dict[str, tuple[str, str, str]], page: Page, node_rp: NodeRP
) -> None:
    p = console
    _enter(page, p, people["it_admin"], "/admin/applications/")
    page.locator("#new-application").click()
    expect(page.get_by_role("heading", name="Register an application")).to_be_visible()
    page.locator("label[for=kind-web]").click()
    page.locator("#kind-next").click()
    base = f"http://127.0.0.1:{free_port()}"
    page.get_by_label("Name shown on sign-in pages").fill("Payroll (e2e)")
    # first a mistake: the error appears next to the field, nothing is stored
    page.get_by_label("Redirect URIs (one per line, exact)").fill("ftp://wrong.example/cb")
    page.get_by_label("Allowed scopes (separated by spaces)").fill(
        "openid profile email groups offline_access"
    )
    page.locator("#application-save").click()
    expect(page.locator("#redirect_uris-error")).to_contain_text("not an absolute http(s) URL")
    expect(page.locator("#redirect_uris")).to_have_attribute("aria-invalid", "true")
    _screen(page, "admin-application-wizard", narrow=True)
    page.get_by_label("Redirect URIs (one per line, exact)").fill(f"{base}/cb")
    page.get_by_label("Post-logout redirect URIs (one per line)").fill(f"{base}/bye")
    page.get_by_label("Reason (kept in the audit log)").fill("payroll project, ticket CHG-7")
    page.locator("#application-save").click()
    expect(page.locator("#client-secret")).to_be_visible()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.locator("#client-secret").inner_text().strip()
    assert len(secret) >= 32
    page.locator("#secret-done").click()
    expect(page.locator("#application-facts")).to_contain_text(client_id)
    assert secret not in page.content()  # shown once, never again
    page.reload()
    assert secret not in page.content()
    _screen(page, "admin-application")
    client = {
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": f"{base}/cb",
        "post_logout_redirect_uri": f"{base}/bye",
    }
    username = people["ordinary"][0]
    out = node_rp.run(p, client, username=username, password=AD_PASSWORD, mode="login")
    assert out["id_token_claims"]["aud"] == client_id
    # the sign-in shows as recent activity of the application
    page.reload()
    expect(page.locator("#activity")).to_contain_text("token")
    page.goto(f"{p.issuer}/admin/applications/")
    expect(page.locator("#applications")).to_contain_text("Payroll (e2e)")
    _screen(page, "admin-applications")
    # the portal's settings and who may use it, edited in the console, survive a later edit
    page.get_by_role("link", name="Payroll (e2e)").click()
    page.locator("#edit-application").click()
    page.get_by_label("Launch URL (where the portal's tile leads)").fill(f"{base}/")
    page.get_by_label("Who may use it: directory groups (one per line; empty: everyone)").fill(
        "Payroll staff"
    )
    page.get_by_label("Reason (kept in the audit log)").fill("payroll staff only, ticket CHG-8")
    page.locator("#application-save").click()
    expect(page.locator("#application-allowed-groups")).to_contain_text("Payroll staff")
    page.locator("#edit-application").click()
    expect(
        page.get_by_label("Who may use it: directory groups (one per line; empty: everyone)")
    ).to_have_value("Payroll staff")
    page.get_by_label("Name shown on sign-in pages").fill("Payroll")
    page.get_by_label("Reason (kept in the audit log)").fill("shorter name")
    page.locator("#application-save").click()
    expect(page.locator("#application-allowed-groups")).to_contain_text("Payroll staff")
    with p.services().transaction() as s:
        row = client_service.get_client(s, client_id)
        assert row.name == "Payroll" and row.allowed_groups == ["Payroll staff"]
        assert row.launch_uri == f"{base}/"
    assert secret not in p.server_log.read_text(errors="replace")


def _dead(p: LiveProvider, kind: str) -> str:
    svc = p.services()
    with svc.transaction() as s:
        job = jobs.enqueue(s, kind, {"e2e": True}, run_at=None)
        assert job is not None
        job.status, job.attempts, job.last_error = JobStatus.DEAD, 12, "LDAPError: e2e failure"
        return job.id


def _job_status(p: LiveProvider, job_id: str) -> str:
    with p.services().transaction() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return str(job.status)


def test_jobs_page_retry_and_discard(
    console: LiveProvider, people: dict[str, tuple[str, str, str]], page: Page
) -> None:
    p = console
    retry, discard = _dead(p, "e2e.retry-me"), _dead(p, "e2e.discard-me")
    _enter(page, p, people["it_admin"], "/admin/operations/jobs?view=dead")
    expect(page.locator(f"#job-{retry}")).to_contain_text("LDAPError: e2e failure")
    _screen(page, "admin-jobs", narrow=True)
    page.locator(f"#retry-reason-{retry}").fill("directory repaired")
    page.locator(f"#retry-{retry}").click()
    expect(page.locator(".notice")).to_contain_text("will run again now")
    page.locator(f"#discard-reason-{discard}").fill("account deleted by hand")
    page.locator(f"#discard-{discard}").click()
    expect(page.locator(".notice")).to_contain_text("was discarded")
    assert _job_status(p, discard) == "discarded"
    assert _job_status(p, retry) in ("pending", "running", "dead")  # the worker has no handler
    page.goto(f"{p.issuer}/admin/operations/health")
    expect(page.locator("#health-database")).to_contain_text("working")
    expect(page.locator("#health-directory")).to_contain_text("working")
    # the provider's own worker writes heartbeats
    deadline = time.monotonic() + 30
    while "alive" not in page.locator("#workers").inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(page.locator("#workers")).to_contain_text("alive")
    _screen(page, "admin-health")
    page.goto(f"{p.issuer}/admin/operations/settings")
    assert p.env.get("IAM_DIRECTORY__BIND_PASSWORD", "x-none-x") not in page.content()


def test_pim_role_editor_validation_in_place(
    console: LiveProvider, people: dict[str, tuple[str, str, str]], page: Page
) -> None:
    p = console
    _enter(page, p, people["security_officer"], "/admin/pim/roles")
    page.locator("#new-role").click()
    page.locator("#name").fill(unique("e2e-role-"))
    page.locator("#groups").fill("")
    page.locator("#max_minutes").fill("60")
    page.locator("#default_minutes").fill("90")
    page.locator("#approvers").fill("someone")
    page.locator("#role-reason").fill("new role for the web farm")
    page.locator("#role-save").click()
    expect(page.locator("#groups-error")).to_be_visible()
    expect(page.locator("#groups")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#form-error")).to_be_visible()
    _screen(page, "admin-pim-role")
    page.locator("#groups").fill("Domain Users")
    page.locator("#role-reason").fill("new role for the web farm")
    page.locator("#role-save").click()
    expect(page.locator("#form-error")).to_contain_text("default_minutes is larger than max_minutes")
    page.locator("#default_minutes").fill("30")
    page.locator("#role-reason").fill("new role for the web farm")
    page.locator("#role-save").click()
    expect(page.locator(".notice")).to_contain_text("is saved in the database")


def test_auditor_sees_and_cannot_change(
    console: LiveProvider, people: dict[str, tuple[str, str, str]], page: Page
) -> None:
    p = console
    data = p.cli_json(
        "client", "add", "--name", "Audited app", "--redirect-uri", "https://audited.example/cb"
    )
    client_id = data["client_id"]
    job = _dead(p, "e2e.auditor")
    _enter(page, p, people["auditor"], f"/admin/applications/{client_id}")
    expect(page.locator("#application-facts")).to_contain_text(client_id)
    page.locator("#disable-reason").fill("auditor tries")
    page.locator("#disable-button").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert json.loads(p.cli("client", "show", client_id, "--json").stdout)["disabled"] is False
    page.goto(f"{p.issuer}/admin/operations/jobs?view=dead")
    page.locator(f"#discard-reason-{job}").fill("auditor tries")
    page.locator(f"#discard-{job}").click()
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert _job_status(p, job) == "dead"
    for path in (
        "/admin/operations/health",
        "/admin/operations/settings",
        "/admin/operations/keys",
        "/admin/pim/roles",
    ):
        resp = page.goto(f"{p.issuer}{path}")
        assert resp is not None and resp.status == 200, path
