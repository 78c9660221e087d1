"""The ``iam`` command. Each feature package adds its own sub-groups (``iam client …``).

Every command accepts ``--json``; errors go to stderr as one clear sentence with a non-zero exit
code. The shared pieces (context, ``--json``, failing) are in :mod:`iam.clitools`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from iam.clitools import Ctx, echo_json, emit, fail, json_option, nothing, pass_ctx, read_secret, tr
from iam.errors import IamError
from iam.i18n import N_

__all__ = ["Ctx", "cli", "echo_json", "emit", "fail", "json_option", "main", "nothing", "pass_ctx"]


class IamGroup(click.Group):
    """Turns domain errors into one sentence on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IamError as exc:
            if len(exc.args) == 1 and isinstance(exc.args[0], str):
                raise click.ClickException(tr(exc.args[0], **exc.params)) from None
            raise click.ClickException(str(exc)) from None


@click.group(cls=IamGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="iam")
def cli() -> None:
    """iam — single sign-on (OpenID Connect) backed by Active Directory.

    Settings come from iam.toml (or the file named by IAM_CONFIG) and IAM_* environment
    variables, e.g. IAM_DATABASE__URL, IAM_DIRECTORY__KIND=ad, IAM_DIRECTORY__URL,
    IAM_ISSUER. See README.md and deploy/iam.toml.example. Against the demo of `make run`:
    `. var/demo.env` first.

    Every command accepts --json (the result as JSON, for scripts). A problem — also an
    unknown name, or nothing to do — is one sentence on stderr and exit code 1.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- database ---------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option
@pass_ctx
def db_upgrade(ctx: Ctx, as_json: bool) -> None:
    """Create or migrate the tables to the latest version and create signing keys if missing."""
    from iam.app import load_features
    from iam.migrate import upgrade

    services = ctx.services
    upgrade(services.engine)
    for feature in load_features():
        hook = getattr(feature, "on_upgrade", None)
        if hook:
            hook(services)
    url = services.engine.url.render_as_string(hide_password=True)
    emit(as_json, {"database": url, "up_to_date": True}, f"Database is up to date ({url}).")


# -- processes --------------------------------------------------------------------------------
@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: server.port, 5000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default: number of cores).")
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="Threads per worker (1 = sync workers, fastest for the token endpoint).",
)
@click.option("--certfile", default=None, help="Serve HTTPS with this certificate (PEM).")
@click.option("--keyfile", default=None, help="Private key of --certfile.")
@click.option(
    "--ca-certs",
    default=None,
    help="With --certfile: PEM bundle of the CAs whose client certificates (smart cards) the TLS "
    "handshake accepts (chain and purpose are checked there, the dates only by the provider; "
    "a certificate the handshake refuses is recorded as card.tls_refused).",
)
@click.option(
    "--client-certs",
    type=click.Choice(["none", "optional", "required"]),
    default="none",
    show_default=True,
    help="With --certfile: ask browsers for a client certificate (card sign-in: optional).",
)
@pass_ctx
def serve(
    ctx: Ctx,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int,
    certfile: str | None,
    keyfile: str | None,
    ca_certs: str | None,
    client_certs: str,
) -> None:
    """Run the web service under gunicorn (migrate first with `iam db upgrade`)."""
    from iam.server import run

    run(
        ctx.services,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        certfile=certfile,
        keyfile=keyfile,
        ca_certs=ca_certs,
        client_certs=client_certs,
    )


@cli.command()
@click.option("--once", is_flag=True, help="Run the due jobs once and exit.")
@json_option
@pass_ctx
def worker(ctx: Ctx, once: bool, as_json: bool) -> None:
    """Run queued jobs (directory writes, back-channel logouts, notifications) with retries."""
    import signal

    from iam import core_jobs  # noqa: F401
    from iam.app import load_feature_jobs
    from iam.jobs import Worker

    load_feature_jobs()
    w = Worker(ctx.services)
    if once:
        ran = w.tick()
        emit(as_json, {"ran": ran}, f"ran {ran} job(s)")
        return
    signal.signal(signal.SIGTERM, lambda *_: w.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: w.stop_event.set())
    w.run()


# -- users ------------------------------------------------------------------------------------
@cli.group()
def user() -> None:
    """Users of the directory."""


@user.command("add")
@click.argument("username")
@click.option("--given-name", default=None, help="First name.")
@click.option("--family-name", default=None, help="Surname.")
@click.option("--email", default=None, help="E-mail address.")
@click.option("--employee-number", default=None, help="The HR system's employee number.")
@click.option("--group", "groups", multiple=True, help="Add to this group (created if missing). Repeatable.")
@click.option(
    "--must-change",
    is_flag=True,
    help="Force a password change at first sign-in (always so when the password profile sets "
    "change_new_account).",
)
@json_option
@pass_ctx
def user_add(
    ctx: Ctx,
    username: str,
    given_name: str | None,
    family_name: str | None,
    email: str | None,
    employee_number: str | None,
    groups: tuple[str, ...],
    must_change: bool,
    as_json: bool,
) -> None:
    """Create a user in the built-in directory. The password is read from standard input (one
    line; asked for, hidden, at a terminal), never from the command line."""
    from iam.users import add_user

    if ctx.settings.directory.kind != "local":
        fail(N_("`iam user add` manages the built-in directory; create AD users in AD."))
    password = read_secret("password")
    created = add_user(
        ctx.services,
        username=username,
        password=password,
        given_name=given_name,
        family_name=family_name,
        email=email,
        employee_number=employee_number,
        groups=list(groups),
        must_change=must_change or None,
        actor="cli",
    )
    emit(
        as_json,
        {"id": created.id, "username": created.username, "groups": list(groups)},
        f"Created {created.username} ({created.id}).",
    )


@user.command("reset-password")
@click.argument("username")
@click.option("--reason", default=None, help="Why (e.g. the help-desk ticket); kept in the audit log.")
@json_option
@pass_ctx
def user_reset_password(ctx: Ctx, username: str, reason: str | None, as_json: bool) -> None:
    """Set a random temporary password that satisfies the password profile, print it once, and
    force its change at the first sign-in. The reset (not the password) is recorded in the audit
    log with the operator's login name (PABIANICE §22)."""
    import getpass

    from iam.users import reset_password

    temporary, must_change = reset_password(
        ctx.services, username=username, actor=f"cli:{getpass.getuser()}", reason=reason
    )
    if as_json:
        echo_json({"username": username, "temporary_password": temporary, "must_change": must_change})
    else:
        when = ", must be changed at first sign-in" if must_change else ""
        click.echo(f"Temporary password for {username} (shown once{when}):")
        click.echo(temporary)


