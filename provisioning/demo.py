"""``iam demo`` for HR: ``hana`` operates the HR pages, an HR system client (``demo-hr``) may
deliver events to the API, and a few events show joiners (applied at once), a mover (tomorrow)
and a leaver (in a month)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from iam import clock
from iam.crypto import token_hash
from iam.errors import Conflict
from provisioning.service import events as event_service
from provisioning.service.schemas import parse_event
from sso import clients as client_service
from sso.models import AuthMethod, Client

if TYPE_CHECKING:
    from iam.services import Services

OPERATOR = "hana"
HR_CLIENT_ID = "demo-hr"
SECRET_FILE = "demo-hr-client-secret.txt"  # noqa: S105 — a file name


def _events(today: dt.date, zone: ZoneInfo) -> list[dict[str, Any]]:
    def midnight(days: int) -> str:
        return dt.datetime.combine(today + dt.timedelta(days=days), dt.time(), zone).isoformat()

    def person(number: str, given: str, family: str, department: str, title: str) -> dict[str, Any]:
        return {
            "employee_number": number,
            "given_name": given,
            "family_name": family,
            "department": department,
            "title": title,
            "engagement": "civil_servant",
            "start_date": today.isoformat(),
            "personal_data": "full",
            "personal_data_scope": "citizens' records",
            "decision_number": f"DEMO-{number}",
        }

    return [
        {
            "idempotency_key": "demo-joiner-D1001",
            "kind": "joiner",
            "person": person("D1001", "Milica", "Petrović", "Finance", "Accountant"),
        },
        {
            "idempotency_key": "demo-joiner-D1002",
            "kind": "joiner",
            "person": person("D1002", "Đorđe", "Jovanović", "IT", "System administrator"),
        },
        {
            "idempotency_key": "demo-mover-D1001",
            "kind": "mover",
            "effective_at": midnight(1),
            "person": {"employee_number": "D1001", "title": "Head of Accounting"},
        },
        {
            "idempotency_key": "demo-leaver-D1002",
            "kind": "leaver",
            "effective_at": midnight(30),
            "person": {"employee_number": "D1002", "end_date": (today + dt.timedelta(days=29)).isoformat()},
        },
    ]


def _hr_client(services: Services) -> str:
    """The HR system's client (client credentials, scope ``hr``); its secret is kept in var/ so
    that running the demo again keeps it working."""
    path = services.settings.var_dir / SECRET_FILE
    known = path.read_text().strip() if path.exists() else ""
    with services.transaction() as session:
        row = session.get(Client, HR_CLIENT_ID)
        if row is None:
            spec = client_service.ClientSpec(
                name="Demo HR system",
                client_id=HR_CLIENT_ID,
                grant_types=["client_credentials"],
                scopes=["hr"],
                token_endpoint_auth_method=AuthMethod.CLIENT_SECRET_BASIC,
            )
            _, secret = client_service.create_client(
                session, services.cipher, spec, actor="demo", allow_http=True
            )
            assert secret is not None
        elif known and client_service.check_secret(row, known):
            return known
        else:  # the file was deleted: a new secret (dev mode only)
            secret = secrets.token_urlsafe(32)
            row.secret_hash = token_hash(secret)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def seed(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    settings = services.settings
    directory = services.directory
    group = settings.provisioning.operators_group
    operator = directory.find_user(username=OPERATOR)
    if operator is None:
        return {"hr": {}, "lines": []}
    if directory.get_group(group) is None:
        directory.create_group(group)
    directory.add_member(group, operator.id)
    # access reviews: admin is a security officer too (with bob, named in pim.security_officers
    # by make run), so each officer's own access has someone else to review it
    officers = settings.reviews.security_officer_group
    admin = directory.find_user(username="admin")
    if officers and admin is not None:
        if directory.get_group(officers) is None:
            directory.create_group(officers)
        if officers.casefold() not in {g.casefold() for g in directory.user_groups(admin.id)}:
            directory.add_member(officers, admin.id)
    _hr_client(services)
    zone = ZoneInfo(settings.provisioning.timezone)
    today = clock.now().astimezone(zone).date()
    accepted = []
    with services.transaction() as session:
        for item in _events(today, zone):
            try:
                with session.begin_nested():
                    result = event_service.accept(
                        session,
                        parse_event(item),
                        source="demo",
                        actor="demo",
                        settings=settings.provisioning,
                    )
            except Conflict:
                continue  # seeded on an earlier day: the same key with other dates
            if not result.duplicate:
                accepted.append(item["idempotency_key"])
    issuer = settings.issuer
    secret_path = settings.var_dir / SECRET_FILE
    data = {"operator": OPERATOR, "operators_group": group, "client_id": HR_CLIENT_ID, "events": accepted}
    lines = [
        f"  Reviews   everyone's access to review at {issuer}/reviews/ ; security officers (admin, and "
        f"those in pim.security_officers) start a campaign at {issuer}/reviews/campaigns",
        f"  HR        {OPERATOR} operates HR at {issuer}/hr/events (group {group}); the worker applies "
        "the demo events (2 joiners now, a mover tomorrow, a leaver in a month)",
        "            initial passwords of the joiners: iam hr envelopes --out var/envelopes.pdf",
        f"  HR API    client {HR_CLIENT_ID}, secret in {secret_path}: "
        f'curl -u {HR_CLIENT_ID}:"$(cat {secret_path})" -d grant_type=client_credentials -d scope=hr '
        f"-d resource={services.settings.api_resource} {issuer}/token ; "
        f"then POST events to {issuer}/api/v1/hr/events (see {issuer}/api/v1/openapi.json)",
    ]
    return {"hr": data, "lines": lines}
