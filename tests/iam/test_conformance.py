"""The conformance report (issue 22) on the real Samba DC, with a seeded year of activity.

One password older than six months (set while the DC's clock stood 200 days back) and one
leaver disabled three days late → exactly those two checks are "not met", naming the account
and the event; after the password is changed, and for the next period, the report says "met".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import sso
from iam import clock
from iam.cli import cli
from iam.clitools import Ctx
from iam.conformance import catalogue, render, service
from iam.directory.base import NewUser
from iam.migrate import upgrade
from iam.models import AuditEvent
from iam.services import Services
from provisioning.models import HrEvent
from provisioning.reviews.models import Campaign, CampaignItem
from tests.conftest import make_settings

PASSWORD = "Start-Passw0rd-1!x"


@pytest.fixture
def ad_services(tmp_path: Path, samba_ad, ad_ou: str) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    directory = samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou})
    svc = Services(
        make_settings(
            tmp_path, f"sqlite:///{tmp_path}/iam.db", directory=directory, passwords={"profile": "cacak"}
        )
    )
    upgrade(svc.engine)
    sso.on_upgrade(svc)
    yield svc
    if "directory" in svc.__dict__:
        svc.directory.close()  # type: ignore[attr-defined]
    svc.dispose()


def _user(svc: Services, name: str) -> str:
    d = svc.directory
    user = d.create_user(NewUser(username=name, given_name="Vesna", family_name="Ilić"))
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    return user.id


def _leaver(svc: Services, employee: str, effective: dt.datetime, applied: dt.datetime) -> str:
    with svc.transaction() as s:
        ev = HrEvent(
            idempotency_key=f"seed-{secrets.token_hex(6)}",
            kind="leaver",
            employee_number=employee,
            source="api",
            actor="hr",
            payload={},
            payload_hash="0" * 64,
            status="applied",
            effective_at=effective,
            accepted_at=effective,
            applied_at=applied,
        )
        s.add(ev)
        s.flush()
        return ev.id


def _reviews(svc: Services, closed: dt.datetime) -> None:
    """A completed annual review and a completed privileged one (Član 19)."""
    with svc.transaction() as s:
        for kind in ("everyone", "privileged"):
            c = Campaign(
                definition=kind,
                title=f"{kind} review",
                trigger="schedule",
                status="closed",
                spec={"scope": {"kind": kind}},
                started_at=closed - dt.timedelta(days=20),
                started_by="officer",
                due_at=closed,
                closed_at=closed,
                closed_by="officer",
                items_total=1,
            )
            s.add(c)
            s.flush()
            s.add(
                CampaignItem(
                    campaign_id=c.id,
                    person="p",
                    person_name="P",
                    username="p",
                    account_id="a",
                    account="a",
                    account_kind="ordinary",
                    source="directory",
                    kind="group",
                    resource="staff",
                    origin="birthright",
                    reviewer="m",
                    recommendation="keep",
                    decision="approve",
                    decided_at=closed,
                )
            )


def _checks(report: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {e["check"]: e for a in report["articles"] for e in a["evidence"]}


def test_cacak_report_names_the_old_password_and_the_slow_leaver(ad_services, samba_clock):  # type: ignore[no-untyped-def]
    svc = ad_services
    stale_name, fresh_name = f"old{secrets.token_hex(3)}", f"new{secrets.token_hex(3)}"
    samba_clock("-200d")
    stale = _user(svc, stale_name)  # its pwdLastSet is 200 days ago
    samba_clock("+0")
    _user(svc, fresh_name)
    now = clock.now()
    slow = _leaver(svc, "E-100", now - dt.timedelta(days=40), now - dt.timedelta(days=37))  # 3 days late
    _leaver(svc, "E-101", now - dt.timedelta(days=30), now - dt.timedelta(days=30, minutes=-5))  # 5 minutes
    _reviews(svc, now - dt.timedelta(days=10))

    report = service.build(svc, "cacak", period=f"{now.year}")
    checks = _checks(report)
    not_met = sorted(name for name, e in checks.items() if e["status"] == "not met")
    assert not_met == ["jml.leaver_latency", "password.age"], not_met
    assert any(stale_name in item for item in checks["password.age"]["items"])
    assert not any(fresh_name in item for item in checks["password.age"]["items"])
    assert any(slow in item and "E-100" in item for item in checks["jml.leaver_latency"]["items"])
    assert "E-101" not in " ".join(checks["jml.leaver_latency"]["items"])
    assert checks["password.profile"]["status"] == "met"  # the cacak profile meets Član 20
    assert checks["audit.chain"]["status"] == "met"
    by_ref = {a["ref"]: a for a in report["articles"]}
    assert by_ref["Član 20"]["status"] == "not met" and by_ref["Član 22"]["status"] == "outside the system"
    assert len(report["articles"]) == len(catalogue.load("cacak").articles) == 43  # the whole rulebook

    # fixed: the password is changed; the next period has no slow leaver
    svc.directory.set_password(stale, PASSWORD + "2", must_change=False)
    clock.advance(dt.timedelta(days=40))
    later = clock.now()
    again = service.build(
        svc, "cacak", period=f"{(later - dt.timedelta(days=20)):%Y-%m-%d}..{later:%Y-%m-%d}"
    )
    checks = _checks(again)
    assert checks["password.age"]["status"] == "met"
    assert checks["jml.leaver_latency"]["status"] == "met"
    assert not [n for n, e in checks.items() if e["status"] == "not met"]


def test_report_is_recorded_reproducible_and_prints_in_english_and_serbian(sqlite_services, tmp_path):  # type: ignore[no-untyped-def]
    svc = sqlite_services
    ctx = Ctx()
    ctx._settings, ctx._services = svc.settings, svc
    out = CliRunner().invoke(
        cli, ["conformance", "report", "--rulebook", "cacak", "--period", "2026", "--json"], obj=ctx
    )
    data = json.loads(out.output)
    assert out.exit_code == (1 if data["totals"].get("not met") else 0)
    body = {k: v for k, v in data.items() if k not in ("generated_at", "sha256")}
    digest = hashlib.sha256(
        json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    assert digest == data["sha256"]
    with svc.reader() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "conformance.report")).all()[-1]
        assert ev.details["sha256"] == data["sha256"]
    # a past period, built again from the same records: the same hash
    first = service.build(svc, "cacak", period="2025")
    service.record(svc, first, actor="test", fmt="json")
    assert service.build(svc, "cacak", period="2025")["sha256"] == first["sha256"]
    for language, word in (("en", "Conformance report"), ("sr", "Izveštaj o usklađenosti")):
        report = service.build(svc, "cacak", period="2026", language=language)
        pdf = tmp_path / f"r-{language}.pdf"
        pdf.write_bytes(render.pdf(report))
        png = tmp_path / f"r-{language}"
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pdf), str(png)], check=True)
        page = next(tmp_path.glob(f"r-{language}*.png"))
        assert page.stat().st_size > 5_000  # a rendered page, not a blank one
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert word in text and "Član 20" in text
        assert word in render.html(report)


def test_every_rulebook_loads_and_lists_its_checks():
    for name in catalogue.known():
        book = catalogue.load(name)
        assert book.articles
    with pytest.raises(ValueError, match="no rulebook"):
        catalogue.load("nosuch")
