"""The ``iam`` command, driven in-process with click's CliRunner against a temporary SQLite
site (dev mode unless a test says otherwise)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from sqlalchemy import select, text, update

import sso
from iam import clock, jobs, passwords
from iam.app import load_features
from iam.cli import cli, main
from iam.config import load_settings
from iam.crypto import token_hash
from iam.directory.errors import AccountDisabled
from iam.migrate import upgrade
from iam.models.audit import AuditEvent
from iam.models.identity import Identity
from iam.models.jobs import Job, JobStatus
from iam.services import Services
from sso import keys as sso_keys
from sso import service as sso_service
from sso.models import Client, RefreshToken, SigningKey, SsoSession
from tests.sso.helpers import make_client

PASSWORD = "Pass-word-123"
SECRET = "p" * 40
ENC_KEY = "Ck1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM="


def _register_features() -> None:
    """What ``iam.cli.main`` does before running the group."""
    for feature in load_features():
        register = getattr(feature, "register", None)
        if register:
            register(cli)


_register_features()


def _paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [prefix]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _paths(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


COMMANDS = _paths(cli)


# -- the site ---------------------------------------------------------------------------------
class Site:
    """One temporary installation: environment, runner and an inspecting Services."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.runner = CliRunner()
        self._services: Services | None = None
        for name in list(os.environ):
            if name.startswith("IAM_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("IAM_DEV_MODE", "true")
        monkeypatch.setenv("IAM_ISSUER", "http://localhost:5000")
        monkeypatch.setenv("IAM_VAR_DIR", str(root))
        monkeypatch.setenv("IAM_DATABASE__URL", f"sqlite:///{root}/iam.db")

    def production(self) -> None:
        self.monkeypatch.setenv("IAM_DEV_MODE", "false")
        self.monkeypatch.setenv("IAM_ISSUER", "https://sso.example.test")
        self.monkeypatch.setenv("IAM_SECRET_KEY", SECRET)
        self.monkeypatch.setenv("IAM_ENCRYPTION_KEY", ENC_KEY)

    def run(self, *args: str, input: str | None = None) -> Result:
        result = self.runner.invoke(cli, list(args), input=input, prog_name="iam")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback is never an acceptable answer
        return result

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def json_in(self, *args: str, input: str) -> Any:
        return json.loads(self.ok(*args, "--json", input=input).stdout)

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = Services(load_settings())
        return self._services

    def close(self) -> None:
        if self._services is not None:
            self._services.dispose()


def one_sentence_error(result: Result, code: int = 1) -> str:
    """Non-zero exit, exactly one line on stderr, no traceback; returns the sentence."""
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0].removeprefix("Error: ")


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small parameters: same code paths, a fraction of the time."""
    monkeypatch.setattr(
        passwords.hashing, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An upgraded site (as after ``iam db upgrade``), copied for each test."""
    root = tmp_path_factory.mktemp("cli-template")
    settings = load_settings(
        dev_mode=True,
        issuer="http://localhost:5000",
        var_dir=root,
        database={"url": f"sqlite:///{root}/iam.db"},
    )
    services = Services(settings)
    upgrade(services.engine)
    sso.on_upgrade(services)
    services.dispose()
    return root


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An empty site: no database yet."""
    monkeypatch.chdir(tmp_path)
    site = Site(tmp_path / "site", monkeypatch)
    yield site
    site.close()


@pytest.fixture
def site(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "site"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    s = Site(root, monkeypatch)
    yield s
    s.close()


# -- help and entry point ---------------------------------------------------------------------
@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "iam" for p in COMMANDS])
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="iam")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: iam {' '.join(path)}".rstrip())
    assert result.exception is None


LONG_RUNNING = {("serve",)}
"""Processes that run until stopped: nothing to print as JSON."""


def _leaves() -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for path in COMMANDS:
        cmd: click.Command = cli
        for name in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        if not isinstance(cmd, click.Group):
            out.append((path, cmd))
    return out


def test_every_command_accepts_json_and_json_has_one_spelling() -> None:
    """Issue 10 item 19: every command (above all every one that changes something: keys rotate,
    jobs retry, pim cancel/revoke/sweep, pim eligible, pim shared, user disable/enable/unlock, hr
    replay, ca reload/remove, …) accepts ``--json``; JSON is never asked for as ``--format json``."""
    leaves = _leaves()
    assert len(leaves) > 50  # the features are registered too
    missing, other_spelling = [], []
    for path, cmd in leaves:
        options = [p for p in cmd.params if isinstance(p, click.Option)]
        flags = {name for p in options for name in p.opts}
        if path not in LONG_RUNNING and "--json" not in flags:
            missing.append(" ".join(path))
        json_flag = [p for p in options if "--json" in p.opts]
        if json_flag and not (json_flag[0].is_flag and json_flag[0].name == "as_json"):
            other_spelling.append(" ".join(path))
        for p in options:
            choices = getattr(p.type, "choices", ())
            if any(str(c).lower() == "json" for c in choices):
                other_spelling.append(f"{' '.join(path)} {p.opts[0]}")
    assert missing == []
    assert other_spelling == []


def test_every_command_and_option_is_explained_in_help() -> None:
    """--help describes every command and every option for an administrator new to it."""
    undocumented = []
    for path, cmd in _leaves():
        if not (cmd.help or "").strip():
            undocumented.append(" ".join(path))
        for p in cmd.params:
            if isinstance(p, click.Option) and not (p.help or "").strip():
                undocumented.append(f"{' '.join(path)} {p.opts[0]}")
    assert undocumented == []


def test_commands_of_core_and_features_are_registered() -> None:
    names = {" ".join(p) for p in COMMANDS}
    for expected in (
        "db upgrade",
        "serve",
        "worker",
        "user add",
        "user disable",
        "user enable",
        "audit verify",
        "audit list",
        "jobs list",
        "jobs retry",
        "client add",
        "client list",
        "client show",
        "client disable",
        "client enable",
        "client remove",
        "keys list",
        "keys rotate",
        "demo",
    ):
        assert expected in names


def test_main_entry_point(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``iam`` (iam.cli:main) registers the features and runs the group."""
    monkeypatch.setattr(sys, "argv", ["iam", "--help"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in ("client", "keys", "demo", "audit", "jobs", "user", "db"):
        assert f"  {name} " in out


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"], prog_name="iam")
    assert result.exit_code == 0
    assert "version" in result.stdout


# -- db ---------------------------------------------------------------------------------------
def test_db_upgrade_creates_schema_and_keys(fresh: Site) -> None:
    result = fresh.ok("db", "upgrade")
    assert result.stdout.startswith("Database is up to date (sqlite:///")
    with fresh.services.transaction() as s:
        keys = list(s.scalars(select(SigningKey)))
    assert sorted((k.alg, k.status) for k in keys) == [
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    ]
    fresh.ok("db", "upgrade")
    with fresh.services.transaction() as s:
        assert len(list(s.scalars(select(SigningKey)))) == 4
    assert fresh.ok("audit", "verify").stdout.startswith("Audit log intact")


def test_configuration_errors_are_one_sentence(site: Site, tmp_path: Path) -> None:
    site.monkeypatch.setenv("IAM_CONFIG", str(tmp_path / "missing.toml"))
    assert "does not exist" in one_sentence_error(site.run("client", "list"))
    site.monkeypatch.delenv("IAM_CONFIG")
    site.monkeypatch.setenv("IAM_DEV_MODE", "false")
    assert "IAM_SECRET_KEY" in one_sentence_error(site.run("client", "list"))


# -- clients ----------------------------------------------------------------------------------
def test_client_lifecycle(site: Site) -> None:
    added = site.json(
        "client", "add", "--name", "Payroll", "--redirect-uri", "https://payroll.example.test/cb"
    )
    client_id, secret = added["client_id"], added["client_secret"]
    assert client_id and len(secret) >= 32
    assert added["token_endpoint_auth_method"] == "client_secret_basic"
    with site.services.transaction() as s:
        row = s.get(Client, client_id)
        assert row is not None
        assert row.secret_hash == token_hash(secret)  # only the hash is stored

    listed = site.json("client", "list")
    assert [c["client_id"] for c in listed] == [client_id]
    assert "client_secret" not in listed[0]

    shown = site.json("client", "show", client_id)
    assert shown["client_name"] == "Payroll"
    assert shown["redirect_uris"] == ["https://payroll.example.test/cb"]
    assert shown["disabled"] is False
    assert "client_secret" not in shown

    assert "client_name                  Payroll" in site.ok("client", "show", client_id).stdout
    assert site.json("client", "disable", client_id)["disabled"] is True
    assert site.json("client", "show", client_id)["disabled"] is True
    assert site.ok("client", "enable", client_id).stdout.strip() == f"Enabled {client_id}."
    assert site.json("client", "show", client_id)["disabled"] is False

    assert site.ok("client", "remove", client_id).stdout.strip() == f"Removed {client_id}."
    assert site.json("client", "list") == []
    assert one_sentence_error(site.run("client", "show", client_id)) == (f"There is no client {client_id!r}.")
    with site.services.transaction() as s:
        events = [
            e.event
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.client_id == client_id).order_by(AuditEvent.seq)
            )
        ]
    assert events == ["client.created", "client.disabled", "client.enabled", "client.removed"]


