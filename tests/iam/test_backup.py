"""Backup and restore (R-OPS-1, R-OPS-2; issue 17 part 3) on SQLite and PostgreSQL.

A backup taken while tokens are being issued, restored into a fresh database: ID tokens signed
before still verify, refresh tokens behave exactly as the README says, the audit chain verifies
and the restore is anchored (what the anchor knew beyond the backup is named, sealing goes on),
a flipped byte is detected, a drill is recorded and a missing drill raises a reminder.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import create_engine, select, text

from iam import audit, clock
from iam.app import create_app
from iam.backup import service as backup
from iam.backup.archive import BackupError, new_identity
from iam.models import AuditEvent, BackupRecord
from iam.services import Services
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.sso.helpers import basic, exchange, make_client, make_user, sign_in_and_get_code


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, str]:
    identity, recipient = new_identity()
    path = tmp_path / "identity.txt"
    path.write_text(identity + "\n")
    return path, recipient


def _empty_target(source: Services, tmp: Path) -> Iterator[Services]:
    """A fresh, empty database of the same kind as ``source``'s, with its own var_dir."""
    var = tmp / f"restored-{secrets.token_hex(3)}"
    if source.engine.dialect.name == "postgresql":
        name = f"iam_restore_{os.getpid()}_{secrets.token_hex(3)}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        admin, name, url = None, "", f"sqlite:///{var}/iam.db"
    target = Services(make_settings(var, url))
    try:
        yield target
    finally:
        target.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture
def target(services: Services, tmp_path: Path) -> Iterator[Services]:
    yield from _empty_target(services, tmp_path)


def _refresh(client, cid: str, secret: str, rt: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=basic(cid, secret)
    )


def _claims(client, token: str) -> dict:  # type: ignore[no-untyped-def]
    keys = KeySet.import_key_set(client.get("/jwks").get_json())
    return dict(jwt.decode(token, keys, algorithms=["ES256", "RS256"]).claims)


def test_restore_keeps_tokens_audit_and_says_what_was_lost(services, target, keypair, tmp_path):
    identity, recipient = keypair
    make_user(services)
    cid, secret = make_client(services)
    assert secret
    client = create_app(services=services).test_client()
    params, flow = sign_in_and_get_code(client, cid)
    before = exchange(client, params["code"], flow, secret).get_json()
    params, flow = sign_in_and_get_code(client, cid)
    unused = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    with services.transaction() as s:
        audit.seal(s)

    made = backup.create(services, tmp_path / "b.iam-backup", recipients=[recipient])
    assert made.tables["audit_events"] > 0 and made.audit_seq > 0

    # after the backup: the first token is rotated, a new sign-in happens, events are sealed
    rotated = _refresh(client, cid, secret, before["refresh_token"]).get_json()["refresh_token"]
    params, flow = sign_in_and_get_code(client, cid)
    after = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    with services.transaction() as s:
        audit.seal(s)
    with services.reader() as s:
        live_seq = s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1))
    # the new host has the old host's anchor (copied, or from the SIEM)
    target.settings.var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(services.audit_anchor.path, target.audit_anchor.path)

    done = backup.restore(target, made.path, identity, run_after=False)
    assert done.rows == sum(made.tables.values())
    assert done.audit["chain_ok"], done.audit
    assert done.audit["lost"] and f"{made.audit_seq + 1}..{live_seq}" in done.audit["lost"], done.audit

    rp = create_app(services=target).test_client()
    # ID tokens signed before the backup still verify with the restored keys
    assert _claims(rp, before["id_token"])["aud"] == cid
    # refresh tokens: issued after the backup (the rotated successor too) → refused;
    # issued before and not used since → works
    assert _refresh(rp, cid, secret, rotated).get_json()["error"] == "invalid_grant"
    assert _refresh(rp, cid, secret, after).get_json()["error"] == "invalid_grant"
    ok = _refresh(rp, cid, secret, unused)
    assert ok.status_code == 200, ok.get_json()
    # the chain verifies against the anchor (the restore is anchored) and sealing goes on
    with target.transaction() as s:
        assert audit.seal(s) > 0
    with target.reader() as s:
        result = audit.verify(s)
        assert result.ok, result.problem
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.event == "backup.restored")) is not None


