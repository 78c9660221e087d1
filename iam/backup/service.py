"""Backup, verify, restore and drill (R-OPS-1, R-OPS-2). No Flask here.

- :func:`create` — one encrypted file: the database read in one snapshot while the service runs,
  the secrets that the database's contents depend on, the policies and trust anchors, and the
  settings without secrets; recorded in ``backup_records`` and the audit log.
- :func:`verify` — decrypt, check every checksum, read every table file.
- :func:`restore` — into an empty database: migrate to the backup's revision, load, migrate to
  the newest; write a ``restore`` line to the audit anchor (what the backup lacks is named, and
  sealing continues from the restored head); run the features' after-restore steps (AD
  reconciliation, PIM detection) before anyone signs in.
- :func:`drill` — restore into a throwaway database, check it, record the result in the live one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from iam import audit, clock
from iam.audit_anchor import Anchor
from iam.backup import dump
from iam.backup.archive import BackupError, Opened, check_sidecar, open_backup, staging
from iam.config import Settings
from iam.models import AuditEvent, BackupRecord
from iam.models.audit import Severity

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.backup")

SECRET_FILES = {"secret_key": "secret_key.txt", "encryption_key": "encryption.key"}

#: Steps features run right after a restore, before anyone signs in (AD reconciliation, PIM
#: detection). Each takes the services and returns one line for the report; raising stops the
#: restore's report with the step named (the database is restored; the step can be re-run).
AfterRestore = Callable[["Services"], str]
_after_restore: dict[str, AfterRestore] = {}


def after_restore(name: str) -> Callable[[AfterRestore], AfterRestore]:
    """Register a step to run after every restore (see :data:`AfterRestore`)."""

    def deco(fn: AfterRestore) -> AfterRestore:
        _after_restore[name] = fn
        return fn

    return deco


def policies_dir() -> Path:
    from iam.config import PROVISIONING_POLICY_DIR

    return PROVISIONING_POLICY_DIR


def _masked_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings as JSON, every secret replaced by ``**********`` (or empty)."""
    data: dict[str, Any] = json.loads(settings.model_dump_json())  # SecretStr dumps as "**********"
    return data


def default_folder(settings: Settings) -> Path:
    return settings.backup.folder or settings.var_dir / "backups"


@dataclass
class Created:
    path: Path
    sha256: str
    size: int
    revision: str | None
    tables: dict[str, int]
    audit_seq: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sha256": self.sha256,
            "bytes": self.size,
            "revision": self.revision,
            "tables": self.tables,
            "rows": sum(self.tables.values()),
            "audit_seq": self.audit_seq,
            "seconds": round(self.seconds, 2),
        }


def create(
    services: Services, out: Path | None = None, *, recipients: list[str] | None = None, actor: str = "cli"
) -> Created:
    """Write one encrypted backup (see the module's docstring); return what was written."""
    settings = services.settings
    recipients = recipients if recipients is not None else settings.backup.recipients
    started = time.monotonic()
    at = clock.now()
    if out is None:
        out = default_folder(settings) / f"iam-{at:%Y%m%dT%H%M%SZ}.iam-backup"
    if out.exists():
        raise BackupError(f"{out} exists already; name another file.")
    with staging() as stage:

        def write(table: str) -> Any:
            return stage.member(f"database/{table}.jsonl.gz").open("wb")

        revision, tables = dump.dump(services.engine, write)
        # the chain head as of the snapshot (the live one may have moved since)
        head_seq, head_hash = _head_from_dump(stage.root / "database" / "audit_head.jsonl.gz")
        stage.write_json(
            "secrets.json",
            {"secret_key": services.secret_key, "encryption_key": _encryption_key(services)},
        )
        stage.write_json("settings.json", _masked_settings(settings))
        n_policies = stage.add_tree(policies_dir(), "files/policies")
        trust_dir = settings.x509.trust_dir or settings.var_dir / "x509" / "ca"
        n_anchors = stage.add_tree(trust_dir, "files/trust-anchors")
        manifest = {
            "created_at": at.isoformat(),
            "issuer": settings.issuer,
            "database": {"dialect": services.engine.dialect.name, "revision": revision},
            "tables": tables,
            "audit": {"seq": head_seq, "hash": head_hash, "max_id": _max_audit_id(stage.root)},
            "counts": {"policy_files": n_policies, "trust_anchor_files": n_anchors},
        }
        digest = stage.seal(manifest, out, recipients)
    created = Created(out, digest, out.stat().st_size, revision, tables, head_seq, time.monotonic() - started)
    with services.transaction() as session:
        _record(session, "created", True, created.path, digest, actor, created.as_dict())
        audit.record(
            session,
            "backup.created",
            severity=Severity.SIGNIFICANT,
            actor=actor,
            details={"file": out.name, "sha256": digest, "rows": sum(tables.values()), "audit_seq": head_seq},
        )
    return created