def test_public_client_has_no_secret(site: Site) -> None:
    added = site.json(
        "client", "add", "--name", "SPA", "--public", "--redirect-uri", "http://localhost:8080/cb"
    )
    assert "client_secret" not in added
    assert added["token_endpoint_auth_method"] == "none"
    assert added["public"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs a redirect URI"),
        (
            ["--redirect-uri", "https://a.example.test/cb", "--allowed-network", "10.0.0.0/33"],
            "'10.0.0.0/33' is not an IP address or network.",
        ),
        (
            ["--redirect-uri", "https://a.example.test/cb", "--allowed-network", "intranet"],
            "'intranet' is not an IP address or network.",
        ),
        (["--redirect-uri", "https://a.example.test/cb#frag"], "must not contain a fragment"),
        (["--redirect-uri", "/relative"], "is not an absolute http(s) URL"),
        (
            ["--redirect-uri", "https://a.example.test/cb", "--grant-type", "refresh_token"],
            "needs the authorization_code grant",
        ),
        (["--public", "--grant-type", "client_credentials"], "cannot use the client credentials grant"),
    ],
    ids=["no-redirect", "bad-cidr", "not-a-network", "fragment", "relative", "refresh-only", "public-cc"],
)
def test_client_add_refuses_bad_input(site: Site, args: list[str], message: str) -> None:
    sentence = one_sentence_error(site.run("client", "add", "--name", "Bad", *args))
    assert message in sentence
    assert site.json("client", "list") == []


