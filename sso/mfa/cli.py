"""``iam mfa …``: administrators' commands for second factors."""

from __future__ import annotations

import click

from iam.clitools import Ctx, echo_json, fail, json_option, pass_ctx
from sso.mfa import service as mfa


@click.group("mfa")
def mfa_group() -> None:
    """Second factors (authenticator apps, recovery codes) and levels of assurance."""


def _sub(ctx: Ctx, session: object, user: str) -> str:
    sub = mfa.resolve_user(session, ctx.services.directory, user)  # type: ignore[arg-type]
    if sub is None:
        fail(f"There is no user {user!r}.")
    return sub


@mfa_group.command("status")
@click.argument("user")
@json_option
@pass_ctx
def mfa_status(ctx: Ctx, user: str, as_json: bool) -> None:
    """Show USER's second factors (username, UPN or sub); never a secret."""
    with ctx.services.transaction() as session:
        data = mfa.status(session, _sub(ctx, session, user))
    if as_json:
        echo_json(data)
        return
    totp = data["totp"]
    click.echo(f"user {user} (sub {data['sub']})")
    click.echo(f"  authenticator app: {'confirmed ' + str(totp['confirmed_at']) if totp else 'none'}")  # type: ignore[index]
    click.echo(f"  recovery codes left: {data['recovery_codes_left']}")
    if data["throttled_until"]:
        click.echo(f"  code entry blocked until {data['throttled_until']}")


@mfa_group.command("reset")
@click.argument("user")
@click.option("--reason", default="", help="Why (e.g. the help-desk ticket); kept in the audit trail.")
@click.option("--end-sessions", is_flag=True, help="Also sign the user out everywhere (stolen phone).")
@json_option
@pass_ctx
def mfa_reset(ctx: Ctx, user: str, reason: str, end_sessions: bool, as_json: bool) -> None:
    """Remove USER's authenticator app and recovery codes and lift the code throttle (lost
    phone). Audited as a critical event; the user sets up a new app at the next sign-in."""
    with ctx.services.transaction() as session:
        data = mfa.admin_reset(
            session, sub=_sub(ctx, session, user), actor="cli", reason=reason, end_sessions=end_sessions
        )
    if as_json:
        echo_json(data)
        return
    what = "authenticator app and recovery codes removed" if data["had_totp"] else "had no authenticator app"
    ended = f"; {data['sessions_ended']} session(s) ended" if end_sessions else ""
    click.echo(f"{user}: {what}; code throttle lifted{ended}.")


@mfa_group.command("levels")
@json_option
@pass_ctx
def mfa_levels(ctx: Ctx, as_json: bool) -> None:
    """The configured levels of assurance (acr), lowest first, and the groups that need one."""
    m = ctx.settings.mfa
    data = {
        "levels": [{"name": lvl.name, "amr": lvl.amr} for lvl in m.levels],
        "group_levels": m.group_levels,
    }
    if as_json:
        echo_json(data)
        return
    for lvl in m.levels:
        click.echo(f"{lvl.name:<12} reached by " + " or ".join("+".join(s) for s in lvl.amr))
    for group, level in sorted(m.group_levels.items()):
        click.echo(f"group {group!r} needs {level}")