@user.command("unlock")
@click.argument("username")
@json_option
@pass_ctx
def user_unlock(ctx: Ctx, username: str, as_json: bool) -> None:
    """Lift the provider's sign-in lock on USERNAME (and the directory's lockout, if the user
    exists). Exit 1 if there is neither such a user nor a lock on that name.

    USERNAME may be any name the sign-in page accepts for the account (sAMAccountName or UPN, in
    any case): the account's one lock is lifted, whichever names were used to lock it."""
    from iam import lockout
    from iam.directory.errors import DirectoryError

    user = ctx.services.directory.find_login(username)
    account = lockout.Account(username.strip(), user.id if user is not None else None)
    with ctx.services.reader() as session:
        locked = (
            lockout.state(session, account=account, ip=None).locked
            or lockout.state(session, account=lockout.Account(username.strip()), ip=None).locked
        )
    if user is None and not locked:
        fail(f"There is no user {username!r} and no sign-in lock on that name.")
    with ctx.services.transaction() as session:
        was = lockout.unlock(session, account=account, actor="cli")
    if user is not None:
        try:
            ctx.services.directory.unlock(user.id)
        except DirectoryError as exc:
            fail(N_("The directory could not unlock %(username)s: %(exc)s"), username=username, exc=exc)
    emit(
        as_json,
        {"username": username, "was_locked": was, "directory_unlocked": user is not None},
        f"Unlocked {username}.",
    )


@user.command("disable")
@click.argument("username")
@click.option(
    "--reason", default="disabled by administrator", show_default=True, help="Kept in the audit log."
)
@json_option
@pass_ctx
def user_disable(ctx: Ctx, username: str, reason: str, as_json: bool) -> None:
    """Disable an account now: sessions end, refresh tokens are revoked, applications are told.

    This never waits for the directory: the directory write is a job the worker retries, so
    an account can be cut off while Active Directory is unreachable (it is then found among
    the accounts that have used the provider, by account name)."""
    from iam.users import set_enabled

    reached = set_enabled(ctx.services, username=username, enabled=False, actor="cli", reason=reason)
    lines = [f"Disabled {username}; its sessions and tokens have ended."]
    if not reached:
        lines.append(
            "The directory cannot be reached: the account will be disabled there by the worker "
            "as soon as the directory answers (see `iam jobs list`)."
        )
    emit(
        as_json,
        {"username": username, "enabled": False, "reason": reason, "directory_written": reached},
        lines,
    )


