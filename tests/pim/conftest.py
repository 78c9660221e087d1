"""PIM fixtures: a roles folder, people in the built-in directory, actors, running the worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import pim.jobs  # noqa: F401 — registers the handlers
from iam import jobs
from iam.config import PimSettings
from iam.directory.base import DirectoryUser
from iam.identities import upsert_identity
from iam.services import Services
from pim.service import Actor
from tests.sso.helpers import PASSWORD, make_user

ROLES = {
    "ops": """
title = "Operations admins"
groups = ["Ops Admins"]
max_minutes = 120
default_minutes = 30
approvers = ["boss", "boss2", "alice"]
justification_required = true
min_level = "mfa"
notify = ["ops-notify@example.test"]
pending_minutes = 60
""",
    "dba": """
groups = ["DB Admins", "Ops Admins"]
max_minutes = 60
default_minutes = 15
approver_group = "DB Approvers"
approvals_required = 2
justification_required = false
ticket_required = true
ticket_pattern = '^INC-[0-9]+$'
""",
    "glass": """
groups = ["Ops Admins"]
break_glass = true
approval = false
max_minutes = 30
default_minutes = 30
min_level = "smartcard"
""",
}


@dataclass
class Env:
    services: Services
    users: dict[str, DirectoryUser] = field(default_factory=dict)

    def actor(self, name: str, level: str = "mfa") -> Actor:
        u = self.users[name]
        return Actor(sub=u.id, username=u.username, level=level, ip="192.0.2.1")

    def run_jobs(self, rounds: int = 10) -> int:
        total = 0
        for _ in range(rounds):
            ran = jobs.run_due(self.services)
            total += ran
            if not ran:
                break
        return total

    def tx(self) -> Any:
        return self.services.transaction()


def write_roles(folder: Path, roles: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in roles.items():
        (folder / f"{name}.toml").write_text(text)
    return folder


def use_pim_settings(services: Services, **kw: Any) -> PimSettings:
    saved = services.settings.pim
    services.settings.pim = PimSettings(**kw)
    services.extensions.pop("pim.file_roles", None)
    return saved


@pytest.fixture
def pim(services: Services, tmp_path: Path) -> Iterator[Env]:
    """PIM on the built-in directory, on each storage backend."""
    yield from _env(services, tmp_path)


@pytest.fixture
def pim_sqlite(sqlite_services: Services, tmp_path: Path) -> Iterator[Env]:
    yield from _env(sqlite_services, tmp_path)


def _env(services: Services, tmp_path: Path) -> Iterator[Env]:
    saved = use_pim_settings(
        services, roles_dir=write_roles(tmp_path / "roles", ROLES), security_officers=["sec"]
    )
    env = Env(services)
    d = services.directory
    for g in ("Ops Admins", "DB Admins", "DB Approvers"):
        if d.get_group(g) is None:
            d.create_group(g)
    for name, groups in (
        ("alice", []),
        ("boss", []),
        ("boss2", []),
        ("sec", []),
        ("eve", []),
        ("dbx", ["DB Approvers"]),
        ("dby", ["DB Approvers"]),
    ):
        env.users[name] = make_user(services, name, groups=groups)
    with services.transaction() as s:
        for u in env.users.values():
            upsert_identity(s, u, kind=d.kind)
    try:
        yield env
    finally:
        services.settings.pim = saved
        services.extensions.pop("pim.file_roles", None)


__all__ = ["PASSWORD", "Env", "use_pim_settings", "write_roles"]