def test_client_add_refuses_unknown_grant_type(site: Site) -> None:
    result = site.run(
        "client",
        "add",
        "--name",
        "Bad",
        "--redirect-uri",
        "https://a.example.test/cb",
        "--grant-type",
        "implicit",
    )
    assert result.exit_code == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "'implicit'" in error and "--grant-type" in error
    assert site.json("client", "list") == []


def test_http_redirect_uri_refused_outside_dev_mode(site: Site) -> None:
    site.production()
    sentence = one_sentence_error(
        site.run("client", "add", "--name", "Plain", "--redirect-uri", "http://app.example.test/cb")
    )
    assert sentence == "The redirect URI 'http://app.example.test/cb' must use https."
    assert site.json("client", "list") == []


def test_http_redirect_uri_allowed_in_dev_mode(site: Site) -> None:
    added = site.json("client", "add", "--name", "Dev", "--redirect-uri", "http://app.example.test/cb")
    assert added["redirect_uris"] == ["http://app.example.test/cb"]


# -- users ------------------------------------------------------------------------------------
def test_user_add_reads_password_from_stdin(site: Site) -> None:
    result = site.ok(
        "user",
        "add",
        "carol",
        "--given-name",
        "Carol",
        "--email",
        "carol@example.test",
        "--group",
        "staff",
        "--json",
        input=PASSWORD + "\n",
    )
    assert PASSWORD not in result.output
    data = json.loads(result.stdout)
    assert (data["username"], data["groups"]) == ("carol", ["staff"])
    directory = site.services.directory
    user = directory.authenticate("carol", PASSWORD)
    assert user.id == data["id"] and user.email == "carol@example.test"
    assert directory.user_groups(user.id) == ["staff"]
    with site.services.transaction() as s:
        assert s.get(Identity, user.id) is not None
        created = s.scalars(select(AuditEvent).where(AuditEvent.event == "user.created")).one()
    assert created.subject == user.id and created.actor == "cli"
    assert PASSWORD not in json.dumps(created.details)


def test_user_add_without_password_is_refused(site: Site) -> None:
    assert one_sentence_error(site.run("user", "add", "carol", input="")) == (
        "Give the password on standard input."
    )
    assert site.services.directory.find_user(username="carol") is None