@user.command("enable")
@click.argument("username")
@json_option
@pass_ctx
def user_enable(ctx: Ctx, username: str, as_json: bool) -> None:
    """Enable an account again (the directory write is queued for the worker)."""
    from iam.users import set_enabled

    reached = set_enabled(ctx.services, username=username, enabled=True, actor="cli", reason="")
    lines = [f"Enabled {username}."]
    if not reached:
        lines.append(
            "The directory cannot be reached: the account will be enabled there by the worker "
            "as soon as the directory answers (see `iam jobs list`)."
        )
    emit(as_json, {"username": username, "enabled": True, "directory_written": reached}, lines)


# -- audit ------------------------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option("--no-seal", is_flag=True, help="Do not seal new rows into the chain first.")
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Compare with this copy of the anchor file (default: the configured audit.anchor_file).",
)
@click.option(
    "--archive",
    "archive_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Verify this weekly archive file on its own, without the database (signature, chain links).",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="With --archive: the archive signing key (PEM, from `iam audit archive-key`) the file must match.",
)
@click.option(
    "--check-macs",
    is_flag=True,
    help="With --archive: also recompute each row's HMAC with this provider's audit key (its secret key).",
)
@json_option
@pass_ctx
def audit_verify(
    ctx: Ctx,
    no_seal: bool,
    anchor_file: Path | None,
    archive_file: Path | None,
    public_key: Path | None,
    check_macs: bool,
    as_json: bool,
) -> None:
    """Check every row and the hash chain, then compare the database with the external anchor
    (audit.anchor_file): exit 1 if any row was changed, inserted or deleted, if the log was
    emptied or its head deleted or rolled back, naming the rows that are missing. With
    --archive, check one weekly archive file instead (no database needed)."""
    from iam import audit as audit_mod

    if archive_file is not None:
        from iam.audit_report.cli import verify_archive

        verify_archive(ctx, archive_file, public_key, check_macs, as_json)
        return

    if not no_seal:
        try:
            with ctx.services.transaction() as session:
                while audit_mod.seal(session):
                    pass
        except audit_mod.TamperedHead:
            pass  # verify reports it below
    with ctx.services.transaction() as session:
        result = audit_mod.verify(session, anchor_file=anchor_file)
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "checked": result.checked,
                "unsealed": result.unsealed,
                "problem": result.problem,
                "seq": result.seq,
                "missing": list(result.missing),
                "anchor": result.anchor,
            }
        )
    elif result.ok:
        against = (
            f" (matches the anchor {result.anchor})" if result.anchor else " (no anchor file to compare)"
        )
        click.echo(f"Audit log intact: {result.checked} events verified{against}.")
    if not result.ok:
        if not as_json:
            click.echo(f"Audit log TAMPERED: {result.problem}.", err=True)
        sys.exit(1)


@audit.command("list")
@click.option("--limit", type=int, default=50, show_default=True, help="How many of the newest events.")
@click.option(
    "--event",
    "event_name",
    default=None,
    help="Only this event, or a family with a trailing '*' (e.g. password.reset, 'login.*').",
)
@click.option("--subject", default=None, help="Only events about this account (its sub).")
@json_option
@pass_ctx
def audit_list(ctx: Ctx, limit: int, event_name: str | None, subject: str | None, as_json: bool) -> None:
    """Show the most recent audit events (newest last), e.g. every administrator password reset
    with `--event password.reset` (PABIANICE §22). Exit 1 when --event or --subject match
    nothing (a mistyped name is not mistaken for a clean log)."""
    from sqlalchemy import select

    from iam.models.audit import AuditEvent

    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if event_name and event_name.endswith("*"):
        query = query.where(AuditEvent.event.startswith(event_name[:-1], autoescape=True))
    elif event_name:
        query = query.where(AuditEvent.event == event_name)
    if subject:
        query = query.where(AuditEvent.subject == subject)
    with ctx.services.reader() as session:
        rows = list(session.scalars(query))
    rows.reverse()
    data = [
        {
            "id": r.id,
            "seq": r.seq,
            "at": r.at.isoformat(),
            "event": r.event,
            "severity": r.severity,
            "outcome": r.outcome,
            "actor": r.actor,
            "subject": r.subject,
            "client_id": r.client_id,
            "ip": r.ip,
            "details": r.details,
        }
        for r in rows
    ]
    if not data and (event_name or subject):
        asked = " and ".join(
            f"{flag} {value!r}" for flag, value in (("--event", event_name), ("--subject", subject)) if value
        )
        nothing(N_("No audit event matched %(asked)s."), as_json, [], asked=asked)
    emit(
        as_json,
        data,
        (
            f"{d['id']:>7} {d['at'][:19]}Z {d['severity']:<11} {d['event']:<28} {d['outcome']:<8} "
            f"actor={d['actor'] or '-'} client={d['client_id'] or '-'} ip={d['ip'] or '-'}"
            for d in data
        ),
    )


