"""``iam review …``: campaign definitions, campaigns (start with dry run and a progress bar,
status, close, extend, remind, apply, verify, report), a reviewer's items and decisions."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click
from sqlalchemy import select

from iam.clitools import Ctx, echo_json, emit, fail, json_option, pass_ctx
from iam.i18n import N_
from provisioning.reviews import definitions as defs
from provisioning.reviews.models import Campaign
from provisioning.reviews.service import campaigns, decisions, remediation, report
from provisioning.reviews.service.decisions import Filter, Reviewer


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


@click.group("review")
def review_group() -> None:
    """Access reviews: campaigns, reviewers' decisions and the auditor's report."""


@review_group.group("definitions")
def definitions_group() -> None:
    """Campaign definitions (policies/reviews/*.toml)."""


@definitions_group.command("list")
@json_option
@pass_ctx
def definitions_list(ctx: Ctx, as_json: bool) -> None:
    """List the campaign definitions."""
    found = defs.definitions(ctx.services)
    if as_json:
        echo_json({name: d.model_dump(mode="json") for name, d in found.items()})
        return
    for name, d in found.items():
        every = f"every {d.recurrence_months} months" if d.recurrence_months else "on demand"
        events = f", on {', '.join(d.events)}" if d.events else ""
        stages = " then ".join(s.reviewer for s in d.stages)
        warn = "  (!) unanswered items are REVOKED" if d.revoke_warning else ""
        click.echo(
            f"{name:12} {d.title} — scope {d.scope.kind}, {every}{events}; {stages}; "
            f"unanswered: {d.default_outcome}{warn}"
        )


@definitions_group.command("validate")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_ctx
def definitions_validate(ctx: Ctx, directory: Path | None, as_json: bool) -> None:
    """Check every definition file (DIRECTORY, default reviews.definitions_dir); exit 1 naming
    the file and key of the first error."""
    found = defs.load_dir(directory or ctx.settings.reviews.definitions_dir)
    if not found:
        fail(N_("No review definition files found."))
    emit(as_json, {"valid": list(found)}, f"{len(found)} definition(s) valid: {', '.join(found)}")


@review_group.group("campaign")
def campaign_group() -> None:
    """Start, follow and close campaigns."""


@campaign_group.command("start")
@click.argument("definition")
@click.option("--dry-run", is_flag=True, help="Count persons, items and reviewers; store nothing.")
@json_option
@pass_ctx
def campaign_start(ctx: Ctx, definition: str, dry_run: bool, as_json: bool) -> None:
    """Start a campaign of DEFINITION now (reads the directory once, assigns reviewers)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    services = ctx.services
    d = defs.get(services, definition)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        transient=True,
        disable=as_json or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("reading the directory…")

        def tick(n: int) -> None:
            if n % 1000 == 0:
                bar.update(task, description=f"{n} items")

        with services.transaction() as session:
            result = campaigns.start(
                services, session, definition=d, actor=_operator(), dry_run=dry_run, progress=tick
            )
    if as_json:
        echo_json(result)
        return
    verb = "Would create" if dry_run else f"Started campaign {result.get('id')} with"
    click.echo(f"{verb} {result['items']} item(s) for {result['persons']} person(s), due {result['due_at']}.")
    for reviewer, n in result["reviewers"].items():
        click.echo(f"  {reviewer}: {n}")


@campaign_group.command("list")
@json_option
@pass_ctx
def campaign_list(ctx: Ctx, as_json: bool) -> None:
    """List campaigns, newest first."""
    with ctx.services.reader() as session:
        rows = session.scalars(select(Campaign).order_by(Campaign.started_at.desc()).limit(200)).all()
        data = [
            {
                "id": c.id,
                "definition": c.definition,
                "trigger": c.trigger,
                "status": c.status,
                "stage": c.stage,
                "items": c.items_total,
                "started_at": c.started_at.isoformat(),
                "due_at": c.due_at.isoformat(),
            }
            for c in rows
        ]
    if as_json:
        echo_json(data)
        return
    if not data:
        click.echo("No campaigns yet.")
    for c in data:
        click.echo(
            f"{c['id']}  {c['definition']:12} {c['status']:6} stage {c['stage']} "
            f"{c['items']:>7} items  due {c['due_at']}"
        )


@campaign_group.command("status")
@click.argument("campaign_id")
@json_option
@pass_ctx
def campaign_status(ctx: Ctx, campaign_id: str, as_json: bool) -> None:
    """Progress of a campaign by reviewer and department."""
    with ctx.services.reader() as session:
        info = report.summary(session, campaigns.get(session, campaign_id))
    if as_json:
        echo_json(info)
        return
    click.echo(
        f"{info['title']} ({info['status']}, stage {info['stage']}/{info['stages']}), due {info['due_at']}"
    )
    click.echo(f"Items {info['items']}: {info['decisions']}; unanswered get: {info['default_outcome']}")
    for reviewer, counts in info["reviewers"].items():
        click.echo(f"  {reviewer}: {counts.get('decided', 0)} decided, {counts.get('open', 0)} open")


@campaign_group.command("close")
@click.argument("campaign_id")
@json_option
@pass_ctx
def campaign_close(ctx: Ctx, campaign_id: str, as_json: bool) -> None:
    """Close now: unanswered items get the campaign's default outcome; revocations are queued."""
    with ctx.services.transaction() as session:
        result = campaigns.close(ctx.services, session, campaign_id=campaign_id, actor=_operator())
    emit(as_json, {"campaign": campaign_id, **result}, f"Closed {campaign_id}: {result}")


@campaign_group.command("extend")
@click.argument("campaign_id")
@click.option("--days", type=int, required=True, help="Days to add to the deadline (1-90).")
@json_option
@pass_ctx
def campaign_extend(ctx: Ctx, campaign_id: str, days: int, as_json: bool) -> None:
    """Move the deadline of the current stage."""
    with ctx.services.transaction() as session:
        c = campaigns.extend(session, campaign_id=campaign_id, days=days, actor=_operator())
        due = c.due_at.isoformat()
    emit(as_json, {"campaign": campaign_id, "due_at": due}, f"{campaign_id} is now due {due}.")


@campaign_group.command("remind")
@click.argument("campaign_id")
@json_option
@pass_ctx
def campaign_remind(ctx: Ctx, campaign_id: str, as_json: bool) -> None:
    """Mail every reviewer who still has open items."""
    with ctx.services.transaction() as session:
        sent = campaigns.remind(ctx.services, session, campaigns.get(session, campaign_id), actor=_operator())
    emit(as_json, {"campaign": campaign_id, "mails": sent}, f"{sent} reminder(s) queued.")


@campaign_group.command("apply")
@click.argument("campaign_id")
@json_option
@pass_ctx
def campaign_apply(ctx: Ctx, campaign_id: str, as_json: bool) -> None:
    """Queue the settled revocations (for definitions with auto_apply = false)."""
    with ctx.services.transaction() as session:
        n = remediation.apply(session, campaign_id=campaign_id, actor=_operator())
    emit(as_json, {"campaign": campaign_id, "queued": n}, f"{n} revocation(s) queued for the worker.")


@campaign_group.command("verify")
@click.argument("campaign_id")
@json_option
@pass_ctx
def campaign_verify(ctx: Ctx, campaign_id: str, as_json: bool) -> None:
    """Read the directory back: is every revoked right gone? Exit 1 if not."""
    with ctx.services.transaction() as session:
        result = remediation.verify(ctx.services, session, campaign_id=campaign_id, actor=_operator())
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"{result['checked']} remediation(s) read back; {len(result['still_present'])} still present."
        )
        for row in result["still_present"]:
            click.echo(f"  still present: {row['account']} in {row['resource']} (item {row['item']})")
    if result["still_present"]:
        sys.exit(1)


@campaign_group.command("report")
@click.argument("campaign_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", help="Report format.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@json_option
@pass_ctx
def campaign_report(ctx: Ctx, campaign_id: str, fmt: str, output: Path | None, as_json: bool) -> None:
    """The auditor's report (every item, decision, remediation); its SHA-256 is audited."""
    with ctx.services.transaction() as session:
        data, digest = report.report(
            ctx.services, session, campaign_id=campaign_id, fmt=fmt, actor=_operator()
        )
    if output:
        output.write_bytes(data)
        emit(
            as_json,
            {"output": str(output), "sha256": digest, "format": fmt},
            f"Wrote {output} (sha256 {digest}).",
        )
    elif as_json:
        fail(N_("With --json, name the report file: add --output FILE."))
    elif fmt == "pdf" and sys.stdout.isatty():
        fail(N_("A PDF goes to a file: add --output FILE."))
    else:
        sys.stdout.buffer.write(data)


@review_group.command("items")
@click.option("--reviewer", "reviewer", required=True, help="Username of the reviewer.")
@click.option("--campaign", default=None, help="Only this campaign.")
@click.option("--all", "show_all", is_flag=True, help="Also decided items (until their stage closes).")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, help="At most this many items.")
@json_option
@pass_ctx
def items_command(
    ctx: Ctx, reviewer: str, campaign: str | None, show_all: bool, limit: int, as_json: bool
) -> None:
    """A reviewer's open items."""
    services = ctx.services
    with services.reader() as session:
        rows, total = decisions.inbox(
            services,
            session,
            Reviewer(username=reviewer),
            Filter(campaign=campaign, open_only=not show_all),
            limit=limit,
        )
        data = [decisions.item_dict(r) for r in rows]
    if as_json:
        echo_json({"total": total, "items": data})
        return
    if not data and not as_json:
        click.echo(f"{reviewer} has no open review items.")
    for i in data:
        via = f" via {' > '.join(i['via'])}" if i["via"] else ""
        click.echo(
            f"{i['id']:>8}  {i['person']:16} {i['account']:16} {i['kind']:15} {i['resource']}{via}  "
            f"[{i['decision'] or 'open'}; recommend {i['recommendation']}: {i['recommendation_reason']}]"
        )
    if total > len(data):
        click.echo(f"… {total - len(data)} more (use --limit).")


@review_group.command("decide")
@click.argument("items", nargs=-1, type=int, required=True)
@click.argument("decision", type=click.Choice(["approve", "revoke", "reduce"]))
@click.option("--as", "as_user", required=True, help="The reviewer deciding (their username).")
@click.option("--comment", default="", help="Required to revoke or reduce, and to keep privileged access.")
@click.option("--reduce-to", default=None, help="With reduce: the lesser group to keep instead.")
@json_option
@pass_ctx
def decide_command(
    ctx: Ctx,
    items: tuple[int, ...],
    decision: str,
    as_user: str,
    comment: str,
    reduce_to: str | None,
    as_json: bool,
) -> None:
    """Decide on ITEMS (ids) as reviewer --as: approve, revoke or reduce."""
    services = ctx.services
    with services.transaction() as session:
        done = decisions.decide(
            services,
            session,
            reviewer=Reviewer(username=as_user),
            items=list(items),
            decision=decision,
            comment=comment,
            reduce_to=reduce_to,
        )
    emit(as_json, {"decided": done, "decision": decision}, f"{len(done)} item(s): {decision}.")


@review_group.command("delegate")
@click.argument("items", nargs=-1, type=int, required=True)
@click.option("--as", "as_user", required=True, help="The current reviewer (or a security officer).")
@click.option("--to", "to", required=True, help="Who reviews these items instead.")
@click.option("--comment", default="", help="Why (kept in the audit log).")
@json_option
@pass_ctx
def delegate_command(
    ctx: Ctx, items: tuple[int, ...], as_user: str, to: str, comment: str, as_json: bool
) -> None:
    """Hand ITEMS to another reviewer (audited)."""
    services = ctx.services
    with services.transaction() as session:
        done = decisions.delegate(
            services, session, reviewer=Reviewer(username=as_user), items=list(items), to=to, comment=comment
        )
    emit(as_json, {"delegated": done, "to": to}, f"{len(done)} item(s) now with {to}.")