def test_restore_refuses_a_database_that_is_not_empty(services, keypair, tmp_path):
    identity, recipient = keypair
    make_user(services)
    made = backup.create(services, tmp_path / "b.iam-backup", recipients=[recipient])
    with pytest.raises(BackupError, match="not empty"):
        backup.restore(services, made.path, identity, run_after=False)


def test_a_flipped_byte_is_detected(sqlite_services, keypair, tmp_path):
    identity, recipient = keypair
    made = backup.create(sqlite_services, tmp_path / "b.iam-backup", recipients=[recipient])
    assert backup.verify(made.path, identity)["ok"]
    assert backup.verify(made.path, None)["ok"]  # the .sha256 beside it
    data = bytearray(made.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    made.path.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="changed or damaged"):
        backup.verify(made.path, None)
    made.path.with_name(made.path.name + ".sha256").unlink()
    with pytest.raises(BackupError, match="cannot be decrypted"):
        backup.verify(made.path, identity)


def test_the_wrong_identity_cannot_read_it(sqlite_services, keypair, tmp_path):
    _identity, recipient = keypair
    made = backup.create(sqlite_services, tmp_path / "b.iam-backup", recipients=[recipient])
    other, _ = new_identity()
    (tmp_path / "other.txt").write_text(other)
    with pytest.raises(BackupError, match="cannot be decrypted"):
        backup.verify(made.path, tmp_path / "other.txt")
    assert b"secret_key" not in made.path.read_bytes()


def test_drill_is_recorded_and_a_missing_drill_reminds(services, keypair, tmp_path):
    identity, recipient = keypair
    make_user(services)
    made = backup.create(services, tmp_path / "b.iam-backup", recipients=[recipient])
    result = backup.drill(services, made.path, identity)
    assert result["ok"] and result["rows"] == sum(made.tables.values()) and result["audit"]["ok"]
    with services.reader() as s:
        rec = s.scalars(select(BackupRecord).where(BackupRecord.kind == "drill")).one()
        assert rec.ok and rec.sha256
    assert backup.check_drill_due(services) is False
    clock.advance(dt.timedelta(days=services.settings.backup.drill_interval_days + 1))
    assert backup.check_drill_due(services) is True
    assert backup.check_drill_due(services) is False  # once a week, not every check
    with services.reader() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "backup.drill_overdue")).one()
        assert ev.severity == "critical"
    # a failing drill is recorded too
    bad = tmp_path / "bad.iam-backup"
    bad.write_bytes(b"not a backup")
    with pytest.raises(BackupError):
        backup.drill(services, bad, identity)
    with services.reader() as s:
        assert s.scalar(select(BackupRecord).where(BackupRecord.kind == "drill", BackupRecord.ok.is_(False)))


def test_cli_keygen_create_verify(sqlite_services, tmp_path, monkeypatch):
    from iam.cli import cli
    from iam.clitools import Ctx

    runner = CliRunner()
    ident = tmp_path / "id.txt"
    out = runner.invoke(cli, ["backup", "keygen", "--out", str(ident), "--json"])
    assert out.exit_code == 0, out.output
    assert oct(ident.stat().st_mode)[-3:] == "600"
    recipient = __import__("json").loads(out.output)["recipient"]
    ctx = Ctx()
    ctx._settings, ctx._services = sqlite_services.settings, sqlite_services
    file = tmp_path / "x.iam-backup"
    made = runner.invoke(cli, ["backup", "create", "--out", str(file), "--recipient", recipient], obj=ctx)
    assert made.exit_code == 0, made.output
    good = runner.invoke(cli, ["backup", "verify", str(file), "--identity", str(ident)])
    assert good.exit_code == 0 and "intact" in good.output
    file.write_bytes(file.read_bytes()[:-10])
    bad = runner.invoke(cli, ["backup", "verify", str(file), "--identity", str(ident)])
    assert bad.exit_code == 1 and "Error:" in bad.output
