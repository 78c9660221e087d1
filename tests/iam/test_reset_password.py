"""Administrator reset (R-PW-4; PABIANICE §19–§22): random, satisfies the profile, shown once,
changed at first sign-in, recorded."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam.directory.errors import MustChangePassword
from iam.models.audit import AuditEvent
from iam.passwords import service as passwords
from iam.users import add_user, reset_password


def test_reset_password_is_temporary_valid_and_audited(services):
    add_user(services, username="dana", password="Dana-initial-pass-1", actor="test")
    temporary, must_change = reset_password(services, username="dana", actor="admin")
    assert must_change
    assert passwords.check(services.password_profile, temporary) == []
    with pytest.raises(MustChangePassword):
        services.directory.authenticate("dana", temporary)
    with services.transaction() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "password.reset")).one()
    assert ev.actor == "admin" and ev.details["by_admin"] is True
    assert temporary not in json.dumps(ev.details)
    second, _ = reset_password(services, username="dana", actor="admin")
    assert second != temporary


def test_cli_reset_password(sqlite_services, monkeypatch, tmp_path):
    from iam import cli as cli_mod

    add_user(sqlite_services, username="erik", password="Erik-initial-pass-1", actor="test")
    monkeypatch.setattr(cli_mod.Ctx, "services", property(lambda self: sqlite_services))
    result = CliRunner().invoke(cli_mod.cli, ["user", "reset-password", "erik", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["must_change"] is True and len(data["temporary_password"]) >= 12
    missing = CliRunner().invoke(cli_mod.cli, ["user", "reset-password", "nobody"])
    assert missing.exit_code == 1 and "There is no user 'nobody'." in missing.output
