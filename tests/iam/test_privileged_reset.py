"""The help desk cannot take over privileged accounts (issue 11 item 3), on the real Samba AD DC.

A member of an AD protected group — here through a nested group inside ``Print Operators`` —
is refused by ``POST /api/v1/users/{u}/password-reset`` (scope ``users:write``) and by
``iam user reset-password``: 403 / exit 1 with a clear sentence, a critical audit event that
survives the refusal, and the password unchanged in AD. An ordinary account in the same OU is
still reset (the control)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ldap3 import MODIFY_ADD, MODIFY_DELETE
from sqlalchemy import select

import sso
from iam.app import create_app
from iam.cli import cli
from iam.config import DirectorySettings
from iam.directory import InvalidCredentials, NewUser
from iam.directory.base import DirectoryUser
from iam.migrate import upgrade
from iam.models.audit import AuditEvent
from iam.services import Services
from tests.conftest import make_settings
from tests.samba import BASE_DN, SambaDC
from tests.sso.helpers import service_token

pytestmark = [pytest.mark.samba]

PASSWORD = "Start-Passw0rd-1!"
PRINT_OPERATORS = f"CN=Print Operators,CN=Builtin,{BASE_DN}"


@pytest.fixture
def ad_services(tmp_path: Path, samba_ad: DirectorySettings, ad_ou: str) -> Iterator[Services]:
    directory = samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou})
    svc = Services(make_settings(tmp_path, f"sqlite:///{tmp_path}/iam.db", directory=directory))
    upgrade(svc.engine)
    sso.on_upgrade(svc)
    yield svc
    if "directory" in svc.__dict__:
        svc.directory.close()  # type: ignore[attr-defined]
    svc.dispose()


def _user(svc: Services) -> DirectoryUser:
    d = svc.directory
    user = d.create_user(NewUser(username=f"u{secrets.token_hex(4)}", given_name="Vesna", family_name="Ilić"))
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    return user


@pytest.fixture
def print_operator(ad_services: Services, samba_dc: SambaDC) -> Iterator[DirectoryUser]:
    """A user in a group of the test's OU that is itself a member of Print Operators."""
    user = _user(ad_services)
    group = ad_services.directory.create_group(f"g{secrets.token_hex(4)}")
    ad_services.directory.add_member(group.name, user.id)
    samba_dc.modify(PRINT_OPERATORS, {"member": [(MODIFY_ADD, [group.dn])]})
    try:
        yield user
    finally:
        samba_dc.modify(PRINT_OPERATORS, {"member": [(MODIFY_DELETE, [group.dn])]})


def _refusals(svc: Services, sub: str) -> list[AuditEvent]:
    with svc.transaction() as s:
        return list(
            s.scalars(
                select(AuditEvent).where(
                    AuditEvent.event == "password.reset_refused", AuditEvent.subject == sub
                )
            )
        )


def _token(app: Any, svc: Services) -> str:
    return service_token(svc, app.test_client(), "users:write")


def test_api_refuses_a_member_of_a_nested_protected_group(
    ad_services: Services, print_operator: DirectoryUser
) -> None:
    app = create_app(services=ad_services)
    app.config.update(TESTING=True)
    bearer = {"Authorization": f"Bearer {_token(app, ad_services)}"}
    assert "Print Operators" in ad_services.directory.user_groups(print_operator.id)  # nested, really

    resp = app.test_client().post(
        f"/api/v1/users/{print_operator.username}/password-reset", json={"reason": "INC-1"}, headers=bearer
    )
    assert resp.status_code == 403
    assert resp.get_json() == {
        "error": "access_denied",
        "error_description": f"{print_operator.username} is a privileged account (member of the protected group "
        "Print Operators): the help desk cannot reset it; its password is changed only by PIM's rotation.",
    }
    [event] = _refusals(ad_services, print_operator.id)
    assert (event.severity, event.outcome) == ("critical", "failure")
    assert event.details["reason"] == "INC-1"
    assert ad_services.directory.authenticate(print_operator.username, PASSWORD).id == print_operator.id

    ordinary = _user(ad_services)  # the control: the same tool resets an ordinary account
    ok = app.test_client().post(f"/api/v1/users/{ordinary.username}/password-reset", json={}, headers=bearer)
    assert ok.status_code == 200, ok.get_json()
    with pytest.raises(InvalidCredentials):
        ad_services.directory.authenticate(ordinary.username, PASSWORD)


def test_cli_refuses_a_member_of_a_nested_protected_group(
    ad_services: Services, print_operator: DirectoryUser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = ad_services.settings
    monkeypatch.setenv("IAM_DEV_MODE", "true")
    monkeypatch.setenv("IAM_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("IAM_ISSUER", settings.issuer)
    monkeypatch.setenv("IAM_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("IAM_ENCRYPTION_KEY", settings.encryption_key.get_secret_value())
    monkeypatch.setenv("IAM_DATABASE__URL", settings.database.url)
    d = settings.directory
    for key, value in {
        "KIND": "ad",
        "URL": d.url,
        "BIND_DN": d.bind_dn,
        "BIND_PASSWORD": d.bind_password.get_secret_value(),
        "BASE_DN": d.base_dn,
        "CA_FILE": d.ca_file,
        "USERS_OU": d.users_ou,
        "GROUPS_OU": d.groups_ou,
    }.items():
        monkeypatch.setenv(f"IAM_DIRECTORY__{key}", value)
    result = CliRunner().invoke(cli, ["user", "reset-password", print_operator.username], prog_name="iam")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {print_operator.username} is a privileged account (member of the protected group Print "
        "Operators): the help desk cannot reset it; its password is changed only by PIM's rotation."
    )
    assert len(_refusals(ad_services, print_operator.id)) == 1
    assert ad_services.directory.authenticate(print_operator.username, PASSWORD).id == print_operator.id


def test_reset_tries_another_password_when_ad_refuses_the_first(
    ad_services: Services, unlucky_password: list[str]
) -> None:
    """AD refuses a password its own rule finds too simple (CI of stop 25: a random one with
    two character classes); the set changed nothing, so the reset tries another at once
    instead of answering 500."""
    from iam import users

    user = _user(ad_services)
    made = unlucky_password
    temporary, _ = users.reset_password(ad_services, username=user.username, actor="test")
    assert temporary == made[1] and len(made) == 2
    with pytest.raises(InvalidCredentials):
        ad_services.directory.authenticate(user.username, PASSWORD)
