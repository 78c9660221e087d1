"""Policy acknowledgement before the first code (R-SSO-6), application assignment enforced at
/authorize, the portal and "my access" (issue 13 parts 3 and 4), through Flask's test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam.models.audit import AuditEvent
from iam.services import Services
from sso.models import PolicyAcceptance
from sso.policy import service as policy
from tests.sso.helpers import (
    REDIRECT,
    authorize_url,
    csrf_from,
    follow_to_code,
    login,
    make_client,
    make_user,
)


@pytest.fixture
def policy_on(services: Services, tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "security-policy"
    folder.mkdir()
    (folder / "en.md").write_text("# Rules\n\nKeep your password secret.\n\n<script>alert(1)</script>\n")
    (folder / "sr-Latn.md").write_text("# Pravila\n\nČuvajte lozinku.\n")
    settings = services.settings.policy
    before = (settings.required, settings.dir)
    settings.required, settings.dir = True, folder
    yield folder
    settings.required, settings.dir = before


def _events(services: Services, name: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def _start(client, cid: str, **extra: str):  # type: ignore[no-untyped-def]
    url, flow = authorize_url(cid, **extra)
    resp = client.get(url)
    if resp.headers.get("Location", "").endswith("/login"):
        resp = login(client, "alice", "Corr3ct-Horse-Battery")
    return resp, flow


def _follow_inside(client, resp):  # type: ignore[no-untyped-def]
    """Follow the provider's own redirects; return the last response (a page or an exit)."""
    for _ in range(10):
        if resp.status_code not in (302, 303):
            return resp
        loc = resp.headers["Location"]
        if loc.startswith(REDIRECT):
            return resp
        parts = urlsplit(loc)
        resp = client.get(parts.path + ("?" + parts.query if parts.query else ""))
    raise AssertionError("too many redirects")


def test_first_sign_in_asks_for_the_policy_then_issues_the_code(services, client, policy_on):
    user = make_user(services)
    cid, _ = make_client(services)
    resp, flow = _start(client, cid)
    page = _follow_inside(client, resp)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="policy-text"' in html and "Keep your password secret." in html
    assert "<script>alert(1)</script>" not in html  # raw HTML in the file is shown as text
    version = policy.version_of(policy_on)
    resp = client.post(
        "/policy",
        data={"csrf_token": csrf_from(html), "action": version},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    )
    params = follow_to_code(client, resp)
    assert params["code"] and params["state"] == flow.state
    with services.transaction() as s:
        rows = list(s.scalars(select(PolicyAcceptance)))
    assert [(r.sub, r.version, r.language, r.username) for r in rows] == [(user.id, version, "en", "alice")]
    assert rows[0].ip and rows[0].accepted_at is not None
    events = _events(services, "policy.accepted")
    assert len(events) == 1 and events[0].subject == user.id and events[0].details["version"] == version
    # accepted once: the next authorization goes straight to the code
    url, flow = authorize_url(cid)
    assert follow_to_code(client, client.get(url))["code"]


def test_a_new_version_asks_again_and_prompt_none_is_interaction_required(services, client, policy_on):
    make_user(services)
    cid, _ = make_client(services)
    resp, _flow = _start(client, cid)
    html = _follow_inside(client, resp).get_data(as_text=True)
    client.post("/policy", data={"csrf_token": csrf_from(html), "action": policy.version_of(policy_on)})
    (policy_on / "en.md").write_text("# Rules, 2nd edition\n\nAlso lock your screen.\n")
    url, flow = authorize_url(cid, prompt="none")
    params = follow_to_code(client, client.get(url))
    assert params["error"] == "interaction_required" and params["state"] == flow.state
    url, _ = authorize_url(cid)
    page = _follow_inside(client, client.get(url))
    assert "Also lock your screen." in page.get_data(as_text=True)
    # an acceptance of the page shown before the change does not count for the new text
    stale = client.post(
        "/policy", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "action": "0" * 64}
    )
    assert stale.headers["Location"].endswith("/policy")


