"""Audit reports for people (PDF, CSV, readable names) and the monthly review with its sign-off
and overdue reminders (issue 15 part 5), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

from iam import audit, clock
from iam.audit_report import review as rv
from iam.audit_report import service
from iam.audit_report.labels import EVENT_LABELS, event_label
from iam.audit_report.pdf import report_pdf
from iam.errors import Conflict, ValidationFailed
from iam.models.audit_ops import AuditReview
from iam.models.jobs import Job
from iam.services import Services
from tests.conftest import need
from tests.sso.helpers import PASSWORD, csrf_from, login, make_user

NOV = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)


def _seed(services: Services) -> None:
    clock.freeze(NOV)
    with services.transaction() as session:
        audit.record(
            session, "login.succeeded", actor="đorđe", subject="đorđe", client_id="portal", ip="192.0.2.1"
        )
        audit.record(
            session,
            "token.refused",
            severity=audit.Severity.SIGNIFICANT,
            outcome="failure",
            actor="mallory",
            client_id="portal",
            details={"reason": "invalid_grant"},
        )
        audit.record(
            session, "pim.break_glass", severity=audit.Severity.CRITICAL, actor="admin", subject="adm-admin"
        )
        audit.record(session, "login.succeeded", actor="ana", client_id="hr")
    clock.freeze(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))


def test_csv_has_readable_names_and_filters(services: Services) -> None:
    _seed(services)
    q = service.parse_query("2026-11-01", "2026-11-30", client="portal")
    with services.transaction() as session:
        evs = service.events(session, q)
    rows = list(csv.reader(io.StringIO(service.to_csv(evs))))
    assert rows[0][:4] == ["Time", "Event", "Severity", "Outcome"]
    assert [r[1] for r in rows[1:]] == ["Sign-in succeeded", "Token refused"]
    assert (
        rows[2][2] == "significant"
        and rows[2][-1] == "token.refused"
        and "reason: invalid_grant" in rows[2][8]
    )
    with services.transaction() as session:
        person = service.events(session, service.parse_query("2026-11-01", "2026-11-30", person="đorđe"))
        severe = service.events(
            session, service.parse_query("2026-11-01", "2026-11-30", severity="significant")
        )
        october = service.events(session, service.parse_query("2026-10-01", "2026-10-31"))
    assert [e.event for e in person] == ["login.succeeded"]
    assert [e.event for e in severe] == ["token.refused", "pim.break_glass"]
    assert october == []
    with pytest.raises(ValidationFailed):
        service.parse_query("2026-11-30", "2026-11-01")
    with pytest.raises(ValidationFailed):
        service.parse_query("yesterday", "2026-11-01")


def test_csv_cells_cannot_become_formulas(services: Services) -> None:
    clock.freeze(NOV)
    with services.transaction() as session:
        audit.record(session, "login.failed", actor='=HYPERLINK("http://x")', outcome="failure")
        evs = service.events(session, service.parse_query("2026-11-01", "2026-11-30"))
    assert "'=HYPERLINK" in service.to_csv(evs)


def test_pdf_renders_a_page_that_is_not_blank(services: Services, tmp_path: Path) -> None:
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        need("pdftoppm (poppler-utils) is not installed")
    _seed(services)
    q = service.parse_query("2026-11-01", "2026-11-30")
    with services.transaction() as session:
        evs = service.events(session, q)
    pdf = report_pdf(evs, q, organisation="Grad Čačak", zone="Europe/Belgrade")
    assert pdf.startswith(b"%PDF")
    (tmp_path / "r.pdf").write_bytes(pdf)
    subprocess.run(
        [pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"), str(tmp_path / "p")],  # noqa: S603
        check=True,
        timeout=60,
    )
    (png,) = tmp_path.glob("p*.png")
    from PIL import Image  # fpdf2's dependency

    image = Image.open(png).convert("L")
    dark = sum(image.histogram()[:128])  # pixels darker than mid-grey
    assert dark > 500, "page 1 is blank"
    from pypdf import PdfReader

    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert (
        "Grad Čačak" in text
        and "Emergency (break-glass) access used" in text
        and "pim.break_glass" not in text
    )


def test_every_recorded_event_has_a_label() -> None:
    """Each event name the code records has a readable, translatable name (not a code)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    names: set[str] = set()
    for package in ("iam", "sso", "pim", "provisioning", "detect"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute | ast.Name)
                    and getattr(node.func, "attr", getattr(node.func, "id", ""))
                    in ("record", "record_refusal", "record_many")
                    and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                ):
                    names.add(node.args[1].value)
    assert len(names) > 50
    assert sorted(names - set(EVENT_LABELS)) == []
    assert event_label("something.new_here") == "Something: new here"


