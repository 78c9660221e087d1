"""``iam pim …``: privileged roles, eligibility and elevations for operators.

Commands act as the operator at the console (trusted like a security officer). Commands that
act *for a person* (request, approve, deny, cancel, break-glass) take ``--as USERNAME``; the
same rules apply as on the pages (no self-approval, approvers only, the sign-in level given with
``--level`` is what the operator vouches for and is audited).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from iam.clitools import Ctx, emit, fail, json_option, pass_ctx
from iam.errors import NotFound
from iam.i18n import N_
from pim import service
from pim.roles import all_roles, load_dir, source
from pim.service import Actor


@click.group("pim")
def pim_group() -> None:
    """Privileged elevation: roles, eligibility, requests, approvals, detection."""


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


def _request_line(data: dict[str, Any]) -> str:
    left = data.get("remaining_seconds")
    tail = f" {left // 60} min left" if isinstance(left, int) else ""
    return f"{data['id']} {data['state']:<9} {data['role']:<20} {data['requester']}{tail}"


def _print_request(data: dict[str, Any], as_json: bool) -> None:
    emit(as_json, data, _request_line(data))


# -- roles ------------------------------------------------------------------------------------
@pim_group.group("roles")
def roles_group() -> None:
    """Privileged roles (files in pim.roles_dir, overridden by roles stored in the database)."""


@roles_group.command("list")
@json_option
@pass_ctx
def roles_list(ctx: Ctx, as_json: bool) -> None:
    """Every role, where it is defined (file or database), its groups and limits."""
    with ctx.services.transaction() as session:
        roles = all_roles(session, ctx.services, include_disabled=True)
        rows = [{**r.model_dump(), "source": source(session, ctx.services, r.name)} for r in roles.values()]
    emit(
        as_json,
        rows,
        (
            f"{r['name']:<24} {r['source']:<8} max {r['max_minutes']:>4} min  "
            + ("break-glass " if r["break_glass"] else "")
            + ("" if r["enabled"] else "disabled ")
            + f"groups: {', '.join(r['groups'])}"
            for r in rows
        ),
    )


@roles_group.command("show")
@click.argument("name")
@json_option
@pass_ctx
def roles_show(ctx: Ctx, name: str, as_json: bool) -> None:
    """One role's definition and where it comes from."""
    with ctx.services.transaction() as session:
        role = all_roles(session, ctx.services, include_disabled=True).get(name)
        if role is None:
            fail(f"There is no privileged role {name!r}.")
        data = {**role.model_dump(), "source": source(session, ctx.services, name)}
    emit(as_json, data, (f"{k:<24} {v}" for k, v in data.items()))


@roles_group.command("validate")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--offline", is_flag=True, help="Check the files only, not that their groups exist in the directory."
)
@json_option
@pass_ctx
def roles_validate(ctx: Ctx, directory: Path | None, offline: bool, as_json: bool) -> None:
    """Check every role file (exit 1 naming the file and key of the first error), then that
    every group each role names (granted groups, approver and eligible groups) exists in the
    directory (exit 1 listing each missing group with its role)."""
    from iam.directory.errors import DirectoryUnavailable
    from pim.service.accounts import missing_groups

    folder = directory or ctx.settings.pim.roles_dir
    roles = load_dir(folder, ctx.settings.pim)
    if offline:
        emit(
            as_json,
            {"folder": str(folder), "roles": sorted(roles), "groups_checked": False},
            f"{len(roles)} role(s) valid in {folder} (groups not checked).",
        )
        return
    try:
        problems = [(name, g) for name, role in roles.items() for g in missing_groups(ctx.services, role)]
    except DirectoryUnavailable:
        fail(N_("The directory cannot be reached to check the roles' groups (use --offline to skip this)."))
    for name, group in problems:
        click.echo(f"role {name}: group {group!r} does not exist in the directory", err=True)
    if problems:
        fail(f"{len(problems)} group(s) named by the roles in {folder} do not exist in the directory.")
    emit(
        as_json,
        {"folder": str(folder), "roles": sorted(roles), "groups_checked": True},
        f"{len(roles)} role(s) valid in {folder}; every group they name exists in the directory.",
    )


