"""``iam hr …``: batch import (with dry run and a progress bar), the event log, replay of dead
letters, reconciliation, the register of authorised persons and sealed-envelope printing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from iam import i18n
from iam.clitools import Ctx, echo_json, emit, fail, json_option, nothing, pass_ctx
from iam.errors import Conflict, ValidationFailed
from iam.i18n import N_
from provisioning.models import EventStatus
from provisioning.service import batch, delivery, reports
from provisioning.service import events as event_service

CHUNK = 200


@click.group("hr")
def hr_group() -> None:
    """HR-driven joiners, movers and leavers."""


def _console() -> object:
    from rich.console import Console

    return Console(stderr=True)


@hr_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None, help="Default: by extension."
)
@click.option("--snapshot", is_flag=True, help="The file is the full list of people (not a list of events).")
@click.option("--dry-run", is_flag=True, help="Print the planned changes; store nothing.")
@json_option
@pass_ctx
def import_command(
    ctx: Ctx, file: Path, fmt: str | None, snapshot: bool, dry_run: bool, as_json: bool
) -> None:
    """Import HR events from FILE (CSV or JSON lines): the same events as the API."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    fmt = fmt or ("jsonl" if file.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        fail(N_("%(file)s is not UTF-8 text."), file=file)
    services = ctx.services
    with services.reader() as session:
        items = batch.parse(text, fmt, session, snapshot=snapshot)
        if dry_run:
            planned = batch.plan(services, session, items)
    if dry_run:
        if as_json:
            echo_json({"dry_run": True, "events": planned})
            return
        table = Table(title=f"Planned changes ({len(planned)}) — nothing was stored")
        for col in ("line", "kind", "employee", "effective (UTC)", "username", "OU", "groups"):
            table.add_column(col)
        for p in planned:
            table.add_row(
                str(p["line"] or "-"),
                p["kind"],
                p["employee_number"],
                p["effective_at"][:16],
                str(p.get("username") or ""),
                str(p.get("ou") or ""),
                ", ".join(p.get("groups", [])),
            )
        from rich.console import Console

        Console(width=160).print(table)
        return
    accepted = duplicates = 0
    settings = services.settings.provisioning
    progress = Progress(
        TextColumn("[bold]importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[dups]} duplicate(s)"),
        TimeRemainingColumn(),
        console=_console(),  # type: ignore[arg-type]
        disable=as_json,
    )
    with progress:
        task = progress.add_task("import", total=len(items), dups=0)
        for start in range(0, len(items), CHUNK):
            with services.transaction() as session:
                for item in items[start : start + CHUNK]:
                    try:
                        result = event_service.accept(
                            session, item.event, source="batch", actor=f"cli:{file.name}", settings=settings
                        )
                    except Conflict as exc:
                        raise ValidationFailed(f"line {item.line}: {exc}") from None
                    duplicates += result.duplicate
                    accepted += not result.duplicate
            progress.update(task, advance=len(items[start : start + CHUNK]), dups=duplicates)
    summary = {"accepted": accepted, "duplicates": duplicates, "total": len(items)}
    emit(
        as_json, summary, f"{accepted} event(s) stored, {duplicates} already known; the worker applies them."
    )


@hr_group.command("events")
@click.option(
    "--status",
    type=click.Choice([s.value for s in EventStatus]),
    default=None,
    help="Only events in this state.",
)
@click.option("--employee", default=None, help="Only this employee number.")
@click.option("--limit", default=50, show_default=True, help="How many of the newest events.")
@json_option
@pass_ctx
def events_command(ctx: Ctx, status: str | None, employee: str | None, limit: int, as_json: bool) -> None:
    """The HR event log, newest first."""
    with ctx.services.reader() as session:
        rows = [
            event_service.event_as_dict(r)
            for r in event_service.list_events(session, status=status, employee_number=employee, limit=limit)
        ]
    if not rows and employee:
        nothing(f"No HR event matched --employee {employee!r}.", as_json, [])
    emit(
        as_json,
        rows,
        (
            f"{r['accepted_at'][:19]}  {r['kind']:<7} {r['employee_number']:<12} {r['status']:<10} "
            f"attempts={r['attempts']} "
            f"latency={'-' if r['latency_ms'] is None else format(r['latency_ms'], '.0f') + 'ms'} {r['id']}"
            + (f"  error: {r['error']}" if r["error"] else "")
            for r in rows
        ),
    )