def _encryption_key(services: Services) -> str:
    configured = services.settings.encryption_key.get_secret_value()
    if configured:
        return configured
    from iam.crypto import dev_secret

    return dev_secret(services.settings.var_dir, SECRET_FILES["encryption_key"])


def _head_from_dump(path: Path) -> tuple[int, str]:
    if not path.is_file():
        return 0, ""
    for row in dump.rows(path):
        return int(row.get("seq") or 0), str(row.get("hash") or "")
    return 0, ""


def _max_audit_id(root: Path) -> int:
    path = root / "database" / "audit_events.jsonl.gz"
    best = 0
    if path.is_file():
        for row in dump.rows(path):
            best = max(best, int(row["id"]))
    return best


def _record(
    session: Session, kind: str, ok: bool, path: Path, digest: str, actor: str, details: dict[str, Any]
) -> None:
    session.add(
        BackupRecord(
            kind=kind, at=clock.now(), ok=ok, file=str(path), sha256=digest, actor=actor, details=details
        )
    )


# -- verify -------------------------------------------------------------------------------
def verify(path: Path, identity_file: Path | None) -> dict[str, Any]:
    """Check a backup: without an identity only the ``.sha256`` file beside it; with one, decrypt,
    check every member against the manifest and read every table's rows."""
    problem = check_sidecar(path)
    if problem:
        raise BackupError(problem + ".")
    if identity_file is None:
        sidecar = path.with_name(path.name + ".sha256")
        if not sidecar.is_file():
            raise BackupError(f"{path.name} has no .sha256 beside it; give --identity to check its contents.")
        return {"file": str(path), "checked": "sha256 only (no identity given)", "ok": True}
    with open_backup(path, identity_file) as opened:
        rows = {}
        for table, file in sorted(opened.table_files().items()):
            rows[table] = sum(1 for _ in dump.rows(file))
        expected = opened.manifest.get("tables", {})
        for table, n in expected.items():
            if rows.get(table) != n:
                raise BackupError(f"{table} holds {rows.get(table)} rows, the manifest says {n}.")
        return {
            "file": str(path),
            "ok": True,
            "checked": "decrypted, every checksum and every row read",
            "created_at": opened.manifest.get("created_at"),
            "revision": opened.manifest["database"]["revision"],
            "rows": sum(rows.values()),
            "audit_seq": opened.manifest["audit"]["seq"],
            "sha256": opened.sha256,
        }


# -- restore ------------------------------------------------------------------------------
@dataclass
class Restored:
    file: str
    sha256: str
    created_at: str
    revision: str | None
    rows: int
    audit: dict[str, Any]
    files_dir: str
    differs: list[str] = field(default_factory=list)
    after: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def secrets_mismatch(settings: Settings, opened: Opened) -> list[str]:
    """The configured secrets that differ from the backup's (names only)."""
    out = []
    for name, filename in SECRET_FILES.items():
        configured = getattr(settings, name).get_secret_value()
        if not configured:
            path = settings.var_dir / filename
            configured = path.read_text().strip() if path.is_file() else ""
        if configured and configured != opened.secrets()[name]:
            out.append(name)
    return out


def install_secrets(settings: Settings, opened: Opened) -> list[str]:
    """Dev mode / embedded default: put the backup's secrets in ``var_dir`` (the restored data
    is readable only with them). Returns the files written."""
    written = []
    for name, filename in SECRET_FILES.items():
        if getattr(settings, name).get_secret_value():
            continue
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        path = settings.var_dir / filename
        tmp = path.with_name(filename + ".restoring")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(opened.secrets()[name] + "\n")
        os.replace(tmp, path)
        written.append(str(path))
    return written


def secrets_env(opened: Opened) -> str:
    return "".join(f"IAM_{name.upper()}={value}\n" for name, value in sorted(opened.secrets().items()))


def load_database(engine: Engine, opened: Opened) -> int:
    """Migrate the empty database to the backup's revision, load the rows, migrate to the newest."""
    from alembic import command
    from alembic.util.exc import CommandError

    from iam.migrate import alembic_config, upgrade

    busy = dump.non_empty_tables(engine)
    if busy:
        raise BackupError(
            f"The database is not empty ({', '.join(busy[:3])}{' …' if len(busy) > 3 else ''} hold rows): "
            "restore into a new, empty database."
        )
    revision = opened.manifest["database"]["revision"]
    cfg = alembic_config(engine)
    try:
        with engine.connect() as conn:
            current = dump.revision(conn)
        if current and current != revision:
            command.downgrade(cfg, revision)  # its tables are empty: nothing is lost
        upgrade(engine, revision)
    except CommandError:
        raise BackupError(
            f"The backup was made at database revision {revision}, which this version does not know: "
            "restore it with the version that made it (or a newer one)."
        ) from None
    counts = dump.load(engine, opened.table_files())
    upgrade(engine, "head")
    return sum(counts.values())


