"""The weekly signed archive (R-AUD-3): written per ISO week, verifies on its own, fails on a
flipped byte or another key; weeks join by hash; a missed week is a critical alert (mailed)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam import audit, audit_archive, clock
from iam.audit_archive import verify_file
from iam.models.audit import AuditEvent
from iam.models.audit_ops import AuditArchive
from iam.models.jobs import Job
from iam.services import Services

MONDAY = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)  # ISO week 2026-W45


def _record(services: Services, n: int, tag: str) -> None:
    with services.transaction() as session:
        for i in range(n):
            audit.record(session, "login.succeeded", actor=f"{tag}-{i}", subject="Đorđe", details={"n": i})
        while audit.seal(session):
            pass


def _two_weeks(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(services.settings.audit_archive, "folder", tmp_path / "archive")
    clock.freeze(MONDAY)
    _record(services, 5, "w45")
    clock.freeze(MONDAY + dt.timedelta(days=7))
    _record(services, 3, "w46")
    clock.freeze(MONDAY + dt.timedelta(days=14, hours=7))  # W47, after both weeks' grace


def test_weeks_are_archived_and_verify_on_their_own(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _two_weeks(services, monkeypatch, tmp_path)
    result = audit_archive.run(services)
    assert result["written"] == ["2026-W45", "2026-W46"] and not result["failed"]
    folder = tmp_path / "archive"
    w45, w46 = (
        verify_file(folder / "iam-audit-2026-W45.jsonl.gz"),
        verify_file(folder / "iam-audit-2026-W46.jsonl.gz"),
    )
    assert w45.ok and w46.ok, (w45.problem, w46.problem)
    assert w45.header["first_seq"] == 1 and w46.header["first_seq"] == w45.header["last_seq"] + 1
    assert w46.header["prev_hash"] == w45.header["last_hash"]  # consecutive weeks join
    assert w46.events == 3  # the archive events themselves are recorded in W47
    key = audit.audit_key(services.secret_key)
    assert verify_file(folder / "iam-audit-2026-W45.jsonl.gz", audit_key=key).ok
    assert not verify_file(folder / "iam-audit-2026-W45.jsonl.gz", audit_key=b"x" * 32).ok
    with services.transaction() as session:
        rows = {a.week: a for a in session.scalars(select(AuditArchive))}
    assert rows["2026-W45"].status == "written" and rows["2026-W46"].events == w46.events


def test_a_flipped_byte_fails(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _two_weeks(services, monkeypatch, tmp_path)
    audit_archive.run(services)
    path = tmp_path / "archive" / "iam-audit-2026-W45.jsonl.gz"
    original = path.read_bytes()
    for where in (len(original) // 2, 30, len(original) - 12):  # compressed body, header area, gzip trailer
        flipped = bytearray(original)
        flipped[where] ^= 0x01
        path.write_bytes(bytes(flipped))
        assert not verify_file(path).ok
    # the content changed and re-compressed (the gzip is intact): the signature catches it
    text = gzip.decompress(original).replace(b'"w45-1"', b'"w45-X"')
    path.write_bytes(gzip.compress(text))
    check = verify_file(path)
    assert not check.ok and "signature" in (check.problem or "")
    # a forger who re-signs with their own key is caught by the pinned public key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.write_bytes(original)
    other = audit_archive.public_pem(Ed25519PrivateKey.generate().public_key())
    assert not verify_file(path, public_key=other).ok
    mine = audit_archive.public_pem(audit_archive.signing_key(services).public_key())
    assert verify_file(path, public_key=mine).ok


def test_cli_verify_archive_needs_no_database(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from iam.cli import cli

    _two_weeks(services, monkeypatch, tmp_path)
    audit_archive.run(services)
    path = tmp_path / "archive" / "iam-audit-2026-W46.jsonl.gz"
    env = {
        "IAM_DATABASE__URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "IAM_DEV_MODE": "true",
        "IAM_VAR_DIR": str(tmp_path / "elsewhere"),
    }
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--archive", str(path), "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    bad = runner.invoke(cli, ["audit", "verify", "--archive", str(path)], env=env)
    assert bad.exit_code == 1 and "NOT valid" in bad.output


def test_a_missed_week_is_a_critical_alert_mailed_once(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _two_weeks(services, monkeypatch, tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setattr(services.settings.audit_archive, "folder", blocker / "archive")
    monkeypatch.setattr(services.settings.audit, "security_officer_email", "officer@example.org")
    clock.freeze(MONDAY + dt.timedelta(days=14, hours=7))  # W45 due long ago, W46 within a day
    first = audit_archive.run(services)
    assert first["failed"] and first["alerted"] == ["2026-W45"]
    assert audit_archive.run(services)["alerted"] == []  # one alert per week
    with services.transaction() as session:
        missed = list(session.scalars(select(AuditEvent).where(AuditEvent.event == "audit.archive_missed")))
        jobs = list(session.scalars(select(Job).where(Job.kind == "iam.notify_critical")))
    assert len(missed) == 1 and missed[0].severity == "critical" and len(jobs) == 1
    monkeypatch.setattr(services.settings.audit_archive, "folder", tmp_path / "archive")
    assert audit_archive.run(services)["written"] == ["2026-W45", "2026-W46"]  # caught up


def test_retention_deletes_old_files(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _two_weeks(services, monkeypatch, tmp_path)
    audit_archive.run(services)
    monkeypatch.setattr(services.settings.audit_archive, "retention_weeks", 1)
    clock.freeze(MONDAY + dt.timedelta(days=14, hours=8))  # W47: one week kept back (W46)
    assert audit_archive.prune(services) == ["iam-audit-2026-W45.jsonl.gz"]
    assert (tmp_path / "archive" / "iam-audit-2026-W46.jsonl.gz").exists()