def test_report_lists_who_has_not_accepted_page_csv_and_cli(services, client, app, policy_on):
    officer = make_user(services, "sec")
    services.settings.pim.security_officers = ["sec"]
    make_user(services, "bob")
    with services.transaction() as s:
        from iam.identities import upsert_identity

        upsert_identity(s, services.directory.get_user(officer.id), kind="local")
        upsert_identity(s, services.directory.find_user(username="bob"), kind="local")
    try:
        # bob (not an officer) is refused the report
        login(client, "bob", "Corr3ct-Horse-Battery")
        html = client.get("/policy").get_data(as_text=True)
        client.post("/policy", data={"csrf_token": csrf_from(html), "action": policy.version_of(policy_on)})
        assert client.get("/policy/acceptances").status_code == 403
        assert client.get("/policy/acceptances.csv").status_code == 403
        other = app.test_client()
        login(other, "sec", "Corr3ct-Horse-Battery")
        page = other.get("/policy/acceptances")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert "1 of 2 people" in text
        csv = other.get("/policy/acceptances.csv").get_data(as_text=True)
        lines = {line.split(",")[0]: line.split(",") for line in csv.splitlines()[2:]}
        assert lines["bob"][2] == "true" and lines["bob"][3] == policy.version_of(policy_on)
        assert lines["sec"][2] == "false" and lines["sec"][3] == ""
        runner = CliRunner()
        from iam.cli import cli
        from sso.policy import cli as policy_cli

        policy_cli.register(cli)
        env = {"IAM_POLICY__REQUIRED": "true", "IAM_POLICY__DIR": str(policy_on)}
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("iam.clitools.Ctx.services", property(lambda self: services))
            mp.setattr("iam.clitools.Ctx.settings", property(lambda self: services.settings))
            result = runner.invoke(cli, ["policy", "acceptances", "--json"], env=env)
            assert result.exit_code == 0, result.output
            import json

            data = json.loads(result.output)
            assert data["accepted"] == 1 and data["not_accepted"] == 1
            pending = runner.invoke(cli, ["policy", "acceptances", "--pending", "--json"], env=env)
            assert [p["username"] for p in json.loads(pending.output)["people"]] == ["sec"]
    finally:
        services.settings.pim.security_officers = []


def test_assignment_refuses_outsiders_at_authorize_and_hides_the_app(services, client):
    make_user(services, groups=["staff"])
    make_user(services, "hana", groups=["finance"])
    cid, _ = make_client(
        services,
        name="Ledger",
        launch_uri="https://ledger.example/",
        description="The finance ledger",
        allowed_groups=["finance"],
    )
    open_cid, _ = make_client(services, name="Intranet", launch_uri="https://intranet.example/")
    url, flow = authorize_url(cid)
    client.get(url)
    resp = login(client, "alice", "Corr3ct-Horse-Battery")
    page = _follow_inside(client, resp)
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert "You may not use Ledger" in html
    back = parse_qs(
        urlsplit(html.split('id="error-next" href="')[1].split('"')[0].replace("&amp;", "&")).query
    )
    assert back["error"] == ["access_denied"] and back["state"] == [flow.state]
    assert _events(services, "authorize.not_assigned")[0].client_id == cid
    # prompt=none: no page may be shown — access_denied at the redirect URI
    url, flow = authorize_url(cid, prompt="none")
    params = follow_to_code(client, client.get(url))
    assert params["error"] == "access_denied"
    portal = client.get("/").get_data(as_text=True)
    assert "Intranet" in portal and "Ledger" not in portal
    # logos may come from the applications' https sites — on the portal only
    assert "img-src 'self' data: https:;" in client.get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data:;" in client.get("/account").headers["Content-Security-Policy"]
    # a member signs in and sees it
    other = client.application.test_client()
    url, flow = authorize_url(cid)
    other.get(url)
    params = follow_to_code(other, login(other, "hana", "Corr3ct-Horse-Battery"))
    assert params["code"]
    portal = other.get("/").get_data(as_text=True)
    assert "Ledger" in portal and "The finance ledger" in portal and "Intranet" in portal
    assert open_cid


def test_my_access_lists_groups_sessions_and_password_expiry(services, client):
    make_user(services, groups=["staff"])
    login(client, "alice", "Corr3ct-Horse-Battery")
    page = client.get("/my-access")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-group="staff"' in html and 'data-origin="unknown"' in html
    assert "Found in the directory" in html
    assert 'id="password-expiry"' in html
    assert 'id="access-sso-sessions"' in html


def test_portal_needs_sign_in_and_the_policy(services, client, policy_on):
    assert client.get("/").headers["Location"].endswith("/login")
    make_user(services)
    login(client, "alice", "Corr3ct-Horse-Battery")
    assert client.get("/").headers["Location"].endswith("/policy")
    assert client.get("/my-access").headers["Location"].endswith("/policy")


