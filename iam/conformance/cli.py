"""``iam conformance …``: the conformance report per rulebook (issue: conformance report)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from iam.clitools import Ctx, echo_json, emit, fail, json_option, pass_ctx


@click.group("conformance")
def conformance() -> None:
    """Conformance reports: each article of a rulebook, met / not met / not configured / outside
    the system, with live evidence for a period and how to re-run each check."""


@conformance.command("report")
@click.option(
    "--rulebook",
    required=True,
    help="cacak, bistrezor, pabianice, lgsp or cluj (policies/conformance/*.toml).",
)
@click.option(
    "--period",
    default=None,
    help="2026, 2026-Q3, 2026-05 or 2026-01-01..2026-06-30 (default: the last 12 months).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "html", "pdf"]),
    default="text",
    help="text (a summary), html or pdf; --json gives the whole report as JSON.",
)
@click.option(
    "--language",
    default="en",
    help="The report's language: en, sr (Latin script; sr-Latn and sr-Cyrl give the same), pl, ro or vi."
    " Any other gives English; an article without words in the language gives its English ones.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of standard output (needed for pdf at a terminal).",
)
@json_option
@pass_ctx
def report(
    ctx: Ctx, rulebook: str, period: str | None, fmt: str, language: str, out: Path | None, as_json: bool
) -> None:
    """Build the report; its SHA-256 is recorded in the audit log (conformance.report).
    Exit code 1 when an article is not met."""
    from iam.conformance import render, service

    if as_json:
        fmt = "json"
    try:
        data = service.build(ctx.services, rulebook, period=period, language=language)
    except ValueError as exc:
        fail(str(exc))
    service.record(ctx.services, data, actor="cli", fmt=fmt)
    if fmt == "json":
        if out:
            import json

            out.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            echo_json(data)
    elif fmt == "html":
        text = render.html(data)
        out.write_text(text) if out else click.echo(text)
    elif fmt == "pdf":
        blob = render.pdf(data)
        if out:
            out.write_bytes(blob)
        elif sys.stdout.isatty():
            fail("A PDF is not for the terminal: give --out FILE.pdf (or redirect the output).")
        else:
            sys.stdout.buffer.write(blob)
    else:
        lines = [
            f"{data['rulebook']['title']} — {data['period']['label']}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(data["totals"].items()))
        ]
        for a in data["articles"]:
            if a["status"] in ("not met", "not configured"):
                lines.append(f"  {a['ref']}: {a['status']}")
                for e in a["evidence"]:
                    if e["status"] != "met":
                        lines.append(f"    {e['check']}: {e['summary']}")
                        lines.extend(f"      {i}" for i in e["items"][:10])
        lines.append(f"SHA-256 {data['sha256']} (recorded in the audit log)")
        emit(False, data, lines)
        if out:
            out.write_text("\n".join(lines) + "\n")
    if data["totals"].get("not met"):
        raise SystemExit(1)


@conformance.command("rulebooks")
@json_option
def rulebooks(as_json: bool) -> None:
    """The rulebooks a report can be made for, with their articles and checks."""
    from iam.app import load_feature_jobs
    from iam.conformance import catalogue, evidence

    load_feature_jobs()  # the features register their evidence
    out = []
    for name in catalogue.known():
        book = catalogue.load(name)
        served = [a for a in book.articles if not a.outside]
        unknown = sorted({c.check for a in served for c in a.checks} - set(evidence.registered()))
        out.append(
            {
                "id": name,
                "title": book.title,
                "articles": len(book.articles),
                "served": len(served),
                "checks_without_source": unknown,
            }
        )
    emit(
        as_json,
        out,
        [
            f"{b['id']:<10} {b['articles']:>3} articles, {b['served']:>3} served by the software"
            f" — {b['title']}"
            for b in out
        ],
    )


def register(cli: click.Group) -> None:
    cli.add_command(conformance)
