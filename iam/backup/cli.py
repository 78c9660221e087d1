"""``iam backup …``: create, verify, restore and rehearse backups (R-OPS-1, R-OPS-2)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click

from iam.backup.archive import BackupError, new_identity, open_backup
from iam.clitools import Ctx, F, emit, fail, json_option, pass_ctx

IDENTITY_HELP = "The age identity file (AGE-SECRET-KEY-1…) that decrypts the backup."


def identity_option(*, required: bool = True, more_help: str = "") -> Callable[[F], F]:
    """``--identity FILE``: the age identity that decrypts the backup (the parameter is
    ``identity``); MORE_HELP is appended to the shared help text."""
    return click.option(
        "--identity",
        "identity",
        type=click.Path(dir_okay=False, path_type=Path),
        required=required,
        help=f"{IDENTITY_HELP} {more_help}".rstrip(),
    )


@click.group("backup")
def backup() -> None:
    """Encrypted backups: database, keys, policies, trust anchors, settings.

    \b
    One-time set-up:
      iam backup keygen --out backup-identity.txt   # keep this file offline
      then set backup.recipients = ["age1…"] (the printed public key) in iam.toml
    Every night (cron or a systemd timer):
      iam backup create
    Every six months, on any machine with the identity:
      iam backup drill FILE --identity backup-identity.txt
    After losing the server: a new, empty database, then
      iam backup restore FILE --identity backup-identity.txt
    """


@backup.command("keygen")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write the identity (the secret half) here, readable only by you.",
)
@json_option
def keygen(out: Path, as_json: bool) -> None:
    """Make the key pair backups are encrypted to; print the public recipient (age1…)."""
    if out.exists():
        fail(f"{out} exists already; name another file.")
    identity, recipient = new_identity()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# iam backup identity; public key: {recipient}\n{identity}\n")
    emit(
        as_json,
        {"identity_file": str(out), "recipient": recipient},
        [
            f"Identity written to {out} — keep it offline (it decrypts every backup).",
            "Add this to iam.toml:",
            f'  [backup]\n  recipients = ["{recipient}"]',
        ],
    )


@backup.command("create")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (default <backup.folder>/iam-<time>.iam-backup).",
)
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="Encrypt to this age public key instead of backup.recipients. Repeatable.",
)
@json_option
@pass_ctx
def create(ctx: Ctx, out: Path | None, recipients: tuple[str, ...], as_json: bool) -> None:
    """Write one encrypted backup while the service runs (a consistent snapshot)."""
    from iam.backup import service

    try:
        made = service.create(ctx.services, out, recipients=list(recipients) or None)
    except BackupError as exc:
        fail(str(exc))
    data = made.as_dict()
    emit(
        as_json,
        data,
        f"Backup written: {made.path} ({made.size:,} bytes, {data['rows']:,} rows, audit chain to seq "
        f"{made.audit_seq}, {data['seconds']} s). SHA-256 {made.sha256} (also in {made.path.name}.sha256).",
    )


@backup.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@identity_option(required=False, more_help="Without it only FILE.sha256 is compared.")
@json_option
def verify(file: Path, identity: Path | None, as_json: bool) -> None:
    """Check a backup: decrypt it, compare every checksum, read every row."""
    from iam.backup import service

    try:
        data = service.verify(file, identity)
    except BackupError as exc:
        fail(str(exc))
    emit(as_json, data, f"{file.name} is intact ({data['checked']}).")


@backup.command("secrets")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@identity_option()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Write IAM_SECRET_KEY and IAM_ENCRYPTION_KEY here (an environment file, mode 600).",
)
@json_option
def secrets(file: Path, identity: Path, out: Path, as_json: bool) -> None:
    """Write the backup's secret key and encryption key to an environment file, for a new host
    whose configuration must use them before `iam backup restore`."""
    from iam.backup import service

    try:
        with open_backup(file, identity) as opened:
            text = service.secrets_env(opened)
    except BackupError as exc:
        fail(str(exc))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    emit(
        as_json,
        {"file": str(out)},
        f"Secrets written to {out} (mode 600): load them into the service's environment.",
    )


@backup.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@identity_option()
@json_option
@pass_ctx
def restore(ctx: Ctx, file: Path, identity: Path, as_json: bool) -> None:
    """Restore FILE into the configured database, which must be empty; then reconcile with AD.

    The backup's revision is migrated to this version's; the audit anchor records the restore
    and what the backup lacks; policies and trust anchors are put beside (not over) the live
    ones; the features' after-restore steps (HR reconciliation, PIM detection) run before the
    command ends, so start the service only after it. Sessions and refresh tokens issued
    after the backup are gone."""
    from iam.backup import service

    try:
        with open_backup(file, identity) as opened:
            if ctx.settings.dev_mode:
                service.install_secrets(ctx.settings, opened)  # before the services read them
    except BackupError as exc:
        fail(str(exc))
    try:
        done = service.restore(ctx.services, file, identity)
    except BackupError as exc:
        fail(str(exc))
    lines = [
        f"Restored {done.rows:,} rows from {file.name} (made {done.created_at}) in {done.seconds} s.",
        "Audit chain: "
        + ("verifies" if done.audit["chain_ok"] else f"DOES NOT VERIFY: {done.audit['problem']}")
        + f" ({done.audit['checked']} sealed events).",
        f"Lost since the backup: {done.audit['lost'] or 'nothing the anchor knows of'}.",
        f"Policies and trust anchors from the backup: {done.files_dir}"
        + (
            f" (differ from the live ones: {', '.join(done.differs)})"
            if done.differs
            else " (same as the live ones)"
        ),
        *(f"After restore — {name}: {line}" for name, line in done.after.items()),
        *done.notes,
    ]
    emit(as_json, done.as_dict(), lines)
    if any(line.startswith("FAILED") for line in done.after.values()):
        raise SystemExit(1)


@backup.command("after-restore")
@json_option
@pass_ctx
def after_restore(ctx: Ctx, as_json: bool) -> None:
    """Run the after-restore steps again (HR reconciliation, PIM detection), e.g. when AD was
    unreachable during the restore."""
    from iam.backup import service

    out = service.run_after_restore(ctx.services)
    emit(
        as_json,
        out,
        [f"{name}: {line}" for name, line in out.items()] or ["No after-restore steps are registered."],
    )
    if any(line.startswith("FAILED") for line in out.values()):
        raise SystemExit(1)


@backup.command("drill")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@identity_option()
@click.option(
    "--database-url",
    "database_url",
    help="Restore into this (empty) database instead of a throwaway one beside the live database.",
)
@json_option
@pass_ctx
def drill(ctx: Ctx, file: Path, identity: Path, database_url: str | None, as_json: bool) -> None:
    """Rehearse a restore: into a throwaway database, checked, then dropped; the result is
    recorded (R-OPS-2: every six months)."""
    from iam.backup import service

    try:
        result = service.drill(ctx.services, file, identity, database_url=database_url)
    except BackupError as exc:
        fail(f"The restore drill failed and was recorded: {exc}")
    emit(
        as_json,
        result,
        f"Restore drill passed: {result['rows']:,} rows restored and the audit chain verified "
        f"({result['audit']['checked']} events) in {result['seconds']} s; recorded.",
    )


@backup.command("list")
@json_option
@pass_ctx
def list_records(ctx: Ctx, as_json: bool) -> None:
    """Backups made, restores and drills, newest first."""
    from sqlalchemy import select

    from iam.models import BackupRecord

    with ctx.services.reader() as session:
        rows = session.scalars(select(BackupRecord).order_by(BackupRecord.at.desc()).limit(100)).all()
    data = [
        {
            "kind": r.kind,
            "at": r.at.isoformat(),
            "ok": r.ok,
            "file": r.file,
            "sha256": r.sha256,
            "actor": r.actor,
        }
        for r in rows
    ]
    emit(
        as_json,
        data,
        [f"{d['at']}  {d['kind']:<8} {'ok ' if d['ok'] else 'FAILED'} {d['file']}" for d in data]
        or ["Nothing recorded yet."],
    )


def register(cli: click.Group) -> None:
    cli.add_command(backup)
