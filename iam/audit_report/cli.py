"""``iam audit report|archive|archive-key|review`` and ``iam audit verify --archive``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from iam.clitools import Ctx, echo_json, emit, fail, json_option, pass_ctx


@contextmanager
def _language(ctx: Ctx) -> Iterator[None]:
    """Readable names in the organisation's first language (flask-babel needs an app context)."""
    from flask import Flask
    from flask_babel import Babel

    from iam.app import ROOT

    settings = ctx.settings
    app = Flask("iam-cli")
    app.config.update(
        BABEL_DEFAULT_LOCALE=settings.catalogues[settings.languages[0]],
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
    )
    Babel(app)
    with app.app_context():
        yield


def verify_archive(ctx: Ctx, path: Path, public_key: Path | None, check_macs: bool, as_json: bool) -> None:
    from iam.audit import audit_key
    from iam.audit_archive import verify_file

    key = audit_key(ctx.services.secret_key) if check_macs else None
    result = verify_file(path, public_key=public_key.read_bytes() if public_key else None, audit_key=key)
    h = result.header
    data = {
        "ok": result.ok,
        "problem": result.problem,
        "file": str(path),
        "week": h.get("week"),
        "events": result.events,
        "first_seq": h.get("first_seq"),
        "last_seq": h.get("last_seq"),
        "prev_hash": h.get("prev_hash"),
        "last_hash": h.get("last_hash"),
        "key_id": h.get("key_id"),
        "pinned_key": public_key is not None,
        "macs_checked": check_macs,
    }
    if as_json:
        echo_json(data)
    elif result.ok:
        pinned = (
            "the given public key"
            if public_key
            else f"its embedded key {h.get('key_id')} (compare with `iam audit archive-key`)"
        )
        click.echo(
            f"Archive intact: week {h.get('week')}, {result.events} events (seq {h.get('first_seq')}–"
            f"{h.get('last_seq')}), signed by {pinned}; continues from {str(h.get('prev_hash'))[:16]}…, "
            f"ends with {str(h.get('last_hash'))[:16]}…."
        )
    if not result.ok:
        if not as_json:
            click.echo(f"Archive NOT valid: {result.problem}.", err=True)
        sys.exit(1)