def test_user_add_duplicate_is_refused(site: Site) -> None:
    site.ok("user", "add", "carol", input=PASSWORD + "\n")
    sentence = one_sentence_error(site.run("user", "add", "carol", input=PASSWORD + "\n"))
    assert sentence == "A user named 'carol' already exists."


def test_user_add_with_refused_password_creates_nothing(site: Site) -> None:
    sentence = one_sentence_error(site.run("user", "add", "carol", input="short\n"))
    assert "at least 8 characters" in sentence
    assert site.services.directory.find_user(username="carol") is None


def test_user_add_refused_for_active_directory(site: Site) -> None:
    site.monkeypatch.setenv("IAM_DIRECTORY__KIND", "ad")
    site.monkeypatch.setenv("IAM_DIRECTORY__BASE_DN", "DC=example,DC=test")
    sentence = one_sentence_error(site.run("user", "add", "carol", input=PASSWORD + "\n"))
    assert "built-in directory" in sentence


def test_user_disable_ends_sessions_and_queues_directory_job(site: Site) -> None:
    site.ok("user", "add", "dave", input=PASSWORD + "\n")
    services = site.services
    user = services.directory.find_user(username="dave")
    assert user is not None
    site.ok("user", "add", "erin", input=PASSWORD + "\n")
    other = services.directory.find_user(username="erin")
    assert other is not None
    rp, _ = make_client(services)
    with services.transaction() as s:
        # dave: two browsers, a refresh token from each, one without a session (offline access)
        # and one already rotated; erin: a session and a token that must stay as they are
        for sub in (user.id, user.id, other.id):
            _, sso_row = sso_service.create_sso_session(
                s, services.settings, sub=sub, acr="1", amr=["pwd"], ip="192.0.2.1", user_agent="t"
            )
            s.flush()
            ctx = sso_service.AuthContext.of(sso_row)
            sso_service.issue_refresh_token(s, services.settings, client_id=rp, ctx=ctx, scope="openid")
        offline = sso_service.AuthContext(user.id, clock.now(), "1", ("pwd",), None)
        sso_service.issue_refresh_token(s, services.settings, client_id=rp, ctx=offline, scope="openid")
        _, rotated = sso_service.issue_refresh_token(
            s, services.settings, client_id=rp, ctx=offline, scope="openid"
        )
        s.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == rotated.token_hash)
            .values(used_at=clock.now())
        )

    result = site.ok("user", "disable", "dave", "--reason", "left the organisation")
    assert "Disabled dave" in result.stdout
    with services.transaction() as s:
        sessions = list(s.scalars(select(SsoSession).where(SsoSession.sub == user.id)))
        assert len(sessions) == 2
        assert all(row.ended_at is not None for row in sessions)
        assert {row.end_reason for row in sessions} == {"identity_disabled: left the organisation"}
        tokens = list(s.scalars(select(RefreshToken).where(RefreshToken.sub == user.id)))
        assert len(tokens) == 4 and all(row.revoked_at is not None for row in tokens)
        # nobody else's sessions or tokens
        [kept] = list(s.scalars(select(SsoSession).where(SsoSession.sub == other.id)))
        assert kept.ended_at is None
        [kept_token] = list(s.scalars(select(RefreshToken).where(RefreshToken.sub == other.id)))
        assert kept_token.revoked_at is None
        identity = s.get(Identity, user.id)
        assert identity is not None and identity.disabled is True
        [job] = list(s.scalars(select(Job).where(Job.kind == "iam.directory.disable")))
        assert (job.payload, job.status) == ({"user_id": user.id}, JobStatus.PENDING)
        disabled = s.scalars(select(AuditEvent).where(AuditEvent.event == "identity.disabled")).one()
        assert (disabled.subject, disabled.actor) == (user.id, "cli")
    # the directory write is the worker's job
    assert services.directory.get_user(user.id).enabled is True  # type: ignore[union-attr]
    assert site.ok("worker", "--once").stdout.strip() == "ran 1 job(s)"
    with pytest.raises(AccountDisabled):
        services.directory.authenticate("dave", PASSWORD)

    site.ok("user", "enable", "dave")
    assert site.ok("worker", "--once").stdout.strip() == "ran 1 job(s)"
    assert services.directory.authenticate("dave", PASSWORD).enabled is True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _directory_unreachable(site: Site) -> None:
    """Point the CLI at an Active Directory on a closed port (a directory outage)."""
    site.monkeypatch.setenv("IAM_DIRECTORY__KIND", "ad")
    site.monkeypatch.setenv("IAM_DIRECTORY__URL", f"ldaps://127.0.0.1:{_closed_port()}")
    site.monkeypatch.setenv("IAM_DIRECTORY__BASE_DN", "DC=example,DC=test")
    site.monkeypatch.setenv("IAM_DIRECTORY__BIND_PASSWORD", "service-password")
    site.monkeypatch.setenv("IAM_DIRECTORY__CONNECT_TIMEOUT", "1")