# -- eligibility ------------------------------------------------------------------------------
@pim_group.group("eligible")
def eligible_group() -> None:
    """Who may request a role."""


@eligible_group.command("add")
@click.argument("role")
@click.argument("username")
@click.option("--permanent", is_flag=True, help="A standing member, never reported (use sparingly).")
@json_option
@pass_ctx
def eligible_add(ctx: Ctx, role: str, username: str, permanent: bool, as_json: bool) -> None:
    """Make USERNAME eligible for ROLE; their separate admin account is prepared by the worker."""
    with ctx.services.transaction() as session:
        row = service.add_eligibility(
            session, ctx.services, actor=Actor.operator(), role=role, username=username, permanent=permanent
        )
        data = {"role": row.role, "username": row.username, "permanent": row.permanent, "eligible": True}
    emit(
        as_json,
        data,
        f"{username} is now {'a permanent member of' if permanent else 'eligible for'} {role}.",
    )


@eligible_group.command("remove")
@click.argument("role")
@click.argument("username")
@json_option
@pass_ctx
def eligible_remove(ctx: Ctx, role: str, username: str, as_json: bool) -> None:
    """USERNAME is no longer eligible for ROLE; a live elevation of it ends now."""
    with ctx.services.transaction() as session:
        service.remove_eligibility(
            session, ctx.services, actor=Actor.operator(), role=role, username=username
        )
    emit(
        as_json,
        {"role": role, "username": username, "eligible": False},
        f"{username} is no longer eligible for {role}.",
    )


# -- requests ---------------------------------------------------------------------------------
@pim_group.command("request")
@click.argument("role")
@click.option("--as", "as_user", required=True, help="The requester's username.")
@click.option("--minutes", type=int, default=None, help="How long (default: the role's default_minutes).")
@click.option("--justification", default="", help="Why (the role may require one).")
@click.option("--ticket", default=None, help="Change or incident ticket (the role may require one).")
@click.option("--level", default="mfa", show_default=True, help="Sign-in level the operator vouches for.")
@json_option
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
@click.option("--as", "as_user", required=True, help="The username of the person in need.")
@click.option("--justification", required=True, help="Why; reviewed afterwards.")
@click.option(
    "--level", default="smartcard", show_default=True, help="Sign-in level the operator vouches for."
)
@json_option
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
@click.option("--comment", default="", help="Kept with the decision and in the audit log.")
@click.option(
    "--level",
    default="mfa",
    show_default=True,
    help="Sign-in level the operator vouches for (deciding needs the role's level).",
)
@json_option
@pass_ctx
def approve_cmd(ctx: Ctx, request_id: str, as_user: str, comment: str, level: str, as_json: bool) -> None:
    """Approve a request as an approver of its role (never one's own)."""
    _decide(ctx, request_id, as_user, True, comment, level, as_json)


@pim_group.command("deny")
@click.argument("request_id")
@click.option("--as", "as_user", required=True, help="The approver's username.")
@click.option("--comment", default="", help="Kept with the decision and in the audit log.")
@click.option(
    "--level",
    default="mfa",
    show_default=True,
    help="Sign-in level the operator vouches for (deciding needs the role's level).",
)
@json_option
@pass_ctx
def deny_cmd(ctx: Ctx, request_id: str, as_user: str, comment: str, level: str, as_json: bool) -> None:
    """Deny a request as an approver of its role."""
    _decide(ctx, request_id, as_user, False, comment, level, as_json)


