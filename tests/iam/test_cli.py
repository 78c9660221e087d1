"""The ``iam`` command, driven in-process with click's CliRunner against a temporary SQLite
site (dev mode unless a test says otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result
from sqlalchemy import select, text

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

    shown = json.loads(site.ok("client", "show", client_id).stdout)
    assert shown["client_name"] == "Payroll"
    assert shown["redirect_uris"] == ["https://payroll.example.test/cb"]
    assert shown["disabled"] is False
    assert "client_secret" not in shown

    site.ok("client", "disable", client_id)
    assert json.loads(site.ok("client", "show", client_id).stdout)["disabled"] is True
    site.ok("client", "enable", client_id)
    assert json.loads(site.ok("client", "show", client_id).stdout)["disabled"] is False

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
        rotated.used_at = clock.now()

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


def test_user_disable_unknown_user(site: Site) -> None:
    assert one_sentence_error(site.run("user", "disable", "nobody")) == ("There is no user 'nobody'.")


# -- audit ------------------------------------------------------------------------------------
def test_audit_verify_and_tampering(site: Site) -> None:
    """R-AUD-3: ``iam audit verify`` seals new rows, exits 0 on an intact log and 1 after
    tampering (of sealed rows, and with --no-seal of unsealed ones)."""
    site.ok("client", "add", "--name", "A", "--redirect-uri", "https://a.example.test/cb")
    unsealed = site.json("audit", "verify", "--no-seal")
    assert unsealed == {"ok": True, "checked": 0, "unsealed": 2, "problem": None, "seq": None}
    result = site.ok("audit", "verify")
    assert result.stdout.strip() == "Audit log intact: 2 events verified."
    assert site.json("audit", "verify") == {
        "ok": True,
        "checked": 2,
        "unsealed": 0,
        "problem": None,
        "seq": None,
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
    }


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

    clock.freeze()
    out = site.ok("keys", "rotate").stdout
    for alg in ("ES256", "RS256"):
        assert f"{alg}: now signing with {nxt[alg]}" in out
    after = _keys(site)
    assert len(after) == 6
    for alg in ("ES256", "RS256"):
        assert after[nxt[alg]]["status"] == "active"
        assert after[active[alg]]["status"] == "retired"
        assert after[active[alg]]["publish_until"] is not None
        assert [k for k in after.values() if k["alg"] == alg and k["status"] == "next"]


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
    assert site.ok("jobs", "retry").stdout.strip() == "0 job(s) queued again."


# -- demo -------------------------------------------------------------------------------------
def test_demo_seeds_users_and_client_in_dev_mode(site: Site) -> None:
    info = site.json("demo", "--password", "Demo-Password-1")
    assert info["users"] == ["alice", "bob", "admin"]
    assert sorted(info["created"]) == ["admin", "alice", "bob"]
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
    assert [c["client_id"] for c in site.json("client", "list")] == ["demo-app"]


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
