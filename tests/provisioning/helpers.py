"""Set-up shared by the access requests' and access reviews' API, CLI and browser tests: the
Registry's people in HR, access tokens for the two APIs, and the command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from iam import clock
from iam.cli import Ctx, cli
from iam.directory.base import DirectoryUser
from iam.models.identity import Identity
from iam.services import Services
from provisioning.models import HrPerson, PersonStatus
from tests.sso.helpers import (
    API_RESOURCE,
    PASSWORD,
    exchange,
    make_client,
    make_user,
    service_token,
    sign_in_and_get_code,
)


def add_staff(session: Session, staff: Iterable[tuple[str, str, str, str | None]], **fields: Any) -> None:
    """Active staff in HR: ``(employee number, username, sub, manager's employee number)`` each;
    FIELDS replace the defaults (given name = username, family name, department, title)."""
    for number, username, sub, manager in staff:
        row: dict[str, Any] = {
            "given_name": username,
            "family_name": "T",
            "department": "Registry",
            "title": "Clerk",
            "engagement": "staff",
            "start_date": clock.now().date(),
            "status": PersonStatus.ACTIVE,
            "groups": [],
            **fields,
        }
        session.add(HrPerson(employee_number=number, manager=manager, username=username, sub=sub, **row))


def registry_people(
    services: Services, monkeypatch: pytest.MonkeyPatch, **settings: dict[str, Any]
) -> dict[str, DirectoryUser]:
    """mara, who manages ivo in the Registry (both in HR, all with an identity), and sec, a
    security officer of access reviews. SETTINGS change more sections of the settings
    (``requests={"country": "PL"}``)."""
    users = {n: make_user(services, n) for n in ("mara", "ivo", "sec")}
    s = services.settings
    sections = {"reviews": {"security_officers": ["sec"]}, **settings}
    monkeypatch.setattr(
        services,
        "settings",
        s.model_copy(update={k: getattr(s, k).model_copy(update=v) for k, v in sections.items()}),
    )
    with services.transaction() as session:
        add_staff(session, [("10", "mara", users["mara"].id, None), ("11", "ivo", users["ivo"].id, "10")])
        for name, user in users.items():
            if session.get(Identity, user.id) is None:
                session.add(
                    Identity(sub=user.id, directory="local", username=name, last_login_at=clock.now())
                )
    return users


def person_token(services: Services, client: Any, username: str, scope: str) -> str:
    """An access token for the API of SCOPE (``requests``, ``reviews``) acting as USERNAME."""
    cid, secret = make_client(services, scopes=["openid", scope], name=f"{scope.capitalize()} app {username}")
    query, flow = sign_in_and_get_code(client, cid, username, PASSWORD, scope=f"openid {scope}")
    resp = exchange(client, query["code"], flow, secret, resource=API_RESOURCE)
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["access_token"])


def client_token(services: Services, client: Any, scope: str) -> str:
    """An access token for the API of SCOPE held by a registered client (automation)."""
    return service_token(services, client, scope, name="Governance")


def run(services: Services, *args: str, input: str | None = None) -> Any:
    """``iam ARGS…`` with these services."""
    ctx = Ctx()
    ctx._services = services
    return CliRunner().invoke(cli, list(args), obj=ctx, input=input)


#: The languages the mail tests speak: the default first.
MAIL_LANGUAGES = ["en", "pl", "ro", "vi", "sr-Latn"]


def send_mail_to(services: Services, sink: Any, monkeypatch: pytest.MonkeyPatch, **update: Any) -> None:
    """Mails to the SMTP ``sink`` (tests/smtp.py), pages and mails in :data:`MAIL_LANGUAGES`;
    UPDATE replaces more settings sections (for this test only)."""
    from iam.config import MailSettings

    mail = MailSettings(host="127.0.0.1", port=sink.server_address[1], sender="iam@idp.test")
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(update={"languages": MAIL_LANGUAGES, "mail": mail, **update}),
    )


def speak(services: Services, language: str | None, *subs: str) -> None:
    """Save ``language`` as the choice of the people ``subs`` (None: no choice saved)."""
    with services.transaction() as session:
        for sub in subs:
            row = session.get(Identity, sub)
            assert row is not None
            row.language = language
