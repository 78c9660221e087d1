"""``iam policy test`` and ``iam policy show``: explain a password without changing it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from iam.cli import cli
from iam.config import load_settings
from iam.migrate import upgrade
from iam.passwords.cli import register
from iam.passwords.service import record_password_set
from iam.services import Services

register(cli)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for name in list(os.environ):
        if name.startswith("IAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IAM_DEV_MODE", "true")
    monkeypatch.setenv("IAM_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("IAM_DATABASE__URL", f"sqlite:///{tmp_path}/iam.db")
    services = Services(load_settings())
    upgrade(services.engine)

    def invoke(*args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), input=input, prog_name="iam")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    invoke.services = services  # type: ignore[attr-defined]
    yield invoke
    services.dispose()


def test_policy_test_json_lists_every_violation(run) -> None:  # type: ignore[no-untyped-def]
    result = run("policy", "test", "--profile", "pabianice", "--json", input="password\n")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [v["rule"] for v in data["violations"]] == ["character_classes", "common_password"]
    assert all(set(v) == {"rule", "message"} for v in data["violations"])


def test_policy_test_ok(run) -> None:  # type: ignore[no-untyped-def]
    result = run("policy", "test", "--profile", "cacak", "--json", input="Sunce-nad-Moravom7\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "violations": []}
    result = run("policy", "test", input="correct horse battery staple\n")  # default profile
    assert result.exit_code == 0
    assert "satisfies the default profile" in result.stdout


def test_policy_test_with_username_checks_identity_and_history(run) -> None:  # type: ignore[no-untyped-def]
    added = run(
        "user",
        "add",
        "jnovak",
        "--given-name",
        "Jovana",
        "--family-name",
        "Novaković",
        input="Xq7!first-Pass\n",
    )
    assert added.exit_code == 0, added.output
    user = run.services.directory.find_user(username="jnovak")
    with run.services.transaction() as session:
        record_password_set(session, user.id, "Reused-Pass-1!", by_admin=False, actor="test")
    result = run(
        "policy",
        "test",
        "--profile",
        "strictest",
        "--username",
        "jnovak",
        "--json",
        input="Novakovic-2025!\n",
    )
    assert [v["rule"] for v in json.loads(result.stdout)["violations"]] == ["personal_data"]
    result = run(
        "policy", "test", "--profile", "strictest", "--username", "jnovak", "--json", input="Reused-Pass-1!\n"
    )
    assert [v["rule"] for v in json.loads(result.stdout)["violations"]] == ["history"]
    result = run("policy", "test", "--username", "nobody", input="whatever\n")
    assert result.exit_code == 1
    assert "There is no user 'nobody'" in result.stderr


def test_policy_test_human_output(run) -> None:  # type: ignore[no-untyped-def]
    result = run("policy", "test", "--profile", "cacak", input="abc\n")
    assert result.exit_code == 1
    assert "breaks 2 rule(s) of the cacak profile" in result.stdout
    assert "[min_length]" in result.stdout


def test_policy_show_and_overrides(run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(run("policy", "show", "--profile", "cacak", "--json").stdout)
    assert data["history_days"] == 365 and "CACAK Član 20" in data["sources"]
    monkeypatch.setenv("IAM_PASSWORDS__PROFILE", "pabianice")
    monkeypatch.setenv("IAM_PASSWORDS__OVERRIDES", '{"history_count": 12}')
    data = json.loads(run("policy", "show", "--json").stdout)
    assert (data["name"], data["history_count"]) == ("pabianice", 12)
    assert "max_age_days = 30" in run("policy", "show").stdout
    monkeypatch.setenv("IAM_PASSWORDS__OVERRIDES", '{"history_count": "many"}')
    result = run("policy", "show")
    assert result.exit_code == 1
    assert "passwords.overrides.history_count" in result.stderr


def test_policy_check_on_the_builtin_directory(run) -> None:  # type: ignore[no-untyped-def]
    result = run("policy", "check")
    assert result.exit_code == 0
    assert "no password policy of its own" in result.stdout
    data = json.loads(run("policy", "check", "--json").stdout)
    assert data == {"ok": True, "profile": "default", "directory": "local", "policies": []}
