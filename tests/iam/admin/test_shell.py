"""The console's shell: sign-in, step-up, roles, deny by default."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint

from iam.admin import AdminPage, Role, Section, register_admin_page, require_admin
from iam.services import Services
from tests.iam.admin.helpers import person, sign_in
from tests.sso.helpers import PASSWORD, login


def test_anonymous_is_sent_to_sign_in_and_comes_back(client: Any, services: Services) -> None:
    resp = client.get("/admin/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    user = person(services, Role.HELPDESK)
    resp = login(client, user.username, PASSWORD)
    assert resp.headers["Location"] == "/admin/"  # back where the browser was going
    with client.session_transaction() as flow:
        assert "return_to" not in flow


def test_password_only_session_is_sent_to_step_up(client: Any, services: Services) -> None:
    user = person(services, Role.HELPDESK)
    sign_in(client, services, user, level="password")
    resp = client.get("/admin/")
    assert resp.status_code == 302 and "/mfa/" in resp.headers["Location"]
    with client.session_transaction() as flow:
        assert flow["mfa_required"]["next"] == "/admin/"


def test_no_role_is_refused(client: Any, services: Services) -> None:
    sign_in(client, services, person(services))
    assert client.get("/admin/").status_code == 403


def test_role_enters_and_sees_only_its_sections(client: Any, services: Services) -> None:
    sign_in(client, services, person(services, Role.HELPDESK))
    resp = client.get("/admin/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'id="admin-nav"' in page and "Help desk" in page


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
def test_a_view_without_roles_is_refused(services: Services) -> None:
    from iam.app import create_app

    with pytest.raises(ValueError, match="at least one role"):
        require_admin()
    with pytest.raises(ValueError, match="declares no role"):
        AdminPage("x.y", "Y", Section.PEOPLE, roles=frozenset())

    app = create_app(services=services)
    bp = Blueprint("stray", __name__, url_prefix="/admin/stray")

    @bp.get("/")
    def stray() -> str:  # forgot @require_admin
        return "open"

    app.register_blueprint(bp)
    register_admin_page(app, AdminPage("stray.stray", "Stray", Section.PEOPLE, roles={Role.HELPDESK}))
    client = app.test_client()
    sign_in(client, services, person(services, Role.HELPDESK))
    assert client.get("/admin/stray/").status_code == 403
    page = client.get("/admin/").get_data(as_text=True)
    assert "Stray" not in page  # a link never leads to a refusal


@pytest.mark.parametrize("services", ["sqlite"], indirect=True)
def test_demo_puts_a_person_in_every_role(services: Services) -> None:
    from iam import demo
    from iam.admin import roles_of

    info = demo.seed(services, password="Demo-password-1")
    settings = services.settings.model_copy(
        update={"pim": services.settings.pim.model_copy(update={"security_officers": ["bob"]})}
    )
    for role, username in info["admin_roles"].items():
        user = services.directory.find_user(username=username)
        assert user is not None
        assert Role(role) in roles_of(settings, username, services.directory.user_groups(user.id)), role
    assert "/admin/" in info["message"]


def test_only_local_paths_are_returned_to() -> None:
    from sso.views.common import local_path

    assert local_path("/admin/people?q=x") == "/admin/people?q=x"
    for bad in ("//evil.example/", "/\\evil.example", "/\t/evil.example", "https://evil.example/", "", None):
        assert local_path(bad) is None, bad