def register(audit: click.Group) -> None:
    """Add the report, archive and review commands to ``iam audit``."""

    @audit.command("report")
    @click.option(
        "--from", "start", required=True, help="First day (2026-11-01) or time, organisation's zone."
    )
    @click.option("--to", "end", required=True, help="Last day (included) or end time.")
    @click.option(
        "--person", default=None, help="Only events done by or about this account (username or sub)."
    )
    @click.option("--client", default=None, help="Only events of this application (client id).")
    @click.option(
        "--severity",
        type=click.Choice(["normal", "significant", "critical"]),
        default=None,
        help="Only this severity and above.",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["pdf", "csv"]),
        default="pdf",
        show_default=True,
        help="A printable PDF or a CSV file for a spreadsheet.",
    )
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="File to write (default: audit-report-FROM-TO.pdf|csv in the current folder).",
    )
    @json_option
    @pass_ctx
    def report(
        ctx: Ctx,
        start: str,
        end: str,
        person: str | None,
        client: str | None,
        severity: str | None,
        fmt: str,
        output: Path | None,
        as_json: bool,
    ) -> None:
        """An audit report people can read (event names, not codes) for a period, a person, an
        application or a severity, as a printable PDF or CSV. The report itself is audited."""
        from iam import audit as audit_mod
        from iam.audit_report import service
        from iam.audit_report.pdf import report_pdf
        from iam.errors import IamError

        settings = ctx.settings
        try:
            q = service.parse_query(
                start, end, person=person, client=client, severity=severity, zone=settings.timezone
            )
        except IamError as exc:
            fail(str(exc))
        with _language(ctx), ctx.services.transaction() as session:
            evs = service.events(session, q)
            if fmt == "csv":
                data: bytes = service.to_csv(evs, zone=settings.timezone).encode("utf-8-sig")
            else:
                data = report_pdf(evs, q, organisation=settings.organisation, zone=settings.timezone)
            target = output or Path(f"audit-report-{start[:10]}-{end[:10]}.{fmt}")
            target.write_bytes(data)
            audit_mod.record(
                session,
                "audit.report",
                actor="cli",
                details={**q.describe(), "format": fmt, "events": len(evs)},
            )
        emit(
            as_json,
            {"file": str(target), "events": len(evs), "format": fmt, **q.describe()},
            f"Wrote {target} ({len(evs)} events).",
        )

    @audit.command("archive")
    @click.option(
        "--week", default=None, help="Archive this ISO week (2026-W48) now; default: every week that is due."
    )
    @json_option
    @pass_ctx
    def archive(ctx: Ctx, week: str | None, as_json: bool) -> None:
        """Write the weekly signed archive(s) of the sealed audit log to audit_archive.folder
        (the worker does this on its own after each week; a missed week is a critical alert)."""
        from iam import audit_archive

        services = ctx.services
        if week:
            try:
                audit_archive.seal_all(services)
                with services.transaction() as session:
                    row = audit_archive.write_week(services, session, week)
            except (audit_archive.ArchiveError, OSError) as exc:
                fail(str(exc))
            data: dict[str, Any] = {
                "written": [week],
                "file": str(audit_archive.folder(services) / str(row.file_name)),
                "events": row.events,
                "sha256": row.sha256,
            }
            emit(as_json, data, f"Wrote {data['file']} ({row.events} events).")
            return
        result = audit_archive.run(services)
        lines = [f"Archived {w}." for w in result["written"]] or ["No week was due."]
        lines += [f"FAILED {w}: {e}" for w, e in result["failed"].items()]
        emit(as_json, result, lines)
        if result["failed"]:
            sys.exit(1)

    @audit.command("archive-key")
    @json_option
    @pass_ctx
    def archive_key(ctx: Ctx, as_json: bool) -> None:
        """Print the public key (PEM) that signs the weekly archives and its key id: give it to
        the auditors, who check files with `iam audit verify --archive FILE --public-key KEY.pem`."""
        from iam.audit_archive import key_id, public_pem, signing_key

        public = signing_key(ctx.services).public_key()
        data = {"key_id": key_id(public), "public_key_pem": public_pem(public).decode()}
        emit(as_json, data, [f"Key id: {data['key_id']}", data["public_key_pem"].rstrip()])

    @audit.group("review")
    def review() -> None:
        """The monthly review of significant and critical events (Čačak Član 30)."""

    @review.command("show")
    @click.argument("month", required=False)
    @json_option
    @pass_ctx
    def review_show(ctx: Ctx, month: str | None, as_json: bool) -> None:
        """The month's (default: last month's) significant and critical events and whether it
        was signed off."""
        from iam.audit_report import review as rv
        from iam.audit_report.service import rows
        from iam.errors import IamError

        month = month or rv.previous_month(ctx.settings.timezone)
        try:
            with _language(ctx), ctx.services.transaction() as session:
                r = rv.load(ctx.services, session, month)
                listed = list(rows(r.events, zone=ctx.settings.timezone))
        except IamError as exc:
            fail(str(exc))
        data = {
            "month": month,
            "events": [{k: v for k, v in x.items()} for x in listed],
            "signed_by": r.signed.signed_by if r.signed else None,
            "signed_at": r.signed.signed_at.isoformat() if r.signed and r.signed.signed_at else None,
            "due": r.due.isoformat(),
            "overdue": r.overdue,
        }
        status = (
            f"signed off by {data['signed_by']} at {data['signed_at']}"
            if r.signed
            else (f"NOT signed off (due {r.due:%Y-%m-%d}{', overdue' if r.overdue else ''})")
        )
        lines = [
            f"{x['at']}  {x['severity']:<11} {x['event']}  {x['actor']} → {x['subject']}" for x in listed
        ]
        emit(
            as_json,
            data,
            [f"Monthly review {month}: {len(listed)} significant/critical events; {status}.", *lines],
        )

    @review.command("sign")
    @click.argument("month")
    @click.option("--as", "actor", required=True, help="Username of the security officer signing off.")
    @click.option("--comment", default="", help="What was found or done (kept with the sign-off).")
    @json_option
    @pass_ctx
    def review_sign(ctx: Ctx, month: str, actor: str, comment: str, as_json: bool) -> None:
        """Sign off MONTH (2026-11) as read by the security officer named with --as."""
        from iam.audit_report import review as rv
        from iam.errors import IamError

        person = ctx.services.directory.find_login(actor)
        if person is None or not rv.may_review(ctx.services, person.id, person.username):
            fail(f"{actor!r} is not a security officer or audit reviewer (audit_review.reviewers).")
        try:
            with ctx.services.transaction() as session:
                row = rv.sign_off(ctx.services, session, month=month, actor=person.username, comment=comment)
        except IamError as exc:
            fail(str(exc))
        emit(
            as_json,
            {"month": month, "signed_by": actor, "events": row.events},
            f"Signed off {month} ({row.events} significant/critical events) as {actor}.",
        )
