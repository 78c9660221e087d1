"""``iam access …``: the catalogue of requestable rights (list, validate against AD), requests
(list, show, decide as a named person), the working calendar, and a pass over deadlines."""

from __future__ import annotations

import datetime as dt

import click
from sqlalchemy import select

from iam import clock
from iam.clitools import Ctx, echo_json, emit, fail, json_option, nothing, pass_ctx
from iam.errors import ConfigError, Conflict, Forbidden, NotFound, ValidationFailed
from provisioning.requests import catalogue
from provisioning.requests.calendar import WorkingCalendar
from provisioning.requests.models import AccessRequest
from provisioning.requests.service import deciding
from provisioning.requests.service.common import Actor, get, summary


@click.group("access")
def access_group() -> None:
    """Access requests: the catalogue of requestable rights, requests and their decisions."""


@access_group.group("catalogue")
def catalogue_group() -> None:
    """The catalogue of requestable rights (requests.catalogue_file)."""


@catalogue_group.command("list")
@json_option
@pass_ctx
def catalogue_list(ctx: Ctx, as_json: bool) -> None:
    """List the requestable rights with their group, approval chain and maximum duration."""
    items = catalogue.catalogue(ctx.services)
    if as_json:
        echo_json({n: i.model_dump(mode="json") for n, i in items.items()})
        return
    if not items:
        nothing("The catalogue of requestable rights is empty.")
    for i in items.values():
        days = f"at most {i.max_days} days" if i.max_days else "no end"
        click.echo(f"{i.name:20} {i.group:28} {' → '.join(i.chain)}; {days}; SoD: {i.sod}")


@catalogue_group.command("validate")
@json_option
@pass_ctx
def catalogue_validate(ctx: Ctx, as_json: bool) -> None:
    """Check the catalogue file, and that every group and owner it names exists in the
    directory (exit 1 when something is missing)."""
    try:
        items = catalogue.catalogue(ctx.services)
    except ConfigError as exc:
        fail(str(exc))
    problems = catalogue.validate(ctx.services)
    data = {"items": len(items), "problems": problems}
    if problems:
        if as_json:
            echo_json(data)
        fail(f"{len(problems)} problem(s): " + "; ".join(f"{p['item']}: {p['problem']}" for p in problems))
    emit(as_json, data, f"{len(items)} requestable right(s); every group exists in the directory.")


@access_group.command("list")
@click.option("--status", help="Only requests in this status (pending, approved, granted, refused, …).")
@json_option
@pass_ctx
def request_list(ctx: Ctx, status: str | None, as_json: bool) -> None:
    """List access requests, newest first."""
    with ctx.services.reader() as session:
        q = select(AccessRequest).order_by(AccessRequest.id.desc()).limit(500)
        if status:
            q = q.where(AccessRequest.status == status)
        data = [summary(r) for r in session.scalars(q)]
    if as_json:
        echo_json(data)
        return
    if not data:
        nothing("No access requests.")
    for r in data:
        waiting = (
            f" waits for {r['approver']} ({r['step_name']}) until {r['step_due_at']}"
            if r["status"] == "pending"
            else ""
        )
        click.echo(f"{r['id']:>6} {r['person']:20} {r['item']:20} {r['status']:9}{waiting}")


@access_group.command("show")
@click.argument("request_id", type=int)
@json_option
@pass_ctx
def request_show(ctx: Ctx, request_id: int, as_json: bool) -> None:
    """Show one request with its decisions."""
    with ctx.services.reader() as session:
        try:
            data = summary(get(session, request_id))
        except NotFound as exc:
            fail(str(exc))
    emit(
        as_json,
        data,
        [f"{k}: {v}" for k, v in data.items() if k != "history"]
        + [f"  {h['step']}: {h['decision']} by {h['by']} — {h.get('comment', '')}" for h in data["history"]],
    )


@access_group.command("decide")
@click.argument("request_id", type=int)
@click.option("--as", "username", required=True, help="Username of the approver deciding (their step).")
@click.option(
    "--outcome",
    type=click.Choice(["grant", "grant_reduced", "refuse"]),
    required=True,
    help="grant (next step, or the grant at the last), grant_reduced (a lesser item), refuse.",
)
@click.option("--comment", required=True, help="Why (every outcome carries a comment).")
@click.option("--reduce-to", help="The lesser catalogue item, with --outcome grant_reduced.")
@json_option
@pass_ctx
def request_decide(
    ctx: Ctx, request_id: int, username: str, outcome: str, comment: str, reduce_to: str | None, as_json: bool
) -> None:
    """Record the decision of the approver USERNAME on the step waiting for them (e.g. an
    opinion given on paper and entered by the officer's office)."""
    services = ctx.services
    user = services.directory.find_user(username=username)
    if user is None:
        fail(f"No directory user named {username!r}.")
    try:
        with services.transaction() as session:
            req = deciding.decide(
                services,
                session,
                request_id=request_id,
                actor=Actor(username=user.username, sub=user.id, ip="cli"),
                outcome=outcome,
                comment=comment,
                reduce_to=reduce_to,
            )
            data = summary(req)
    except (ValidationFailed, Conflict, Forbidden, NotFound, ConfigError) as exc:
        fail(str(exc))
    emit(as_json, data, f"Request {data['id']}: {data['status']}.")


@access_group.command("tick")
@json_option
@pass_ctx
def request_tick(ctx: Ctx, as_json: bool) -> None:
    """Run one pass over deadlines now (reminders and escalation; the worker does it every
    requests.tick_interval)."""
    with ctx.services.transaction() as session:
        done = deciding.tick(ctx.services, session)
    emit(as_json, done, f"{done['reminded']} reminded, {done['escalated']} escalated.")


@access_group.command("calendar")
@click.option("--days", default=3, show_default=True, help="Working days from today.")
@click.option(
    "--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="Count from this day (default: today)."
)
@json_option
@pass_ctx
def calendar(ctx: Ctx, days: int, start: dt.datetime | None, as_json: bool) -> None:
    """When a deadline of DAYS working days ends, and which days in between are not working days."""
    try:
        cal = WorkingCalendar.of(ctx.services.settings)
    except ConfigError as exc:
        fail(str(exc))
    at = start.replace(hour=12, tzinfo=cal.zone) if start else clock.now()
    due = cal.deadline(at, days)
    day, last = cal.local_date(at), cal.local_date(due - dt.timedelta(microseconds=1))
    off = []
    while day < last:
        day += dt.timedelta(days=1)
        if not cal.is_working_day(day):
            off.append({"date": day.isoformat(), "why": cal.holiday_name(day) or "weekend"})
    data = {
        "from": cal.local_date(at).isoformat(),
        "working_days": days,
        "due": due.isoformat(),
        "days_off": off,
    }
    emit(
        as_json,
        data,
        [f"{days} working day(s) from {data['from']}: due {due.astimezone(cal.zone):%Y-%m-%d %H:%M %Z}"]
        + [f"  not a working day: {d['date']} ({d['why']})" for d in off],
    )
