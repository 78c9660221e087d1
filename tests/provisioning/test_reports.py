"""Reconciliation against AD, the register of authorised persons, password delivery, snapshots."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

import provisioning
from iam import clock
from iam.cli import Ctx, cli
from iam.config import MailSettings
from iam.directory.base import NewUser
from iam.directory.errors import MustChangePassword
from iam.models.audit import AuditEvent
from provisioning.models import Activation, HrEvent, HrPerson
from tests.provisioning.conftest import SFX, Hr, joiner
from tests.smtp import SmtpSink

pytestmark = pytest.mark.samba
provisioning.register(cli)


def _cli(hr: Hr, *args: str) -> Any:
    ctx = Ctx()
    ctx._services = hr.services
    return CliRunner().invoke(cli, list(args), obj=ctx)


def test_reconciliation_finds_orphans_enabled_leavers_and_unexplained_groups(hr: Hr) -> None:
    for emp in ("r1", "r2"):
        assert hr.post(joiner(emp, "Petra", "Horvat")).status_code == 202
    hr.work()
    assert (
        hr.post({"idempotency_key": "r2-out", "kind": "leaver", "person": {"employee_number": "r2"}}).json[
            "status"
        ]
        == "applied"
    )
    leaver = hr.directory.find_user(employee_number="r2")
    assert leaver is not None
    hr.directory.enable(leaver.id)  # someone re-enabled it in AD by hand
    orphan = hr.directory.create_user(NewUser(username=f"orphan-x1{SFX}", enabled=True))
    stayer = hr.directory.find_user(employee_number="r1")
    assert stayer is not None
    hr.directory.create_group("shadow-admins")
    hr.directory.add_member("shadow-admins", stayer.id)

    result = _cli(hr, "hr", "reconcile", "--json", "--alert")
    assert result.exit_code == 2  # critical findings
    found = {(f["kind"], f["username"]) for f in json.loads(result.output)}
    assert ("orphan", orphan.username) in found
    assert ("leaver_enabled", leaver.username) in found
    assert ("unexplained_group", stayer.username) in found
    assert not any(kind == "unexplained_group" and "finance" in u for kind, u in found)
    with hr.services.reader() as s:
        alerts = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "hr.reconcile.alert")))
        assert {a.severity for a in alerts} == {"critical"} and len(alerts) == 2
    table = _cli(hr, "hr", "reconcile")
    assert "orphan" in table.output and "shadow-admins" in table.output


def test_register_lists_the_section_15_fields(hr: Hr, tmp_path: Path) -> None:
    assert hr.post(joiner("g1", "Zofia", "Wójcik", personal_data_scope="payroll records")).status_code == 202
    assert hr.post(joiner("g2", "Jan", "Nowak", personal_data="none")).status_code == 202
    hr.work()
    out = _cli(hr, "hr", "register")
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith("Name,Organisational unit,Title,Date granted,Decision number,Date ended,Scope")
    assert len(lines) == 2  # only people who process personal data
    assert f"Zofia Wójcik{SFX},Finance,Accountant" in lines[1] and "D-g1" in lines[1]
    assert "full: payroll records" in lines[1] and f"zofia.wojcik{SFX}" in lines[1]
    pdf = tmp_path / "register.pdf"
    assert _cli(hr, "hr", "register", "--pdf", "--out", str(pdf)).exit_code == 0
    assert pdf.read_bytes().startswith(b"%PDF")


def test_sealed_envelopes_are_printed_once(hr: Hr, tmp_path: Path) -> None:
    hr.services.settings.provisioning.password_delivery = "envelope"
    assert hr.post(joiner("e1", "Ivana", "Marić")).status_code == 202
    hr.work()
    pdf = tmp_path / "env.pdf"
    out = _cli(hr, "hr", "envelopes", "--out", str(pdf))
    assert out.exit_code == 0 and "1 envelope" in out.output
    assert pdf.read_bytes().startswith(b"%PDF")
    again = _cli(hr, "hr", "envelopes", "--out", str(pdf))  # nothing to do: one sentence, exit 1
    assert again.exit_code == 1 and again.stderr.strip() == "Error: There are no envelopes to print."
    with hr.services.reader() as s:
        row = s.scalar(select(Activation))
        assert row is not None and row.password_encrypted is None and row.delivered_at is not None


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    # words as printed; a table cell may wrap a long name onto two lines
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def test_pdfs_print_names_as_written_and_no_envelope_for_a_leaver(hr: Hr, tmp_path: Path) -> None:
    """Issue 10 item 14: the register and the envelopes embed a Unicode font (no "Grad ?a?ak",
    no "Dorde Andelkovic"); a person who left before the envelopes were printed gets none."""
    hr.services.settings.organisation = "Grad Čačak"
    hr.services.settings.provisioning.password_delivery = "envelope"
    assert hr.post(joiner("p1", "Đorđe", "Anđelković")).status_code == 202
    assert hr.post(joiner("p2", "Милош", "Јовановић")).status_code == 202
    hr.work()
    left = {"idempotency_key": "leave-p2", "kind": "leaver", "person": {"employee_number": "p2"}}
    assert hr.post(left).status_code == 202
    hr.work()

    envelopes = tmp_path / "envelopes.pdf"
    out = _cli(hr, "hr", "envelopes", "--out", str(envelopes))
    assert out.exit_code == 0 and "1 envelope(s)" in out.output, out.output
    text = _pdf_text(envelopes)
    assert "Grad Čačak" in text
    assert f"dorde.andelkovic{SFX}" in text and "milos" not in text
    with hr.services.reader() as s:
        rows = list(s.scalars(select(Activation).where(Activation.employee_number == "p2")))
        assert rows and all(r.password_encrypted is None for r in rows)  # withdrawn, not printed
        withdrawn = s.scalars(select(AuditEvent).where(AuditEvent.event == "hr.password_withdrawn")).all()
        assert [e.details["reason"] for e in withdrawn] == ["leaver"]

    register = tmp_path / "register.pdf"
    assert _cli(hr, "hr", "register", "--pdf", "--out", str(register)).exit_code == 0
    text = _pdf_text(register)
    assert "Grad Čačak" in text
    assert f"Đorđe Anđelković{SFX}" in text and f"Милош Јовановић{SFX}" in text


def test_activation_link_to_the_manager_works_once(hr: Hr, smtp_sink: SmtpSink) -> None:
    saved = hr.services.settings.mail
    hr.services.settings.mail = MailSettings(
        host="127.0.0.1", port=smtp_sink.server_address[1], sender="iam@idp.test"
    )
    try:
        assert hr.post(joiner("m1", "Mara", "Boss", email="mara@example.test")).status_code == 202
        assert hr.post(joiner("m2", "Tin", "Novi", manager="m1")).status_code == 202
        hr.work()
    finally:
        hr.services.settings.mail = saved
    (sent,) = [m for m in smtp_sink.messages if m["to"] == ["mara@example.test"]]
    assert sent["from"] == "iam@idp.test"
    mail = sent["msg"]
    assert mail["To"] == "mara@example.test"
    link = re.search(r"http://localhost(/hr/activate/\S+)", mail.get_content())
    assert link, mail.get_content()
    page = hr.client.get(link.group(1))
    assert page.status_code == 200 and f"tin.novi{SFX}" in page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert token
    shown = hr.client.post(link.group(1), data={"csrf_token": token.group(1)})
    password = re.search(r"<code>([^<]+)</code>", shown.get_data(as_text=True))
    assert password and len(password.group(1)) >= 12
    assert shown.headers["Cache-Control"] == "no-store"
    with pytest.raises(MustChangePassword):  # the temporary password is right, but must be changed
        hr.directory.authenticate(f"tin.novi{SFX}", password.group(1))
    again = hr.client.post(link.group(1), data={"csrf_token": token.group(1)})
    assert again.status_code == 404


def test_snapshot_import_joins_moves_and_leaves(hr: Hr, tmp_path: Path) -> None:
    first = tmp_path / "s1.csv"
    today = clock.now().date().isoformat()
    head = "employee_number,given_name,family_name,department,title,engagement,start_date\n"
    first.write_text(
        head
        + f"s1,Ana,Kovač{SFX},Finance,Clerk,staff,{today}\ns2,Ivo,Babić{SFX},IT,Engineer,contractor,{today}\n"
    )
    assert _cli(hr, "hr", "import", str(first), "--snapshot").exit_code == 0
    hr.work()
    second = tmp_path / "s2.csv"
    second.write_text(head + f"s1,Ana,Kovač{SFX},IT,Clerk,staff,{today}\n")
    dry = _cli(hr, "hr", "import", str(second), "--snapshot", "--dry-run", "--json")
    kinds = sorted((e["kind"], e["employee_number"]) for e in json.loads(dry.output)["events"])
    assert kinds == [("leaver", "s2"), ("mover", "s1")]
    clock.advance(dt.timedelta(minutes=1))
    assert _cli(hr, "hr", "import", str(second), "--snapshot").exit_code == 0
    hr.work()
    with hr.services.reader() as s:
        assert s.get(HrPerson, "s1").department == "IT"  # type: ignore[union-attr]
        assert s.get(HrPerson, "s2").status == "left"  # type: ignore[union-attr]
        assert {e.status for e in s.scalars(select(HrEvent))} == {"applied"}
    s2 = hr.directory.find_user(employee_number="s2")
    assert s2 is not None and not s2.enabled
    again = _cli(hr, "hr", "import", str(second), "--snapshot", "--json")
    assert json.loads(again.output)["total"] == 0  # nothing left to change