def test_user_disable_during_directory_outage_ends_sessions_and_queues_the_write(site: Site) -> None:
    """Issue 17 (drills): cutting off a leaver never waits for the directory."""
    site.ok("user", "add", "dave", input=PASSWORD + "\n")
    services = site.services
    user = services.directory.find_user(username="dave")
    assert user is not None
    with services.transaction() as s:
        _, sso_row = sso_service.create_sso_session(
            s, services.settings, sub=user.id, acr="1", amr=["pwd"], ip="192.0.2.1", user_agent="t"
        )
        sid = sso_row.id
    _directory_unreachable(site)

    result = site.ok("user", "disable", "DAVE", "--reason", "left the organisation")
    assert "Disabled DAVE; its sessions and tokens have ended." in result.stdout
    assert "The directory cannot be reached" in result.stdout
    with services.transaction() as s:
        ended = s.get(SsoSession, sid)
        assert ended is not None and ended.ended_at is not None
        assert ended.end_reason == "identity_disabled: left the organisation"
        identity = s.get(Identity, user.id)
        assert identity is not None and identity.disabled is True
        [job] = list(s.scalars(select(Job).where(Job.kind == "iam.directory.disable")))
        assert (job.payload, job.status) == ({"user_id": user.id}, JobStatus.PENDING)
        disabled = s.scalars(select(AuditEvent).where(AuditEvent.event == "identity.disabled")).one()
        assert (disabled.subject, disabled.actor) == (user.id, "cli")

    # a name the provider has never seen cannot be resolved without the directory
    sentence = one_sentence_error(site.run("user", "disable", "nobody"))
    assert sentence.startswith("The directory cannot be reached and no account named 'nobody'")


def test_user_disable_unknown_user(site: Site) -> None:
    assert one_sentence_error(site.run("user", "disable", "nobody")) == ("There is no user 'nobody'.")


# -- audit ------------------------------------------------------------------------------------
def test_audit_verify_and_tampering(site: Site) -> None:
    """R-AUD-3: ``iam audit verify`` seals new rows, exits 0 on an intact log and 1 after
    tampering (of sealed rows, and with --no-seal of unsealed ones)."""
    site.ok("client", "add", "--name", "A", "--redirect-uri", "https://a.example.test/cb")
    anchor = str(site.root / "audit-anchor.jsonl")
    unsealed = site.json("audit", "verify", "--no-seal")
    assert unsealed == {
        "ok": True,
        "checked": 0,
        "unsealed": 2,
        "problem": None,
        "seq": None,
        "missing": [],
        "anchor": anchor,
    }
    result = site.ok("audit", "verify")
    assert result.stdout.strip() == f"Audit log intact: 2 events verified (matches the anchor {anchor})."
    assert site.json("audit", "verify") == {
        "ok": True,
        "checked": 2,
        "unsealed": 0,
        "problem": None,
        "seq": None,
        "missing": [],
        "anchor": anchor,
    }

    site.ok("client", "add", "--name", "B", "--redirect-uri", "https://b.example.test/cb")
    with site.services.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq IS NULL"))
    result = site.run("audit", "verify", "--no-seal")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Audit log TAMPERED: unsealed row id 3 was changed."

    with site.services.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'cli' WHERE id = 3"))
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    result = site.run("audit", "verify")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Audit log TAMPERED: row 2 was changed."
    result = site.run("audit", "verify", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "ok": False,
        "checked": 1,
        "unsealed": 0,
        "problem": "row 2 was changed",
        "seq": 2,
        "missing": [],
        "anchor": None,
    }