def test_monthly_review_sign_off_and_overdue_reminders(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.settings.audit, "security_officer_email", "officer@example.org")
    _seed(services)
    with services.transaction() as session:
        data = rv.load(services, session, "2026-11")
        assert [e.event for e in data.events] == ["token.refused", "pim.break_glass"]
        assert data.ended and not data.overdue
        with pytest.raises(ValidationFailed):
            rv.sign_off(services, session, month="2026-12", actor="sec")  # not ended
    assert rv.remind_overdue(services) == []  # due on the 10th
    clock.freeze(dt.datetime(2026, 12, 11, 9, 0, tzinfo=dt.UTC))
    assert rv.remind_overdue(services) == ["2026-11"]
    assert rv.remind_overdue(services) == []  # not again before reminder_days
    clock.freeze(dt.datetime(2026, 12, 14, 10, 0, tzinfo=dt.UTC))
    assert rv.remind_overdue(services) == ["2026-11"]
    with services.transaction() as session:
        mails = [j.payload for j in session.scalars(select(Job).where(Job.kind == "iam.mail"))]
        overdue = [e for e in audit.iter_events(session, sealed=False) if e.event == "audit.review_overdue"]
        assert (
            len(mails) == 2 and mails[0]["to"] == "officer@example.org" and "2026-11" in mails[0]["subject"]
        )
        assert len(overdue) == 2 and overdue[0].severity == "significant"
        row = rv.sign_off(
            services, session, month="2026-11", actor="sec", comment="break-glass checked with ticket 42"
        )
        assert row.events == 2
    with services.transaction() as session:
        with pytest.raises(Conflict):
            rv.sign_off(services, session, month="2026-11", actor="sec2")
    clock.freeze(dt.datetime(2026, 12, 20, 10, 0, tzinfo=dt.UTC))
    assert rv.remind_overdue(services) == []
    with services.transaction() as session:
        signed = [e for e in audit.iter_events(session, sealed=False) if e.event == "audit.review_signed"]
        assert signed[0].actor == "sec" and signed[0].details["month"] == "2026-11"
        review = session.get(AuditReview, "2026-11")
        assert review is not None and review.signed_by == "sec"


def test_cli_report_and_review(services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from iam.cli import cli
    from iam.clitools import Ctx

    _seed(services)
    ctx = Ctx()
    ctx._settings, ctx._services = services.settings, services
    runner = CliRunner()
    out = tmp_path / "nov.csv"
    res = runner.invoke(
        cli,
        [
            "audit",
            "report",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--severity",
            "critical",
            "--format",
            "csv",
            "-o",
            str(out),
            "--json",
        ],
        obj=ctx,
    )
    assert res.exit_code == 0, res.output
    assert "Emergency (break-glass) access used" in out.read_text("utf-8-sig")
    res = runner.invoke(
        cli,
        ["audit", "report", "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(tmp_path / "nov.pdf")],
        obj=ctx,
    )
    assert res.exit_code == 0 and (tmp_path / "nov.pdf").read_bytes().startswith(b"%PDF")
    res = runner.invoke(cli, ["audit", "review", "show", "2026-11", "--json"], obj=ctx)
    assert res.exit_code == 0 and '"overdue": false' in res.output
    make_user(services, "sec")
    make_user(services, "bob")
    monkeypatch.setattr(services.settings.audit_review, "reviewers", ["sec"])
    res = runner.invoke(cli, ["audit", "review", "sign", "2026-11", "--as", "bob"], obj=ctx)
    assert res.exit_code == 1 and "is not a security officer" in res.output
    res = runner.invoke(cli, ["audit", "review", "sign", "2026-11", "--as", "sec", "--json"], obj=ctx)
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["audit", "review", "sign", "2026-11", "--as", "sec"], obj=ctx)
    assert res.exit_code == 1 and "already signed off" in res.output


def _browser(app: Flask, who: str) -> Any:
    c = app.test_client()
    resp = login(c, who, PASSWORD)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    return c


def test_pages_for_officers_only(services: Services, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(services, "sec")
    make_user(services, "bob")
    monkeypatch.setattr(services.settings.audit_review, "reviewers", ["sec"])
    _seed(services)
    anonymous = app.test_client().get("/audit/review/2026-11")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    bob = _browser(app, "bob")
    assert bob.get("/audit/review/2026-11").status_code == 403
    assert bob.get("/audit/report").status_code == 403
    sec = _browser(app, "sec")
    page = sec.get("/audit/review/2026-11")
    body = page.get_data(as_text=True)
    assert (
        page.status_code == 200
        and "Emergency (break-glass) access used" in body
        and "pim.break_glass" not in body
    )
    assert "Monthly audit review" in sec.get("/audit/report").get_data(as_text=True)  # in the navigation
    no_csrf = sec.post("/audit/review/2026-11", data={"comment": "x"})
    assert no_csrf.status_code in (302, 400) and "Signed off by" not in sec.get(
        "/audit/review/2026-11"
    ).get_data(as_text=True)
    token = csrf_from(body)
    done = sec.post("/audit/review/2026-11", data={"comment": "all explained", "csrf_token": token})
    assert done.status_code == 302
    assert "Signed off by sec" in sec.get("/audit/review/2026-11").get_data(as_text=True)
    report = sec.post(
        "/audit/report",
        data={
            "start": "2026-11-01",
            "end": "2026-11-30",
            "fmt": "csv",
            "severity": "",
            "csrf_token": csrf_from(sec.get("/audit/report").get_data(as_text=True)),
        },
    )
    assert report.status_code == 200 and report.mimetype == "text/csv"
    assert "Token refused" in report.get_data(as_text=True)
    bad = sec.post(
        "/audit/report",
        data={
            "start": "2026-11-30",
            "end": "2026-11-01",
            "fmt": "pdf",
            "severity": "",
            "csrf_token": csrf_from(sec.get("/audit/report").get_data(as_text=True)),
        },
    )
    assert bad.status_code == 400 and "before its start" in bad.get_data(as_text=True)