def _restore_files(opened: Opened, dest: Path) -> tuple[str, list[str]]:
    """Copy the backup's policies and trust anchors to ``dest``; list the ones that differ from
    the folders this installation uses."""
    src = opened.root / "files"
    dest.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    differs = []
    live = policies_dir()
    for file in sorted((src / "policies").rglob("*")) if (src / "policies").is_dir() else []:
        if file.is_file():
            rel = file.relative_to(src / "policies")
            mine = live / rel
            if not mine.is_file() or mine.read_bytes() != file.read_bytes():
                differs.append(f"policies/{rel.as_posix()}")
    return str(dest), differs


def audit_after_restore(
    sessions: sessionmaker[Session], anchor: Anchor | None, opened: Opened
) -> dict[str, Any]:
    """Verify the restored chain, name what the anchor knows beyond the backup, then anchor the
    restore so that verification and sealing go on from the restored head."""
    info = opened.manifest["audit"]
    with sessions() as session:
        own = audit.verify(session, anchor_file=Path(os.devnull))  # the chain by itself
        result: dict[str, Any] = {"chain_ok": own.ok, "checked": own.checked, "problem": own.problem}
        if anchor is not None and anchor.path.is_file():
            against = audit.verify(session)
            result["anchor"] = str(anchor.path)
            result["lost"] = None if against.ok else against.problem
        else:
            result["anchor"] = None
            result["lost"] = "unknown: no anchor file here — compare with the old host's anchor or the SIEM"
    if anchor is not None:
        anchor.write(
            [
                {
                    "kind": "restore",
                    "seq": int(info["seq"]),
                    "hash": info["hash"] or audit.GENESIS,
                    "max_id": int(info["max_id"]),
                    "backup": opened.sha256,
                    "backup_created_at": opened.manifest["created_at"],
                }
            ]
        )
    return result


def restore(
    services: Services, path: Path, identity_file: Path, *, actor: str = "cli", run_after: bool = True
) -> Restored:
    """Restore ``path`` into the configured (empty) database; see the module's docstring."""
    started = time.monotonic()
    with open_backup(path, identity_file) as opened:
        mismatch = secrets_mismatch(services.settings, opened)
        if mismatch and not services.settings.dev_mode:
            raise BackupError(
                f"The configured {' and '.join(mismatch)} differ from the backup's; "
                "the restored data needs the "
                "backup's: print them with `iam backup secrets FILE --identity …` and configure them."
            )
        rows = load_database(services.engine, opened)
        at = clock.now()
        files_dir, differs = _restore_files(
            opened, services.settings.var_dir / f"restored-{at:%Y%m%dT%H%M%SZ}"
        )
        audit_info = audit_after_restore(services.sessions, services.audit_anchor, opened)
        restored = Restored(
            file=str(path),
            sha256=opened.sha256,
            created_at=opened.manifest["created_at"],
            revision=opened.manifest["database"]["revision"],
            rows=rows,
            audit=audit_info,
            files_dir=files_dir,
            differs=differs,
            notes=[
                "Sessions, refresh tokens and codes issued after the backup are gone: those people and "
                "applications sign in again. A refresh token issued before the backup and not used since "
                "still works; one that was rotated after the backup is refused.",
                "ID and access tokens signed before the backup still verify: the signing keys are restored.",
            ],
        )
        with services.transaction() as session:
            _record(session, "restore", True, path, opened.sha256, actor, {"rows": rows, "audit": audit_info})
            audit.record(
                session,
                "backup.restored",
                severity=Severity.CRITICAL,
                actor=actor,
                details={
                    "file": path.name,
                    "sha256": opened.sha256,
                    "backup_created_at": opened.manifest["created_at"],
                    "lost": audit_info.get("lost"),
                },
            )
    if run_after:
        restored.after = run_after_restore(services)
    restored.seconds = round(time.monotonic() - started, 2)
    return restored


def run_after_restore(services: Services) -> dict[str, str]:
    """Run every registered after-restore step; a failing step is named, the others still run."""
    from iam.app import load_feature_jobs

    load_feature_jobs()
    out: dict[str, str] = {}
    for name, step in sorted(_after_restore.items()):
        try:
            out[name] = step(services)
        except Exception as exc:  # the step is reported, the others still run
            log.warning("after-restore step %s failed: %s", name, exc)
            out[name] = f"FAILED: {exc} — run `iam backup after-restore` again when it can succeed"
    return out