def test_audit_verify_sees_an_emptied_log_and_deleted_unsealed_rows(site: Site) -> None:
    """R-AUD-3 (issue 11): with every row and the head deleted ``iam audit verify`` no longer
    answers "intact: 0 events" but exits 1 naming what the anchor records; rows deleted before
    their seal are named by id."""
    site.ok("client", "add", "--name", "A", "--redirect-uri", "https://a.example.test/cb")
    site.ok("audit", "verify")  # sealed: seq 1..2
    site.ok("client", "add", "--name", "B", "--redirect-uri", "https://b.example.test/cb")
    with site.services.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq IS NULL"))
    result = site.run("audit", "verify", "--no-seal", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["missing"] == [3]
    with site.services.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM audit_head"))
    result = site.run("audit", "verify")
    assert result.exit_code == 1
    anchor = site.root / "audit-anchor.jsonl"
    assert result.stderr.startswith(
        f"Audit log TAMPERED: the chain head was deleted (the anchor {anchor} records the chain's start"
    )
    assert result.stderr.strip().endswith("; sealed rows 1..2 are missing.")


def test_audit_list(site: Site) -> None:
    """R-AUD-3: the log is printable in readable form, oldest first."""
    site.ok("client", "add", "--name", "A", "--redirect-uri", "https://a.example.test/cb")
    events = site.json("audit", "list")
    assert [e["event"] for e in events] == ["keys.created", "client.created"]
    assert [(e["id"], e["seq"]) for e in events] == [(1, None), (2, None)]
    assert events[1]["actor"] == "cli" and events[1]["severity"] == "significant"
    site.ok("audit", "verify")  # seals
    assert [e["seq"] for e in site.json("audit", "list")] == [1, 2]
    assert site.json("audit", "list", "--limit", "1")[0]["event"] == "client.created"
    text_lines = site.ok("audit", "list").stdout.splitlines()
    assert len(text_lines) == 2 and "client.created" in text_lines[1]


# -- keys -------------------------------------------------------------------------------------
def _keys(site: Site) -> dict[str, dict[str, Any]]:
    return {k["kid"]: k for k in site.json("keys", "list")}


def test_keys_list_and_rotate(site: Site) -> None:
    before = _keys(site)
    assert sorted((k["alg"], k["status"]) for k in before.values()) == [
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    ]
    nxt = {k["alg"]: kid for kid, k in before.items() if k["status"] == "next"}
    active = {k["alg"]: kid for kid, k in before.items() if k["status"] == "active"}

    clock.freeze(dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC))
    out = site.ok("keys", "rotate").stdout
    for alg in ("ES256", "RS256"):
        assert f"{alg}: rotated to {nxt[alg]} (previous key {active[alg]})." in out
    # issue 17 (drills): not "now signing" — every node has switched within the key cache bound
    assert "now signing" not in out
    assert "Every node signs with the new keys by 2031-05-06 07:08:19 UTC" in out
    assert "nodes reload keys within 10 s" in out
    after = _keys(site)
    assert len(after) == 6
    for alg in ("ES256", "RS256"):
        assert after[nxt[alg]]["status"] == "active"
        assert after[active[alg]]["status"] == "retired"
        assert after[active[alg]]["publish_until"] is not None
        assert [k for k in after.values() if k["alg"] == alg and k["status"] == "next"]


def test_keys_rotate_json_says_when_every_node_has_switched(site: Site) -> None:
    """Issue 17 (drills): the switch time is explicit (the key ring's reload bound)."""
    before = _keys(site)
    nxt = {k["alg"]: kid for kid, k in before.items() if k["status"] == "next"}
    active = {k["alg"]: kid for kid, k in before.items() if k["status"] == "active"}
    clock.freeze(dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC))
    out = site.json("keys", "rotate", "--alg", "ES256")
    assert out["rotated_at"] == "2031-05-06T07:08:09+00:00"
    assert out["all_nodes_switched_by"] == "2031-05-06T07:08:19+00:00"
    assert out["switch_within_seconds"] == int(sso_keys.RELOAD_SECONDS) == 10
    assert out["keys"] == {"ES256": {"signing_kid": nxt["ES256"], "previous_kid": active["ES256"]}}
    assert dt.datetime.fromisoformat(out["previous_published_until"]) > dt.datetime.fromisoformat(
        out["all_nodes_switched_by"]
    )


