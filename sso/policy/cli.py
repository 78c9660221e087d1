"""``iam policy acceptances`` and ``iam policy text``: the security policy people accept at
sign-in (R-SSO-6). They join the core's ``iam policy`` group (the password policy's ``show``,
``test``, ``check``): one group for the organisation's policies."""

from __future__ import annotations

import click

from iam.clitools import Ctx, emit, fail, json_option, pass_ctx
from iam.errors import ConfigError
from sso.policy import service as policy


@click.command("text")
@click.option("--language", default=None, help="Language tag of the text (default: the first configured).")
@json_option
@pass_ctx
def policy_text(ctx: Ctx, language: str | None, as_json: bool) -> None:
    """Show the security policy people accept at sign-in: its current version and text."""
    try:
        current = policy.load(ctx.settings, language)
    except ConfigError as exc:
        fail(str(exc))
    data = {
        "version": current.version,
        "language": current.language,
        "required": ctx.settings.policy.required,
        "text": current.markdown,
    }
    emit(as_json, data, [f"Version {current.version} ({current.language})", "", current.markdown])


@click.command("acceptances")
@click.option("--pending", "only_pending", is_flag=True, help="Only who has not accepted the current one.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (the same as the report page's download).")
@json_option
@pass_ctx
def policy_acceptances(ctx: Ctx, only_pending: bool, as_csv: bool, as_json: bool) -> None:
    """Who accepted which version of the security policy, and who has not accepted the current
    one (every known, enabled account)."""
    try:
        with ctx.services.transaction() as session:
            current, rows = policy.report(session, ctx.settings)
    except ConfigError as exc:
        fail(str(exc))
    if only_pending:
        rows = [r for r in rows if not r.accepted_current]
    if as_csv:
        click.echo(policy.report_csv(current, rows), nl=False)
        return
    accepted = sum(1 for r in rows if r.accepted_current)
    data = {
        "current_version": current,
        "accepted": accepted,
        "not_accepted": len(rows) - accepted,
        "people": [r.as_dict() for r in rows],
    }
    lines = [f"Current version {current[:12]}: {accepted} accepted, {len(rows) - accepted} not."]
    for r in rows:
        state = "accepted" if r.accepted_current else "NOT ACCEPTED"
        when = r.accepted_at.isoformat(timespec="minutes") if r.accepted_at else "-"
        lines.append(f"{r.username:<24} {state:<13} {(r.version or '-')[:12]:<13} {when} {r.language or ''}")
    emit(as_json, data, lines)


def register(cli: click.Group) -> None:
    """Add the commands to ``iam policy`` (or to a group of that name of their own)."""
    group = cli.commands.get("policy")
    if not isinstance(group, click.Group):
        group = click.Group("policy", help="The organisation's policies.")
        cli.add_command(group)
    group.add_command(policy_text)
    group.add_command(policy_acceptances)