# -- jobs -------------------------------------------------------------------------------------
@cli.group()
def jobs() -> None:
    """The durable job queue."""


@jobs.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "running", "done", "dead", "discarded"]),
    default=None,
    help="Only jobs in this state (dead: given up after worker.max_attempts).",
)
@json_option
@pass_ctx
def jobs_list(ctx: Ctx, status: str | None, as_json: bool) -> None:
    """List jobs (dead ones carry their last error)."""
    from sqlalchemy import select

    from iam.models.jobs import Job

    with ctx.services.transaction() as session:
        stmt = select(Job).order_by(Job.created_at.desc()).limit(200)
        if status:
            stmt = stmt.where(Job.status == status)
        rows = list(session.scalars(stmt))
    data = [
        {
            "id": j.id,
            "kind": j.kind,
            "status": j.status,
            "attempts": j.attempts,
            "priority": j.priority,
            "run_at": j.run_at.isoformat(),
            "last_error": j.last_error,
        }
        for j in rows
    ]
    emit(
        as_json,
        data,
        (
            f"{d['id']} {d['status']:<8} {d['kind']:<28} attempts={d['attempts']} {d['last_error'] or ''}"
            for d in data
        ),
    )


@jobs.command("retry")
@click.argument("job_id", required=False)
@json_option
@pass_ctx
def jobs_retry(ctx: Ctx, job_id: str | None, as_json: bool) -> None:
    """Put dead jobs (all, or JOB_ID) back in the queue. Exit 1 if there is no such dead job."""
    from iam.jobs import retry_dead

    with ctx.services.transaction() as session:
        n = retry_dead(session, job_id)
    if not n:
        nothing(f"There is no dead job {job_id!r}." if job_id else "There are no dead jobs.")
    emit(as_json, {"requeued": n}, f"{n} job(s) queued again.")


@jobs.command("discard")
@click.argument("job_id")
@click.option("--reason", required=True, help="Why the job can never succeed (kept in the audit log).")
@json_option
@pass_ctx
def jobs_discard(ctx: Ctx, job_id: str, reason: str, as_json: bool) -> None:
    """Give up on a dead or waiting job for good: it is never run again and stays listed as
    discarded, with the reason in the audit log (as the console's Jobs page does)."""
    from iam.errors import IamError
    from iam.operations.service import discard_job

    try:
        with ctx.services.transaction() as session:
            job = discard_job(session, job_id, actor="cli", reason=reason)
            data = {"id": job.id, "kind": job.kind, "status": job.status}
    except IamError as exc:
        fail(str(exc))
    emit(as_json, data, f"Discarded {data['kind']} job {data['id']}.")


# -- demo -------------------------------------------------------------------------------------
@cli.command("demo")
@click.option("--password", default=None, help="Password for the demo users (default: generated).")
@json_option
@pass_ctx
def demo_command(ctx: Ctx, password: str | None, as_json: bool) -> None:
    """Seed the demo (dev mode, built-in directory only) and print how to use it: users alice,
    bob, admin and hana, the demo application, and each feature's demo data (PIM roles with
    admin eligible and bob approving, hana operating HR, an HR API client and HR events).
    Running it again changes nothing but the demo users' password."""
    from iam.demo import seed

    if not ctx.settings.dev_mode:
        fail(N_("`iam demo` runs only in dev mode (IAM_DEV_MODE=true)."))
    info = seed(ctx.services, password=password)
    emit(as_json, info, info["message"])


# -- the core's own sub-packages ---------------------------------------------------------------
def _register_core() -> None:
    from iam.passwords.cli import register as register_passwords  # imports iam.clitools only

    register_passwords(cli)
    from iam.backup.cli import register as register_backup
    from iam.doctor import register as register_doctor

    register_backup(cli)
    from iam.conformance.cli import register as register_conformance

    register_conformance(cli)
    register_doctor(cli)
    from iam.audit_report.cli import register as register_audit_report  # imports iam.clitools only

    register_audit_report(audit)
    from iam.siem.cli import register as register_siem  # imports iam.clitools only

    register_siem(audit)


_register_core()


def main() -> None:
    from iam.app import load_features

    for feature in load_features():
        register = getattr(feature, "register", None)
        if register:
            register(cli)
    cli(prog_name="iam")