def test_keys_rotate_one_algorithm(site: Site) -> None:
    before = _keys(site)
    site.ok("keys", "rotate", "--alg", "ES256")
    after = _keys(site)
    for kid, k in before.items():
        if k["alg"] == "RS256":
            assert after[kid]["status"] == k["status"]
        elif k["status"] == "active":
            assert after[kid]["status"] == "retired"
    assert len(after) == 5


# -- jobs -------------------------------------------------------------------------------------
def test_jobs_list_and_retry(site: Site) -> None:
    with site.services.transaction() as s:
        job = jobs.enqueue(s, "test.cli.no_handler", {"x": 1}, max_attempts=1)
        assert job is not None
        job_id = job.id
    [listed] = site.json("jobs", "list")
    assert (listed["id"], listed["status"], listed["attempts"]) == (job_id, "pending", 0)

    site.ok("worker", "--once")
    [dead] = site.json("jobs", "list", "--status", "dead")
    assert dead["id"] == job_id and "no handler" in dead["last_error"]
    assert site.json("jobs", "list", "--status", "pending") == []

    assert site.ok("jobs", "retry", job_id).stdout.strip() == "1 job(s) queued again."
    [again] = site.json("jobs", "list")
    assert (again["status"], again["attempts"]) == ("pending", 0)
    # nothing (more) to retry, or an unknown id: one sentence, exit 1, nothing changed
    assert one_sentence_error(site.run("jobs", "retry")) == "There are no dead jobs."
    assert one_sentence_error(site.run("jobs", "retry", job_id)) == f"There is no dead job {job_id!r}."
    assert one_sentence_error(site.run("jobs", "retry", "999")) == "There is no dead job '999'."
    assert site.json("jobs", "list")[0]["status"] == "pending"
    site.ok("worker", "--once")
    assert site.json("jobs", "retry", job_id) == {"requeued": 1}
    assert site.json("worker", "--once") == {"ran": 1}


# -- demo -------------------------------------------------------------------------------------
def test_demo_seeds_users_and_client_in_dev_mode(site: Site) -> None:
    info = site.json("demo", "--password", "Demo-Password-1")
    assert info["users"] == ["alice", "bob", "admin", "hana"]
    assert sorted(info["created"]) == ["admin", "alice", "bob", "hana"]
    assert info["client_id"] == "demo-app"
    assert info["password"] == "Demo-Password-1"
    directory = site.services.directory
    for name in ("alice", "bob", "admin"):
        assert directory.authenticate(name, "Demo-Password-1").username == name
    admin = directory.find_user(username="admin")
    assert admin is not None and "it-admins" in directory.user_groups(admin.id)
    with site.services.transaction() as s:
        client = s.get(Client, "demo-app")
        assert client is not None
        assert client.redirect_uris == ["http://localhost:5000/demo/callback"]
        assert client.public

    again = site.json("demo", "--password", "Other-Password-2")
    assert again["created"] == []
    assert directory.authenticate("alice", "Other-Password-2").username == "alice"
    assert sorted(c["client_id"] for c in site.json("client", "list")) == ["demo-app", "demo-hr"]
    # the printed instructions name every part of the demo
    message = site.ok("demo", "--password", "Other-Password-2").stdout
    for part in ("/demo/", "/pim/", "/pim/approvals", "/hr/events", "demo-hr-client-secret.txt", "/token"):
        assert part in message


def test_demo_refused_outside_dev_mode(site: Site) -> None:
    site.production()
    sentence = one_sentence_error(site.run("demo", "--json"))
    assert "dev mode" in sentence
    site.monkeypatch.setenv("IAM_DEV_MODE", "true")
    site.monkeypatch.setenv("IAM_ISSUER", "http://localhost:5000")
    for name in ("IAM_SECRET_KEY", "IAM_ENCRYPTION_KEY"):
        site.monkeypatch.delenv(name)
    assert site.services.directory.find_user(username="alice") is None
    assert site.json("client", "list") == []


# -- exit codes and --json of the commands that change something (issue 10 item 19) -----------
def test_user_unlock_unknown_name_is_refused(site: Site) -> None:
    assert one_sentence_error(site.run("user", "unlock", "nosuchuser")) == (
        "There is no user 'nosuchuser' and no sign-in lock on that name."
    )
    with site.services.reader() as s:  # refused: nothing audited
        assert s.scalars(select(AuditEvent).where(AuditEvent.event == "login.unlocked")).all() == []


