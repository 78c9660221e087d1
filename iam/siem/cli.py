"""``iam audit siem status|send``: where each SIEM destination stands, and a pass now."""

from __future__ import annotations

import sys

import click

from iam.clitools import Ctx, emit, json_option, nothing, pass_ctx


def register(audit: click.Group) -> None:
    @audit.group("siem")
    def siem() -> None:
        """The audit log's stream to the SIEM (siem.destinations)."""

    @siem.command("status")
    @json_option
    @pass_ctx
    def status(ctx: Ctx, as_json: bool) -> None:
        """Each destination's position, backlog (events waiting), deliveries and last error.
        Exit 1 when a backlog is past siem.backlog_threshold (for monitoring scripts)."""
        from iam.siem.service import status as siem_status

        settings = ctx.settings
        if not settings.siem.destinations:
            nothing("No SIEM destination is configured (siem.destinations).", as_json, [])
        with ctx.services.reader() as session:
            rows = siem_status(session, settings.siem)
        data = [
            {
                "name": r.name,
                "url": r.url,
                "format": r.format,
                "last_seq": r.last_seq,
                "backlog": r.backlog,
                "delivered": r.delivered,
                "last_success_at": r.last_success_at.isoformat() if r.last_success_at else None,
                "last_error": r.last_error,
                "degraded": r.degraded,
            }
            for r in rows
        ]
        emit(
            as_json,
            data,
            (
                f"{d['name']:<16} {d['url']:<40} backlog {d['backlog']:>7}  delivered {d['delivered']:>9}"
                + ("  DEGRADED" if d["degraded"] else "")
                + (f"  last error: {d['last_error']}" if d["last_error"] else "")
                for d in data
            ),
        )
        if any(d["degraded"] for d in data):
            sys.exit(1)

    @siem.command("send")
    @json_option
    @pass_ctx
    def send(ctx: Ctx, as_json: bool) -> None:
        """Send each destination what it has not received, now (the worker does this every
        siem.interval seconds). Exit 1 if a collector could not be reached."""
        from iam.siem.service import pump_all

        if not ctx.settings.siem.destinations:
            nothing("No SIEM destination is configured (siem.destinations).", as_json, [])
        results = pump_all(ctx.services)
        data = [{"name": r.destination, "delivered": r.delivered, "error": r.error} for r in results]
        emit(
            as_json,
            data,
            (f"{d['name']}: {d['delivered']} sent" + (f"; {d['error']}" if d["error"] else "") for d in data),
        )
        if any(r.error for r in results):
            sys.exit(1)