@hr_group.command("replay")
@click.argument("event_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Every event on the dead-letter list.")
@json_option
@pass_ctx
def replay_command(ctx: Ctx, event_id: str | None, replay_all: bool, as_json: bool) -> None:
    """Put a dead event (or all of them) back in the queue. Exit 1 if there is none."""
    if not event_id and not replay_all:
        raise click.UsageError("Give an event id or --all.")
    settings = ctx.services.settings.provisioning
    with ctx.services.transaction() as session:
        ids = (
            [event_id]
            if event_id
            else [r.id for r in event_service.list_events(session, status=EventStatus.DEAD, limit=100000)]
        )
        if not ids:
            nothing(N_("There are no dead HR events."))
        for one in ids:
            assert one is not None
            event_service.replay(session, one, actor="cli", settings=settings)
    emit(as_json, {"replayed": ids}, f"{len(ids)} event(s) put back in the queue.")


@hr_group.command("discard")
@click.argument("event_id")
@click.option("--reason", required=True, help="Why the event can never apply; kept in the audit log.")
@click.option("--json", "as_json", is_flag=True, help="Print the discarded event as JSON.")
@pass_ctx
def discard_command(ctx: Ctx, event_id: str, reason: str, as_json: bool) -> None:
    """Take a dead event that can never apply off the dead-letter list (it stays in the log as
    "discarded"; nothing is applied). The reason is recorded in the audit log."""
    import getpass

    with ctx.services.transaction() as session:
        row = event_service.discard(session, event_id, actor=f"cli:{getpass.getuser()}", reason=reason)
        data = event_service.event_as_dict(row)
    if as_json:
        echo_json(data)
    else:
        click.echo(f"Event {event_id} discarded.")


@hr_group.command("reconcile")
@click.option("--csv", "as_csv", is_flag=True, help="Print the findings as CSV (default: a table).")
@click.option("--alert", is_flag=True, help="Record critical audit events (mail the security officer).")
@json_option
@pass_ctx
def reconcile_command(ctx: Ctx, as_csv: bool, alert: bool, as_json: bool) -> None:
    """Directory against HR: orphans, enabled leavers, unexplained group memberships. Exit 2
    when a finding is critical."""
    from dataclasses import asdict

    if as_csv and as_json:
        raise click.UsageError("Give --csv or --json, not both.")
    findings = reports.reconcile(ctx.services, alert=alert)
    if as_json:
        echo_json([asdict(f) for f in findings])
    elif as_csv:
        click.echo(reports.findings_csv(findings), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Reconciliation: {len(findings)} finding(s)")
        for col in ("finding", "severity", "username", "employee", "detail"):
            table.add_column(col)
        for f in findings:
            style = "bold red" if f.severity == "critical" else None
            table.add_row(f.kind, f.severity, f.username, f.employee_number, f.detail, style=style)
        Console(width=160).print(table)
    if any(f.severity == "critical" for f in findings):
        sys.exit(2)


@hr_group.command("register")
@click.option("--pdf", "as_pdf", is_flag=True, help="Write a PDF to --out (default: CSV).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (PDF needs one)."
)
@json_option
@pass_ctx
def register_command(ctx: Ctx, as_pdf: bool, out: Path | None, as_json: bool) -> None:
    """Register of persons authorised to process personal data (PABIANICE §15), as CSV (default),
    JSON or PDF, on stdout or to --out FILE."""
    if as_pdf and as_json:
        raise click.UsageError("Give --pdf or --json, not both.")
    with ctx.services.reader() as session:
        rows = reports.register(session)
    if as_json:
        data = json.dumps(rows, indent=2)
    elif not as_pdf:
        data = reports.register_csv(rows)
    else:
        if out is None:
            fail(N_("A PDF needs --out FILE."))
        out.write_bytes(
            reports.register_pdf(
                rows,
                organisation=ctx.services.settings.organisation,
                t=i18n.translator(ctx.services.settings),
            )
        )
        click.echo(f"{len(rows)} person(s) written to {out}.")
        return
    if out:
        out.write_text(data, encoding="utf-8")
    else:
        click.echo(data, nl=False)


@hr_group.command("envelopes")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PDF file to write."
)
@json_option
@pass_ctx
def envelopes_command(ctx: Ctx, out: Path, as_json: bool) -> None:
    """Print the undelivered initial passwords as sealed-envelope sheets (then erased here).
    Exit 1 if there is none to print."""
    services = ctx.services
    with services.transaction() as session:
        items = delivery.envelopes(session, services, actor="cli")
        if not items:
            nothing(N_("There are no envelopes to print."))
        pdf = delivery.envelope_pdf(
            items,
            organisation=services.settings.organisation,
            issuer=services.settings.issuer,
            t=i18n.translator(services.settings),  # the organisation's default language
        )
        out.touch(mode=0o600)
        out.write_bytes(pdf)
    emit(
        as_json,
        {"envelopes": len(items), "file": str(out)},
        f"{len(items)} envelope(s) written to {out}; print, then delete the file.",
    )