def test_user_unlock_lifts_a_lock_on_an_unknown_name(site: Site) -> None:
    """Lockout counts unknown names like known ones (no enumeration): such a lock can be lifted."""
    from iam import lockout

    settings = site.services.settings.lockout
    with site.services.transaction() as s:
        for _ in range(settings.threshold):
            lockout.record_failure(
                s, settings, account=lockout.Account("ghost"), ip="192.0.2.9", user_agent="t"
            )
        assert lockout.state(s, account=lockout.Account("ghost"), ip=None).locked
    assert site.json("user", "unlock", "ghost") == {
        "username": "ghost",
        "was_locked": True,
        "directory_unlocked": False,
    }


def test_user_unlock_disable_enable_json(site: Site) -> None:
    site.ok("user", "add", "erin", input=PASSWORD + "\n")
    assert site.json("user", "unlock", "erin") == {
        "username": "erin",
        "was_locked": False,
        "directory_unlocked": True,
    }
    assert site.ok("user", "unlock", "erin").stdout.strip() == "Unlocked erin."
    assert site.json("user", "disable", "erin") == {
        "username": "erin",
        "enabled": False,
        "reason": "disabled by administrator",
        "directory_written": True,
    }
    assert site.json("user", "enable", "erin") == {
        "username": "erin",
        "enabled": True,
        "directory_written": True,
    }
    assert one_sentence_error(site.run("user", "enable", "nobody", "--json")) == "There is no user 'nobody'."


def test_audit_list_filter_matching_nothing_says_so(site: Site) -> None:
    result = site.run("audit", "list", "--event", "nosuch")
    assert one_sentence_error(result) == "No audit event matched --event 'nosuch'."
    assert result.stdout == ""
    result = site.run("audit", "list", "--event", "login.*", "--subject", "x", "--json")
    assert one_sentence_error(result) == "No audit event matched --event 'login.*' and --subject 'x'."
    assert json.loads(result.stdout) == []  # scripts still get a document
    assert [e["event"] for e in site.json("audit", "list", "--event", "keys.*")] == ["keys.created"]


def test_policy_test_without_a_password_asks_for_it(site: Site) -> None:
    assert one_sentence_error(site.run("policy", "test", input="")) == (
        "Give the password to test on standard input."
    )
    assert one_sentence_error(site.run("policy", "test", "--json", input="\n")) == (
        "Give the password to test on standard input."
    )
    assert site.json_in("policy", "test", input="Correct-horse-battery-9\n")["ok"] is True


def test_passwords_are_asked_for_hidden_at_a_terminal(site: Site) -> None:
    import iam.clitools

    site.monkeypatch.setattr(iam.clitools, "_interactive", lambda: True)
    result = site.ok("policy", "test", input="Correct-horse-battery-9\n")
    assert result.stdout.startswith("Password to test: \n")  # the prompt; the typing is not echoed
    assert "Correct-horse" not in result.output
    assert one_sentence_error(site.run("user", "add", "carol", input="\n")) == (
        "Give the password on standard input."
    )


def test_keys_rotate_json(site: Site) -> None:
    before = {k["alg"]: k["kid"] for k in site.json("keys", "list") if k["status"] == "next"}
    rotated = site.json("keys", "rotate", "--alg", "RS256")
    assert rotated["signing"] == {"RS256": before["RS256"]}
    assert rotated["previous_published_seconds"] >= 600


def test_client_remove_unknown_and_json(site: Site) -> None:
    assert one_sentence_error(site.run("client", "remove", "nope", "--json")) == "There is no client 'nope'."
    added = site.json("client", "add", "--name", "A", "--redirect-uri", "https://a.example.test/cb")
    assert site.json("client", "remove", added["client_id"]) == {
        "client_id": added["client_id"],
        "removed": True,
    }


def test_ca_reload_and_remove_json(site: Site) -> None:
    assert site.json("ca", "reload") == {"anchors": 0, "intermediates": 0}
    assert one_sentence_error(site.run("ca", "remove", "ab" * 32, "--json")) == (
        "There is no uploaded CA with this SHA-256 fingerprint."
    )


def test_db_upgrade_json(site: Site) -> None:
    data = site.json("db", "upgrade")
    assert data["up_to_date"] is True and data["database"].startswith("sqlite:///")