@pim_group.command("revoke")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (kept in the audit log).")
@json_option
@pass_ctx
def revoke_cmd(ctx: Ctx, request_id: str, reason: str, as_json: bool) -> None:
    """End an elevation now (as the operator)."""
    with ctx.services.transaction() as session:
        req = service.revoke(
            session, ctx.services, actor=Actor.operator(), request_id=request_id, reason=reason
        )
        data = service.request_dict(req)
    emit(as_json, data, f"Revoked {request_id}; access is being removed.")


@pim_group.command("cancel")
@click.argument("request_id")
@click.option("--reason", default="cancelled by operator", show_default=True, help="Kept in the audit log.")
@json_option
@pass_ctx
def cancel_cmd(ctx: Ctx, request_id: str, reason: str, as_json: bool) -> None:
    """Withdraw a request or end an elevation early."""
    with ctx.services.transaction() as session:
        req = service.cancel(
            session, ctx.services, actor=Actor.operator(), request_id=request_id, reason=reason
        )
        data = service.request_dict(req)
    emit(as_json, data, f"Cancelled {request_id}.")


@pim_group.command("status")
@json_option
@pass_ctx
def status_cmd(ctx: Ctx, as_json: bool) -> None:
    """Active elevations, pending requests, reviews due, open alerts."""
    with ctx.services.transaction() as session:
        data = service.overview(session, ctx.services, Actor.operator())
    lines: list[str] = []
    for title in ("failed", "active", "pending", "reviews_due"):
        lines.append(f"{title}: {len(data[title])}")
        lines += [_request_line(item) for item in data[title]]
    lines.append(f"alerts: {len(data['alerts'])}")
    lines += [f"  {a['id']} {a['kind']} {a['group'] or '-'} {a['account']}" for a in data["alerts"]]
    emit(as_json, data, lines)


@pim_group.command("detect")
@json_option
@pass_ctx
def detect_cmd(ctx: Ctx, as_json: bool) -> None:
    """Read the privileged groups now and alert on members not backed by PIM."""
    from pim.service.directory import detect

    new = detect(ctx.services)
    emit(as_json, {"new_alerts": new}, f"{len(new)} new alert(s).")


@pim_group.command("sweep")
@json_option
@pass_ctx
def sweep_cmd(ctx: Ctx, as_json: bool) -> None:
    """End every overdue elevation and lapse stale requests now (the worker does this too, every
    pim.sweep_interval seconds; finding nothing overdue is not an error)."""
    with ctx.services.transaction() as session:
        done = service.sweep(session, ctx.services)
    emit(as_json, done, f"{done['expired']} expired, {done['lapsed']} lapsed.")


@pim_group.group("shared")
def shared_group() -> None:
    """Shared administrator accounts, rotated when a holder leaves (R-PIM-5)."""


@shared_group.command("add")
@click.argument("username")
@click.option(
    "--role", "roles", multiple=True, required=True, help="People eligible for it may use the account."
)
@json_option
@pass_ctx
def shared_add(ctx: Ctx, username: str, roles: tuple[str, ...], as_json: bool) -> None:
    """Register the shared administrator account USERNAME; its password is rotated at once."""
    with ctx.services.transaction() as session:
        row = service.add_shared(
            session, ctx.services, actor=Actor.operator(), username=username, roles=list(roles)
        )
        data = {"username": row.username, "roles": list(row.roles), "rotation_queued": True}
    emit(as_json, data, f"{username} registered; its password is being rotated.")


@shared_group.command("rotate")
@click.argument("username")
@json_option
@pass_ctx
def shared_rotate(ctx: Ctx, username: str, as_json: bool) -> None:
    """Give the shared account USERNAME a new random password now (queued for the worker)."""
    from pim.models import SharedAccount
    from pim.service.accounts import request_rotation

    with ctx.services.transaction() as session:
        if session.get(SharedAccount, username) is None:
            fail(f"There is no shared account {username!r}.")
        request_rotation(session, username=username, reason="operator")
    emit(as_json, {"username": username, "rotation_queued": True}, f"Rotation of {username} queued.")


__all__ = ["pim_group"]
