"""``iam pim …`` in-process, and role files: validation at start, file vs database precedence."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from iam import clock
from iam.app import create_app
from iam.cli import Ctx, cli
from iam.errors import ConfigError
from iam.services import Services
from pim import roles as pim_roles
from pim import service
from pim.models import State
from tests.pim.conftest import ROLES, Env, use_pim_settings, write_roles

if "pim" not in cli.commands:
    import pim

    pim.register(cli)


def run(services: Services, *args: str) -> Result:
    ctx = Ctx()
    ctx._settings = services.settings
    ctx._services = services
    return CliRunner().invoke(cli, list(args), obj=ctx, catch_exceptions=False)


def test_cli_life(pim_sqlite: Env) -> None:
    env = pim_sqlite
    s = env.services
    listed = run(s, "pim", "roles", "list", "--json")
    assert listed.exit_code == 0
    assert sorted(r["name"] for r in json.loads(listed.output)) == ["dba", "glass", "ops"]
    shown = run(s, "pim", "roles", "show", "ops", "--json")
    assert json.loads(shown.output)["approvers"] == ["boss", "boss2", "alice"]
    assert run(s, "pim", "roles", "show", "nope").exit_code == 1
    assert run(s, "pim", "eligible", "add", "ops", "alice").exit_code == 0
    dup = run(s, "pim", "eligible", "add", "ops", "alice")
    assert dup.exit_code == 1 and "already eligible" in dup.output
    env.run_jobs()
    req = run(s, "pim", "request", "ops", "--as", "alice", "--justification", "nightly patching", "--json")
    assert req.exit_code == 0, req.output
    rid = json.loads(req.output)["id"]
    own = run(s, "pim", "approve", rid, "--as", "alice")
    assert own.exit_code == 1 and "your own request" in own.output
    other = run(s, "pim", "approve", rid, "--as", "eve")
    assert other.exit_code == 1 and "not an approver" in other.output
    ok = run(s, "pim", "approve", rid, "--as", "boss", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["state"] == "approved"
    env.run_jobs()
    status = json.loads(run(s, "pim", "status", "--json").output)
    assert [r["id"] for r in status["active"]] == [rid] and status["active"][0]["state"] == State.ACTIVE
    assert run(s, "pim", "revoke", rid, "--reason", "done").exit_code == 0
    env.run_jobs()
    assert json.loads(run(s, "pim", "status", "--json").output)["active"] == []

    rid2 = json.loads(
        run(s, "pim", "request", "ops", "--as", "alice", "--justification", "second round", "--json").output
    )["id"]
    assert json.loads(run(s, "pim", "deny", rid2, "--as", "boss", "--json").output)["state"] == "denied"
    rid3 = json.loads(
        run(s, "pim", "request", "ops", "--as", "alice", "--justification", "third round", "--json").output
    )["id"]
    assert run(s, "pim", "cancel", rid3).exit_code == 0
    weak = run(
        s, "pim", "request", "ops", "--as", "alice", "--justification", "weak level", "--level", "password"
    )
    assert weak.exit_code == 1 and "sign-in level 'mfa'" in weak.output

    assert run(s, "pim", "eligible", "add", "glass", "alice").exit_code == 0
    bg = run(s, "pim", "break-glass", "glass", "--as", "alice", "--justification", "ransomware now", "--json")
    assert bg.exit_code == 0 and json.loads(bg.output)["break_glass"] is True
    assert json.loads(run(s, "pim", "status", "--json").output)["reviews_due"]
    clock.advance(dt.timedelta(hours=1))
    assert "1 expired" in run(s, "pim", "sweep").output
    assert run(s, "pim", "detect", "--json").exit_code == 0
    assert run(s, "pim", "eligible", "remove", "ops", "alice").exit_code == 0


def test_invalid_role_file_stops_start(sqlite_services: Services, tmp_path: Path) -> None:
    bad = write_roles(
        tmp_path / "bad", {**ROLES, "broken": 'groups = ["G"]\napprovers = ["x"]\nmax_minutes = "lots"\n'}
    )
    saved = use_pim_settings(sqlite_services, roles_dir=bad)
    try:
        with pytest.raises(ConfigError, match=r"broken\.toml: key max_minutes"):
            create_app(services=sqlite_services)
        result = run(sqlite_services, "pim", "roles", "validate", str(bad))
        assert result.exit_code == 1 and "broken.toml" in result.output and "max_minutes" in result.output
        typo = write_roles(tmp_path / "typo", {"t": 'groups = ["G"]\napprovers = ["x"]\nmax_minuts = 5\n'})
        with pytest.raises(ConfigError, match=r"t\.toml: key max_minuts: Extra inputs"):
            pim_roles.load_dir(typo, sqlite_services.settings.pim)
        noone = write_roles(tmp_path / "noone", {"n": 'groups = ["G"]\n'})
        with pytest.raises(ConfigError, match="neither approvers nor approver_group"):
            pim_roles.load_dir(noone, sqlite_services.settings.pim)
        level = write_roles(
            tmp_path / "level", {"l": 'groups = ["G"]\napprovers = ["x"]\nmin_level = "gold"\n'}
        )
        with pytest.raises(ConfigError, match="key min_level"):
            pim_roles.load_dir(level, sqlite_services.settings.pim)
    finally:
        sqlite_services.settings.pim = saved
        sqlite_services.extensions.pop("pim.file_roles", None)


def test_shipped_role_files_are_valid(sqlite_services: Services) -> None:
    roles = pim_roles.load_dir(sqlite_services.settings.pim.roles_dir, sqlite_services.settings.pim)
    assert {"domain-admins", "server-operators", "break-glass"} <= set(roles)
    assert roles["break-glass"].break_glass and roles["break-glass"].min_level == "smartcard"


def test_database_role_overrides_and_disables_file_role(pim_sqlite: Env) -> None:
    env = pim_sqlite
    with env.tx() as s:
        service.put_role(
            s,
            env.services,
            actor=env.actor("sec"),
            name="ops",
            definition={"groups": ["Ops Admins"], "approvers": ["boss"], "enabled": False},
        )
        service.put_role(
            s,
            env.services,
            actor=env.actor("sec"),
            name="new-role",
            definition={"groups": ["X"], "approval": False},
        )
    with env.tx() as s:
        names = set(pim_roles.all_roles(s, env.services))
        assert "ops" not in names and "new-role" in names
        assert pim_roles.source(s, env.services, "ops") == "database"
        with pytest.raises(Exception, match="Invalid role"):
            service.put_role(s, env.services, actor=env.actor("sec"), name="bad", definition={"groups": []})


def test_assurance_levels() -> None:
    from pim import assurance

    levels = ["password", "mfa", "smartcard"]
    assert assurance.achieved_level("mfa", ["pwd", "otp", "mfa"], levels) == "mfa"  # the session's acr
    assert assurance.achieved_level("urn:other", ["pwd", "otp"], levels) == "mfa"  # else from amr
    assert assurance.achieved_level(None, ["sc"], levels) == "smartcard"
    assert assurance.achieved_level(None, ["pwd"], levels) == "password"
    assert assurance.achieved_level(None, ["otp"], levels) == "password"  # a code alone is not mfa
    assert assurance.meets("smartcard", "mfa", levels) and not assurance.meets("password", "mfa", levels)
    assert not assurance.meets("gold", "password", levels)
    assert assurance.strongest("password", "smartcard", "mfa", levels=levels) == "smartcard"


def test_pim_levels_must_match_the_mfa_levels_when_defined() -> None:
    from types import SimpleNamespace

    from iam.config import PimSettings
    from pim import check_levels

    def svc(names: list[str]) -> object:
        mfa = SimpleNamespace(levels=[SimpleNamespace(name=n) for n in names])
        return SimpleNamespace(settings=SimpleNamespace(mfa=mfa, pim=PimSettings()))

    check_levels(svc(["password", "mfa", "smartcard"]))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must equal the names of mfa.levels"):
        check_levels(svc(["password", "smartcard", "mfa"]))  # type: ignore[arg-type]


def test_cli_changes_print_json_and_unknown_names_fail(pim_sqlite: Env) -> None:
    """Issue 10 item 19: `pim eligible …`, `pim cancel|revoke|sweep`, `pim shared …` accept
    --json; an unknown name is one sentence on stderr with exit code 1."""
    env = pim_sqlite
    s = env.services

    def data(*args: str) -> dict[str, object]:
        result = run(s, *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def refused(*args: str) -> str:
        result = run(s, *args)
        assert result.exit_code == 1, result.output
        [line] = result.stderr.splitlines()
        return line

    assert data("pim", "eligible", "add", "ops", "alice") == {
        "role": "ops",
        "username": "alice",
        "permanent": False,
        "eligible": True,
    }
    assert refused("pim", "eligible", "add", "nope", "alice") == "Error: There is no such privileged role."
    assert refused("pim", "roles", "show", "nope") == "Error: There is no privileged role 'nope'."
    env.run_jobs()
    rid = data("pim", "request", "ops", "--as", "alice", "--justification", "nightly patching")["id"]
    assert data("pim", "cancel", str(rid))["state"] == "cancelled"
    assert refused("pim", "cancel", "no-such-request").startswith("Error: ")
    rid = data("pim", "request", "ops", "--as", "alice", "--justification", "patching again")["id"]
    data("pim", "approve", str(rid), "--as", "boss")
    env.run_jobs()
    assert data("pim", "revoke", str(rid), "--reason", "done")["id"] == rid
    assert data("pim", "sweep") == {"expired": 0, "failed": 0, "lapsed": 0}
    assert data("pim", "eligible", "remove", "ops", "alice") == {
        "role": "ops",
        "username": "alice",
        "eligible": False,
    }
    assert refused("pim", "eligible", "remove", "ops", "alice") == (
        "Error: This person is not eligible for this role."
    )
    assert data("pim", "shared", "add", "boss2", "--role", "ops") == {
        "username": "boss2",
        "roles": ["ops"],
        "rotation_queued": True,
    }
    assert data("pim", "shared", "rotate", "boss2") == {"username": "boss2", "rotation_queued": True}
    assert refused("pim", "shared", "rotate", "nosuch") == "Error: There is no shared account 'nosuch'."
    assert sorted(data("pim", "roles", "validate")["roles"]) == ["dba", "glass", "ops"]  # type: ignore[arg-type]
