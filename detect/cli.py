"""``iam detect …``: check the detection rules, run one pass by hand, list alerts and directory
changes, print the per-agency statistics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from detect import rules
from detect.service import adchanges, alerts, stats
from iam import clock
from iam.clitools import Ctx, emit, fail, json_option, pass_ctx
from iam.errors import ConfigError


@click.group("detect")
def detect_group() -> None:
    """Detection and alerts, AD changes made outside the provider, per-agency statistics."""


@detect_group.command("check-rules")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_ctx
def check_rules(ctx: Ctx, path: Path | None, as_json: bool) -> None:
    """Validate the detection rules (PATH, default detect.rules_file); exit 1 naming the rule
    and field of the first error."""
    path = path or ctx.settings.detect.rules_file
    try:
        ruleset = rules.load(path)
    except ConfigError as exc:
        fail(str(exc))
    data = {
        "file": str(path),
        "rules": [r.model_dump(mode="json") for r in ruleset.rule],
        "recipients": ruleset.recipients.all,
        "webhook": bool(ruleset.webhook.url),
    }
    lines = [f"{path}: {len(ruleset.active)} active rule(s), {len(ruleset.recipients.all)} recipient(s)"]
    lines += [
        f"  {r.id:28} {'on' if r.enabled else 'off':3} {r.threshold} in {r.window}s, quiet {r.quiet}s"
        for r in ruleset.rule
    ]
    emit(as_json, data, lines)


@detect_group.command("run")
@click.option(
    "--ad/--no-ad", default=True, help="Also poll Active Directory for changes (directory.kind = ad)."
)
@json_option
@pass_ctx
def run(ctx: Ctx, ad: bool, as_json: bool) -> None:
    """One pass now, as the worker does: detection rules and statistics on new sealed audit
    events, and (with --ad) one poll of AD changes."""
    svc = ctx.services
    read_alerts = alerts.run(svc)
    read_stats = stats.run(svc)
    changes = adchanges.poll(svc) if ad else 0
    data = {"alerts_events_read": read_alerts, "stats_events_read": read_stats, "directory_changes": changes}
    emit(
        as_json,
        data,
        f"Read {read_alerts} event(s) for detection, {read_stats} for statistics; "
        f"{changes} AD change(s) made outside the provider recorded.",
    )


@detect_group.command("alerts")
@click.option(
    "--state", type=click.Choice(["open", "acknowledged", "closed"]), help="Only alerts in this state."
)
@json_option
@pass_ctx
def list_alerts(ctx: Ctx, state: str | None, as_json: bool) -> None:
    """List alerts, newest first."""
    with ctx.services.reader() as session:
        rows = alerts.listing(session, state=state)
        data = [alerts.webhook_body(a) for a in rows]
    emit(
        as_json,
        data,
        [f"{a['id']:6} {a['state']:12} {a['last_at'][:19]} {a['title']}: {a['key']}" for a in data]
        or ["No alerts."],
    )


@detect_group.command("changes")
@json_option
@pass_ctx
def list_changes(ctx: Ctx, as_json: bool) -> None:
    """List changes made in AD outside the provider, newest first."""
    with ctx.services.reader() as session:
        data: list[dict[str, Any]] = [
            {"id": c.id, "at": c.at.isoformat(), "change": c.change, "dn": c.dn, "details": c.details}
            for c in adchanges.listing(session)
        ]
    emit(as_json, data, [f"{c['at'][:19]} {c['change']:28} {c['dn']}" for c in data] or ["No changes seen."])


@detect_group.command("stats")
@click.option(
    "--days", type=click.IntRange(1, 367), default=30, show_default=True, help="Days back from today."
)
@click.option("--client-id", help="Only this application.")
@click.option("--agency", help="Only this agency code.")
@json_option
@pass_ctx
def show_stats(ctx: Ctx, days: int, client_id: str | None, agency: str | None, as_json: bool) -> None:
    """Per-agency statistics (counters) for the last DAYS days."""
    end = clock.now().date()
    start = end - dt.timedelta(days=days - 1)
    with ctx.services.reader() as session:
        report = stats.report(session, start=start, end=end, client_id=client_id, agency=agency)
    lines = [
        f"{c.client_id} [{c.agency or '-'}] " + ", ".join(f"{k}={v}" for k, v in c.metrics.items())
        for c in report.clients
    ]
    emit(as_json, report.model_dump(mode="json"), lines or ["Nothing counted."])
