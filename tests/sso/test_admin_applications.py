"""The console's Applications and signing-key pages through the test client: the wizard
registers with the same validation as the CLI (errors next to the setting, nothing stored),
the secret is shown once and never again, edit/disable/rotate/remove ask for a reason and are
audited with the administrator as actor; the auditor reads and cannot change."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import func, select

from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.services import Services
from sso import clients as client_service
from sso.models import Client, KeyStatus, SigningKey
from tests.iam.admin.helpers import person, sign_in
from tests.sso.helpers import basic

REDIRECT = "https://app.example/cb"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m
    return m.group(1)


def _wizard(client: Any, kind: str, **fields: Any) -> Any:
    page = client.get(f"/admin/applications/new?kind={kind}")
    assert page.status_code == 200
    data: dict[str, Any] = {
        "csrf_token": _csrf(page.get_data(as_text=True)),
        "kind": kind,
        "name": "Payroll",
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": REDIRECT,
        "scopes": "openid profile email",
        "reason": "ticket CHG-1",
    }
    data.update(fields)
    return client.post(f"/admin/applications/new?kind={kind}", data=data)


def _count(services: Services) -> int:
    with services.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Client)) or 0)


def test_wizard_registers_and_shows_the_secret_once(client: Any, services: Services, caplog: Any) -> None:
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    assert "web" in client.get("/admin/applications/new").get_data(as_text=True)
    caplog.set_level(logging.DEBUG)
    resp = _wizard(
        client,
        "web",
        allowed_networks="10.0.0.0/8",
        agency_code="AG-1",
        require_acr="mfa",
        backchannel_logout_uri="https://app.example/bclogout",
        post_logout_redirect_uris="https://app.example/bye",
        audiences="https://api.example",
        require_consent="y",
    )
    assert resp.status_code == 200, re.findall(r"field-error.*", resp.get_data(as_text=True))
    assert resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    secret = re.search(r'id="client-secret">([^<]+)<', html).group(1)  # type: ignore[union-attr]
    cid = re.search(r'id="client-id">([^<]+)<', html).group(1)  # type: ignore[union-attr]
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert client_service.check_secret(row, secret)
        assert row.allowed_networks == ["10.0.0.0/8"] and row.agency_code == "AG-1"
        assert row.require_acr == "mfa" and row.require_consent and row.audiences == ["https://api.example"]
        [ev] = s.scalars(select(AuditEvent).where(AuditEvent.event == "client.created")).all()
        assert ev.actor == admin.id and ev.details["reason"] == "ticket CHG-1"
        assert secret not in str(ev.details)
    # never again: not on the application's page, not in the log
    detail = client.get(f"/admin/applications/{cid}").get_data(as_text=True)
    assert secret not in detail and "client.created" in detail  # recent activity
    assert secret not in caplog.text


def test_invalid_settings_are_shown_in_place_and_nothing_is_stored(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.IT_ADMIN))
    before = _count(services)
    resp = _wizard(client, "web", redirect_uris="ftp://nowhere")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="redirect_uris-error"' in html and "not an absolute http(s) URL" in html
    assert 'aria-invalid="true"' in html
    resp = _wizard(client, "web", reason="", redirect_uris="https://app.example/cb#frag")
    html = resp.get_data(as_text=True)  # every refusal at once
    assert resp.status_code == 422 and 'id="reason-error"' in html and 'id="redirect_uris-error"' in html
    resp = _wizard(client, "web", allowed_networks="not-a-net")
    assert 'id="allowed_networks-error"' in resp.get_data(as_text=True)
    resp = _wizard(client, "web", token_endpoint_auth_method="private_key_jwt", jwks="")
    assert 'id="jwks-error"' in resp.get_data(as_text=True)
    assert _count(services) == before


def test_private_key_jwt_from_a_pem_public_key(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.IT_ADMIN))
    key = ECKey.generate_key("P-256")
    resp = _wizard(
        client,
        "custom",
        token_endpoint_auth_method="private_key_jwt",
        jwks=key.as_pem(private=False).decode(),
    )
    assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
    cid = resp.headers["Location"].rsplit("/", 1)[1]
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert row.jwks and row.jwks["keys"][0]["kty"] == "EC" and row.secret_hash is None
    # a private key is refused, and not echoed back
    private = key.as_pem(private=True).decode()
    resp = _wizard(client, "custom", token_endpoint_auth_method="private_key_jwt", jwks=private)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and "never the private key" in html
    assert private.splitlines()[1] not in html


def test_edit_disable_rotate_remove_ask_for_a_reason(client: Any, services: Services) -> None:
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    html = _wizard(client, "web").get_data(as_text=True)
    cid = re.search(r'id="client-id">([^<]+)<', html).group(1)  # type: ignore[union-attr]
    old = re.search(r'id="client-secret">([^<]+)<', html).group(1)  # type: ignore[union-attr]
    page = client.get(f"/admin/applications/{cid}/edit").get_data(as_text=True)
    token = _csrf(page)
    form = {
        "csrf_token": token,
        "name": "Payroll 2",
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "redirect_uris": REDIRECT + "\nhttps://app.example/cb2",
        "scopes": "openid",
    }
    resp = client.post(f"/admin/applications/{cid}/edit", data={**form, "reason": ""})
    assert resp.status_code == 422 and 'id="reason-error"' in resp.get_data(as_text=True)
    resp = client.post(f"/admin/applications/{cid}/edit", data={**form, "reason": "second callback"})
    assert resp.status_code == 302
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert row.name == "Payroll 2" and len(row.redirect_uris) == 2
        assert client_service.check_secret(row, old)  # editing keeps the secret
    # rotate: the old secret stops working, the new one is shown once
    resp = client.post(
        f"/admin/applications/{cid}/rotate-secret", data={"csrf_token": token, "reason": "leaked"}
    )
    new = re.search(r'id="client-secret">([^<]+)<', resp.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert resp.headers["Cache-Control"] == "no-store"
    token_resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cid, old))
    assert token_resp.status_code == 401
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert client_service.check_secret(row, new) and not client_service.check_secret(row, old)
    client.post(f"/admin/applications/{cid}/disable", data={"csrf_token": token, "reason": "audit finding"})
    with services.transaction() as s:
        assert client_service.get_client(s, cid).disabled
    client.post(f"/admin/applications/{cid}/remove", data={"csrf_token": token, "reason": "decommissioned"})
    with services.transaction() as s:
        assert s.get(Client, cid) is None
        events = {
            e.event: e
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.client_id == cid, AuditEvent.actor == admin.id)
            )
        }
    assert events["client.updated"].details["reason"] == "second callback"
    assert events["client.credential_rotated"].details["reason"] == "leaked"
    assert events["client.disabled"].details["reason"] == "audit finding"
    assert events["client.removed"].details["reason"] == "decommissioned"


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
def test_auditor_reads_and_cannot_change(client: Any, services: Services) -> None:
    cid, _secret = _make(services)
    sign_in(client, services, person(services, Role.AUDITOR))
    for path in ("/admin/applications/", f"/admin/applications/{cid}", "/admin/operations/keys"):
        assert client.get(path).status_code == 200, path
    html = client.get(f"/admin/applications/{cid}").get_data(as_text=True)
    token = _csrf(html)
    for path in (f"/admin/applications/{cid}/disable", f"/admin/applications/{cid}/rotate-secret"):
        assert client.post(path, data={"csrf_token": token, "reason": "auditor"}).status_code == 403
    assert (
        client.post(
            "/admin/operations/keys/rotate", data={"csrf_token": token, "reason": "x" * 5}
        ).status_code
        == 403
    )
    with services.transaction() as s:
        assert not client_service.get_client(s, cid).disabled


def test_keys_rotate_with_a_reason(client: Any, services: Services) -> None:
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    with services.transaction() as s:
        active = set(s.scalars(select(SigningKey.kid).where(SigningKey.status == KeyStatus.ACTIVE)))
    html = client.get("/admin/operations/keys").get_data(as_text=True)
    assert all(kid in html for kid in active)
    resp = client.post("/admin/operations/keys/rotate", data={"csrf_token": _csrf(html), "reason": "yearly"})
    assert resp.status_code == 302
    with services.transaction() as s:
        now_active = set(s.scalars(select(SigningKey.kid).where(SigningKey.status == KeyStatus.ACTIVE)))
        [ev] = s.scalars(select(AuditEvent).where(AuditEvent.event == "keys.rotated")).all()
    assert not (now_active & active) and ev.actor == admin.id and ev.details["reason"] == "yearly"


def _make(services: Services) -> tuple[str, str | None]:
    spec = client_service.ClientSpec(name="RP", redirect_uris=[REDIRECT])
    with services.transaction() as s:
        row, secret = client_service.create_client(s, services.cipher, spec, actor="test", allow_http=True)
        return row.client_id, secret


def test_an_edit_keeps_and_changes_the_portal_fields_and_who_may_use_it(
    client: Any, services: Services
) -> None:
    """Who may use an application is enforced at sign-in: a console edit that does not show it
    must never drop it (it once did: every save opened the application to everyone)."""
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    with services.transaction() as s:
        row, _ = client_service.create_client(
            s,
            services.cipher,
            client_service.ClientSpec(
                name="Payroll",
                redirect_uris=[REDIRECT],
                description="Salaries",
                launch_uri="https://app.example/",
                logo_uri="/static/iam.css",
                allowed_groups=["Payroll staff"],
            ),
            actor="test",
            allow_http=False,
        )
        cid = row.client_id
    page = client.get(f"/admin/applications/{cid}/edit").get_data(as_text=True)
    assert "Payroll staff" in page and "https://app.example/" in page and "Salaries" in page
    # the form as the browser sends it: every field the page holds, as it holds it
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    fields.update(
        {
            name: text.strip()
            for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>([^<]*)</textarea>', page)
        }
    )
    fields.update({"name": "Payroll 2", "reason": "rename"})
    fields["grant_types"] = ["authorization_code", "refresh_token"]  # type: ignore[assignment]
    fields["token_endpoint_auth_method"] = "client_secret_basic"
    resp = client.post(f"/admin/applications/{cid}/edit", data=fields)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert row.name == "Payroll 2" and row.allowed_groups == ["Payroll staff"]
        assert (row.description, row.launch_uri, row.logo_uri) == (
            "Salaries",
            "https://app.example/",
            "/static/iam.css",
        )
    detail = client.get(f"/admin/applications/{cid}").get_data(as_text=True)
    assert "Payroll staff" in detail
    fields.update({"allowed_groups": "Payroll staff\nHR", "launch_uri": "", "reason": "HR too"})
    assert client.post(f"/admin/applications/{cid}/edit", data=fields).status_code == 302
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert row.allowed_groups == ["Payroll staff", "HR"] and row.launch_uri is None
    fields.update({"logo_uri": "javascript:alert(1)", "reason": "bad logo"})
    bad = client.post(f"/admin/applications/{cid}/edit", data=fields)
    assert bad.status_code == 422 and 'id="logo_uri-error"' in bad.get_data(as_text=True)
