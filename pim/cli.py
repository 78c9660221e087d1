"""``iam pim …``: privileged roles, eligibility and elevations for operators.

Commands act as the operator at the console (trusted like a security officer). Commands that
act *for a person* (request, approve, deny, cancel, break-glass) take ``--as USERNAME``; the
same rules apply as on the pages (no self-approval, approvers only, the sign-in level given with
``--level`` is what the operator vouches for and is audited).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from iam.cli import Ctx, echo_json, pass_ctx
from iam.errors import NotFound
from pim import service
from pim.roles import all_roles, load_dir, source
from pim.service import Actor


@click.group("pim")
def pim_group() -> None:
    """Privileged elevation: roles, eligibility, requests, approvals, detection."""


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _person(ctx: Ctx, username: str, level: str) -> Actor:
    from iam.identities import find_identity, upsert_identity

    svc = ctx.services
    with svc.transaction() as session:
        identity = find_identity(session, username)
        if identity is None:
            user = svc.directory.find_user(username=username)
            if user is None:
                raise NotFound("There is no such user in the directory.")
            identity = upsert_identity(session, user, kind=svc.directory.kind)
        if level not in svc.settings.pim.levels:
            raise click.BadParameter(f"--level must be one of {', '.join(svc.settings.pim.levels)}")
        return Actor(sub=identity.sub, username=identity.username, level=level, user_agent="iam-cli")


def _print_request(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(data)
        return
    left = data.get("remaining_seconds")
    tail = f" {left // 60} min left" if isinstance(left, int) else ""
    click.echo(f"{data['id']} {data['state']:<9} {data['role']:<20} {data['requester']}{tail}")


# -- roles ------------------------------------------------------------------------------------
@pim_group.group("roles")
def roles_group() -> None:
    """Privileged roles (files in pim.roles_dir, overridden by roles stored in the database)."""


@roles_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def roles_list(ctx: Ctx, as_json: bool) -> None:
    with ctx.services.transaction() as session:
        roles = all_roles(session, ctx.services, include_disabled=True)
        rows = [{**r.model_dump(), "source": source(session, ctx.services, r.name)} for r in roles.values()]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        flags = ("break-glass " if r["break_glass"] else "") + ("" if r["enabled"] else "disabled ")
        groups = ", ".join(r["groups"])
        click.echo(f"{r['name']:<24} {r['source']:<8} max {r['max_minutes']:>4} min  {flags}groups: {groups}")


@roles_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def roles_show(ctx: Ctx, name: str, as_json: bool) -> None:
    with ctx.services.transaction() as session:
        role = all_roles(session, ctx.services, include_disabled=True).get(name)
        if role is None:
            _fail("There is no such privileged role.")
            return
        data = {**role.model_dump(), "source": source(session, ctx.services, name)}
    if as_json:
        echo_json(data)
    else:
        for k, v in data.items():
            click.echo(f"{k:<24} {v}")


@roles_group.command("validate")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--offline", is_flag=True, help="Check the files only, not that their groups exist in the directory."
)
@pass_ctx
def roles_validate(ctx: Ctx, directory: Path | None, offline: bool) -> None:
    """Check every role file (exit 1 naming the file and key of the first error), then that
    every group each role names (granted groups, approver and eligible groups) exists in the
    directory (exit 1 listing each missing group with its role)."""
    from iam.directory.errors import DirectoryUnavailable
    from pim.service.accounts import missing_groups

    folder = directory or ctx.settings.pim.roles_dir
    roles = load_dir(folder, ctx.settings.pim)
    if offline:
        click.echo(f"{len(roles)} role(s) valid in {folder} (groups not checked).")
        return
    try:
        problems = [(name, g) for name, role in roles.items() for g in missing_groups(ctx.services, role)]
    except DirectoryUnavailable:
        _fail("The directory cannot be reached to check the roles' groups (use --offline to skip this).")
        return
    for name, group in problems:
        click.echo(f"role {name}: group {group!r} does not exist in the directory", err=True)
    if problems:
        _fail(f"{len(problems)} group(s) named by the roles in {folder} do not exist in the directory.")
        return
    click.echo(f"{len(roles)} role(s) valid in {folder}; every group they name exists in the directory.")


# -- eligibility ------------------------------------------------------------------------------
@pim_group.group("eligible")
def eligible_group() -> None:
    """Who may request a role."""


@eligible_group.command("add")
@click.argument("role")
@click.argument("username")
@click.option("--permanent", is_flag=True, help="A standing member, never reported (use sparingly).")
@pass_ctx
def eligible_add(ctx: Ctx, role: str, username: str, permanent: bool) -> None:
    with ctx.services.transaction() as session:
        service.add_eligibility(
            session, ctx.services, actor=Actor.operator(), role=role, username=username, permanent=permanent
        )
    click.echo(f"{username} is now {'a permanent member of' if permanent else 'eligible for'} {role}.")


@eligible_group.command("remove")
@click.argument("role")
@click.argument("username")
@pass_ctx
def eligible_remove(ctx: Ctx, role: str, username: str) -> None:
    with ctx.services.transaction() as session:
        service.remove_eligibility(
            session, ctx.services, actor=Actor.operator(), role=role, username=username
        )
    click.echo(f"{username} is no longer eligible for {role}.")


# -- requests ---------------------------------------------------------------------------------
@pim_group.command("request")
@click.argument("role")
@click.option("--as", "as_user", required=True, help="The requester's username.")
@click.option("--minutes", type=int, default=None)
@click.option("--justification", default="")
@click.option("--ticket", default=None)
@click.option("--level", default="mfa", show_default=True, help="Sign-in level the operator vouches for.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def request_cmd(
    ctx: Ctx,
    role: str,
    as_user: str,
    minutes: int | None,
    justification: str,
    ticket: str | None,
    level: str,
    as_json: bool,
) -> None:
    """Request ROLE for a person."""
    actor = _person(ctx, as_user, level)
    with ctx.services.transaction() as session:
        req = service.request_elevation(
            session,
            ctx.services,
            actor=actor,
            role=role,
            minutes=minutes,
            justification=justification,
            ticket=ticket,
        )
        data = service.request_dict(req)
    _print_request(data, as_json)


@pim_group.command("break-glass")
@click.argument("role")
@click.option("--as", "as_user", required=True)
@click.option("--justification", required=True)
@click.option("--level", default="smartcard", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def break_glass_cmd(ctx: Ctx, role: str, as_user: str, justification: str, level: str, as_json: bool) -> None:
    """Emergency activation of a break-glass ROLE (alerts the security officers)."""
    actor = _person(ctx, as_user, level)
    with ctx.services.transaction() as session:
        req = service.break_glass(session, ctx.services, actor=actor, role=role, justification=justification)
        data = service.request_dict(req)
    _print_request(data, as_json)


def _decide(ctx: Ctx, rid: str, as_user: str, approve: bool, comment: str, level: str, as_json: bool) -> None:
    actor = _person(ctx, as_user, level)
    with ctx.services.transaction() as session:
        req = service.decide(
            session, ctx.services, actor=actor, request_id=rid, approve=approve, comment=comment
        )
        data = service.request_dict(req)
    _print_request(data, as_json)


@pim_group.command("approve")
@click.argument("request_id")
@click.option("--as", "as_user", required=True, help="The approver's username.")
@click.option("--comment", default="")
@click.option(
    "--level",
    default="mfa",
    show_default=True,
    help="Sign-in level the operator vouches for (deciding needs the role's level).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def approve_cmd(ctx: Ctx, request_id: str, as_user: str, comment: str, level: str, as_json: bool) -> None:
    _decide(ctx, request_id, as_user, True, comment, level, as_json)


@pim_group.command("deny")
@click.argument("request_id")
@click.option("--as", "as_user", required=True, help="The approver's username.")
@click.option("--comment", default="")
@click.option(
    "--level",
    default="mfa",
    show_default=True,
    help="Sign-in level the operator vouches for (deciding needs the role's level).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def deny_cmd(ctx: Ctx, request_id: str, as_user: str, comment: str, level: str, as_json: bool) -> None:
    _decide(ctx, request_id, as_user, False, comment, level, as_json)


@pim_group.command("revoke")
@click.argument("request_id")
@click.option("--reason", required=True)
@pass_ctx
def revoke_cmd(ctx: Ctx, request_id: str, reason: str) -> None:
    """End an elevation now (as the operator)."""
    with ctx.services.transaction() as session:
        service.revoke(session, ctx.services, actor=Actor.operator(), request_id=request_id, reason=reason)
    click.echo("Revoked; access is being removed.")


@pim_group.command("cancel")
@click.argument("request_id")
@click.option("--reason", default="cancelled by operator")
@pass_ctx
def cancel_cmd(ctx: Ctx, request_id: str, reason: str) -> None:
    """Withdraw a request or end an elevation early."""
    with ctx.services.transaction() as session:
        service.cancel(session, ctx.services, actor=Actor.operator(), request_id=request_id, reason=reason)
    click.echo("Cancelled.")


@pim_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status_cmd(ctx: Ctx, as_json: bool) -> None:
    """Active elevations, pending requests, reviews due, open alerts."""
    with ctx.services.transaction() as session:
        data = service.overview(session, ctx.services, Actor.operator())
    if as_json:
        echo_json(data)
        return
    for title in ("failed", "active", "pending", "reviews_due"):
        click.echo(f"{title}: {len(data[title])}")
        for item in data[title]:
            _print_request(item, False)
    click.echo(f"alerts: {len(data['alerts'])}")
    for a in data["alerts"]:
        click.echo(f"  {a['id']} {a['kind']} {a['group'] or '-'} {a['account']}")


@pim_group.command("detect")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def detect_cmd(ctx: Ctx, as_json: bool) -> None:
    """Read the privileged groups now and alert on members not backed by PIM."""
    from pim.service.directory import detect

    new = detect(ctx.services)
    if as_json:
        echo_json({"new_alerts": new})
    else:
        click.echo(f"{len(new)} new alert(s).")


@pim_group.command("sweep")
@pass_ctx
def sweep_cmd(ctx: Ctx) -> None:
    """End every overdue elevation and lapse stale requests now (the worker does this too)."""
    with ctx.services.transaction() as session:
        done = service.sweep(session, ctx.services)
    click.echo(f"{done['expired']} expired, {done['lapsed']} lapsed.")


@pim_group.group("shared")
def shared_group() -> None:
    """Shared administrator accounts, rotated when a holder leaves (R-PIM-5)."""


@shared_group.command("add")
@click.argument("username")
@click.option(
    "--role", "roles", multiple=True, required=True, help="People eligible for it may use the account."
)
@pass_ctx
def shared_add(ctx: Ctx, username: str, roles: tuple[str, ...]) -> None:
    with ctx.services.transaction() as session:
        service.add_shared(
            session, ctx.services, actor=Actor.operator(), username=username, roles=list(roles)
        )
    click.echo(f"{username} registered; its password is being rotated.")


@shared_group.command("rotate")
@click.argument("username")
@pass_ctx
def shared_rotate(ctx: Ctx, username: str) -> None:
    from pim.service.accounts import request_rotation

    with ctx.services.transaction() as session:
        request_rotation(session, username=username, reason="operator")
    click.echo("Rotation queued.")


__all__ = ["pim_group"]