def test_client_admin_api_sets_portal_fields_and_documents_them(services, client):
    from tests.sso.helpers import API_RESOURCE, basic

    cid, _ = make_client(services, name="Ledger")
    admin, secret = make_client(
        services, grant_types=["client_credentials"], scopes=["clients:admin", "other"], redirect_uris=[]
    )

    def token(scope: str) -> str:
        resp = client.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": scope, "resource": API_RESOURCE},
            headers=basic(admin, secret or ""),
        )
        assert resp.status_code == 200, resp.get_json()
        return str(resp.get_json()["access_token"])

    auth = {"Authorization": f"Bearer {token('clients:admin')}"}
    assert client.get("/api/v1/clients").status_code == 401
    weak = {"Authorization": f"Bearer {token('other')}"}
    assert client.patch(f"/api/v1/clients/{cid}/portal", json={}, headers=weak).status_code == 403
    resp = client.patch(
        f"/api/v1/clients/{cid}/portal",
        json={"launch_uri": "https://ledger.example/", "allowed_groups": ["finance"]},
        headers=auth,
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["launch_uri"] == "https://ledger.example/" and body["allowed_groups"] == ["finance"]
    assert "client_secret" not in body
    # a partial update keeps the rest; bad input changes nothing
    resp = client.patch(f"/api/v1/clients/{cid}/portal", json={"description": "Books"}, headers=auth)
    assert resp.get_json()["allowed_groups"] == ["finance"] and resp.get_json()["description"] == "Books"
    bad = client.patch(f"/api/v1/clients/{cid}/portal", json={"launch_uri": "javascript:x"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_request"
    assert client.patch(f"/api/v1/clients/{cid}/portal", json={"nope": 1}, headers=auth).status_code == 400
    assert (
        client.get(f"/api/v1/clients/{cid}", headers=auth).get_json()["launch_uri"]
        == "https://ledger.example/"
    )
    assert client.get("/api/v1/clients/none", headers=auth).status_code == 404
    listed = client.get("/api/v1/clients", headers=auth).get_json()
    assert {c["client_id"] for c in listed} == {cid, admin}
    events = _events(services, "client.portal_changed")
    assert len(events) == 2 and events[0].actor == f"client:{admin}"
    doc = client.get("/api/v1/openapi.json").get_json()
    patch = doc["paths"]["/api/v1/clients/{client_id}/portal"]["patch"]
    schema = patch["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"description", "logo_uri", "launch_uri", "allowed_groups"}
    out = doc["paths"]["/api/v1/clients/{client_id}"]["get"]["responses"]["200"]["content"]
    assert "allowed_groups" in out["application/json"]["schema"]["properties"]


def test_an_unreadable_policy_folder_holds_sign_ins_back_and_stops_the_start(services, client, policy_on):
    from iam.app import create_app
    from iam.errors import ConfigError

    make_user(services)
    cid, _ = make_client(services)
    for f in policy_on.iterdir():
        f.unlink()
    url, flow = authorize_url(cid, prompt="none")
    resp, _ = _start(client, cid)
    page = _follow_inside(client, resp)
    assert page.status_code == 503 and "security policy cannot be shown" in page.get_data(as_text=True)
    params = follow_to_code(client, client.get(url))
    assert params["error"] == "interaction_required"
    with pytest.raises(ConfigError, match="holds no <language>.md file"):
        create_app(services=services)


def test_policy_text_language_choice_version_and_safe_markdown(tmp_path: Path) -> None:
    from iam.config import load_settings

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "en.md").write_text("# Rules\n\n[click](javascript:alert(1)) <img src=x onerror=alert(1)>\n")
    (folder / "sr-Latn.md").write_text("# Pravila\n")
    settings = load_settings(
        dev_mode=True, var_dir=tmp_path, languages=["sr-Latn", "en"], policy={"required": True, "dir": folder}
    )
    assert policy.load(settings, "sr-Latn").language == "sr-Latn"
    assert policy.load(settings, "sr").language == "sr-Latn"
    assert policy.load(settings, "en-GB").language == "en"
    assert policy.load(settings, "pl").language == "sr-Latn"  # the first configured language with a file
    html = policy.load(settings, "en").html()
    assert "href" not in html and "<img" not in html and "&lt;img" in html  # link refused, HTML as text
    before = policy.version_of(folder)
    (folder / "sr-Latn.md").write_text("# Pravila, izmena\n")  # any language's change is a new version
    assert policy.version_of(folder) != before and len(before) == 64


def test_my_access_shows_pim_roles_and_hr_birthright(services, client):
    import datetime as dt

    from pim.models import Eligibility
    from provisioning.models import HrPerson, PersonStatus

    user = make_user(services, groups=["staff", "finance"])
    with services.transaction() as s:
        s.add(Eligibility(role="server-operators", username="alice", sub=user.id, created_by="bob"))
        s.add(
            HrPerson(
                employee_number="E-1",
                given_name="Alice",
                family_name="A",
                department="Finance",
                title="Clerk",
                engagement="staff",
                start_date=dt.date(2026, 1, 1),
                status=PersonStatus.ACTIVE,
                username="alice",
                sub=user.id,
                groups=["finance"],
            )
        )
    login(client, "alice", "Corr3ct-Horse-Battery")
    html = client.get("/my-access").get_data(as_text=True)
    finance = html.split('data-group="finance"')[1].split("</tr>")[0]
    assert 'data-origin="birthright"' in finance and "Finance / Clerk" in finance
    staff = html.split('data-group="staff"')[1].split("</tr>")[0]
    assert "Found in the directory" in staff
    roles = html.split('id="access-pim-roles"')[1].split("</table>")[0]
    assert "Server operators" in roles and "eligible (request when needed)" in roles and "bob" in roles
    assert 'id="access-pim-elevations"' in html