# -- drill --------------------------------------------------------------------------------
def _scratch_database(services: Services, database_url: str | None) -> tuple[str, Callable[[], None]]:
    """A throwaway database: the given URL, else a new PostgreSQL database beside the live one
    (dropped afterwards), else a SQLite file in a temporary folder."""
    if database_url:
        return database_url, lambda: None
    live = make_url(services.settings.database.url)
    if live.get_backend_name() == "postgresql":
        name = f"iam_drill_{int(time.time())}_{os.getpid()}"
        admin = create_engine(live, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        return live.set(database=name).render_as_string(hide_password=False), drop
    tmp = tempfile.mkdtemp(prefix="iam-drill-")
    return f"sqlite:///{tmp}/drill.db", lambda: shutil.rmtree(tmp, ignore_errors=True)


def drill(
    services: Services,
    path: Path,
    identity_file: Path,
    *,
    database_url: str | None = None,
    actor: str = "cli",
) -> dict[str, Any]:
    """Restore ``path`` into a throwaway database, check the result, record it in the live
    database (``backup_records`` + audit) and return the report. A failed drill is recorded
    too (and the error raised)."""
    from iam.audit import audit_key
    from iam.config import DatabaseSettings
    from iam.db import make_engine, make_sessionmaker

    started = time.monotonic()
    url, cleanup = _scratch_database(services, database_url)
    result: dict[str, Any] = {
        "file": str(path),
        "database": make_url(url).render_as_string(hide_password=True),
    }
    ok, digest = False, ""
    try:
        with open_backup(path, identity_file) as opened:
            digest = opened.sha256
            engine = make_engine(DatabaseSettings(url=url))
            try:
                result["rows"] = load_database(engine, opened)
                expected = sum(opened.manifest["tables"].values())
                if result["rows"] != expected:
                    raise BackupError(f"the drill loaded {result['rows']} rows, the backup holds {expected}")
                key = audit_key(opened.secrets()["secret_key"])
                sessions = make_sessionmaker(engine, info={"iam.audit_key": key})
                with sessions() as session:
                    chain = audit.verify(session, anchor_file=Path(os.devnull))
                result["audit"] = {"ok": chain.ok, "checked": chain.checked, "problem": chain.problem}
                if not chain.ok:
                    raise BackupError(f"the restored audit chain does not verify: {chain.problem}")
                result["backup_created_at"] = opened.manifest["created_at"]
                ok = True
            finally:
                engine.dispose()
    except BackupError as exc:
        result["error"] = str(exc)
        raise
    finally:
        with suppress(Exception):
            cleanup()
        result["ok"] = ok
        result["seconds"] = round(time.monotonic() - started, 2)
        with services.transaction() as session:
            _record(session, "drill", ok, path, digest, actor, result)
            audit.record(
                session,
                "backup.drill",
                severity=Severity.SIGNIFICANT if ok else Severity.CRITICAL,
                outcome="success" if ok else "failure",
                actor=actor,
                details={k: v for k, v in result.items() if k in ("file", "ok", "rows", "seconds", "error")},
            )
    return result


def last_drill(session: Session) -> BackupRecord | None:
    return session.scalars(
        select(BackupRecord)
        .where(BackupRecord.kind == "drill", BackupRecord.ok.is_(True))
        .order_by(BackupRecord.at.desc())
        .limit(1)
    ).first()


def check_drill_due(services: Services) -> bool:
    """Past ``backup.drill_interval_days`` without a successful drill: a critical audit event
    (which mails the security officer), at most once a week. True if one was raised."""
    now = clock.now()
    interval = dt.timedelta(days=services.settings.backup.drill_interval_days)
    with services.transaction() as session:
        last = last_drill(session)
        since = last.at if last else _first_seen(session)
        if since is None or now - since < interval:
            return False
        reminded = session.scalar(
            select(BackupRecord.at)
            .where(BackupRecord.kind == "reminder")
            .order_by(BackupRecord.at.desc())
            .limit(1)
        )
        if reminded is not None and now - reminded < dt.timedelta(days=7):
            return False
        what = (
            f"the last restore drill was on {last.at:%Y-%m-%d}"
            if last
            else "no restore drill has been recorded"
        )
        _record(
            session,
            "reminder",
            True,
            Path(""),
            "",
            "worker",
            {"last_drill": last.at.isoformat() if last else None},
        )
        audit.record(
            session,
            "backup.drill_overdue",
            severity=Severity.CRITICAL,
            outcome="failure",
            actor="worker",
            details={
                "message": f"A restore drill is overdue: {what}; run `iam backup drill FILE --identity …`.",
                "interval_days": services.settings.backup.drill_interval_days,
            },
        )
        return True


def _first_seen(session: Session) -> dt.datetime | None:
    """When this installation started keeping records (its first audit event)."""
    return session.scalar(select(AuditEvent.at).order_by(AuditEvent.id).limit(1))
