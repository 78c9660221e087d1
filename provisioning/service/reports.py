"""Reconciliation against the directory and the register of authorised persons (R-JML-6)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iam import audit, clock
from provisioning.models import Authorisation, HrPerson, PersonStatus, ReviewItem
from provisioning.reviews.models import CampaignItem
from provisioning.service.engine import base_ou

if TYPE_CHECKING:
    from iam.services import Services

BUILTIN = {"administrator", "guest", "krbtgt"}
SERIOUS = {"orphan", "leaver_enabled", "not_started_enabled"}


@dataclass(frozen=True)
class Finding:
    kind: str
    """orphan, leaver_enabled, not_started_enabled, missing_account, unexplained_group."""
    severity: str
    username: str
    employee_number: str
    detail: str


def _under(dn: str, base: str) -> bool:
    return not base or dn.casefold().endswith(base.casefold())


def reconcile(services: Services, *, alert: bool = False) -> list[Finding]:
    """Compare the directory with the HR records; with ``alert`` the serious findings become
    critical audit events (which mail the security officer)."""
    directory = services.directory
    base = base_ou(services)
    ignore = {g.casefold() for g in services.settings.provisioning.reconcile_ignore_groups}
    with services.reader() as session:
        persons = {p.sub: p for p in session.scalars(select(HrPerson)) if p.sub}
        kept = {
            (r.sub, r.group.casefold())
            for r in session.scalars(select(ReviewItem).where(ReviewItem.decision == "keep"))
        }
        # kept by a reviewer in an access review: explained (R-REV-2)
        kept |= {
            (account, group.casefold())
            for account, group in session.execute(
                select(CampaignItem.account_id, CampaignItem.resource).where(
                    CampaignItem.kind == "group",
                    CampaignItem.decision == "approve",
                    CampaignItem.final.is_(True),
                    CampaignItem.automatic.is_(False),
                )
            )
        }
        linked = {s for p in persons.values() for s in (p.linked_accounts or [])}
    findings: list[Finding] = []
    seen: set[str] = set()
    admin_fmt = services.settings.pim.admin_account_format
    admin_names = {admin_fmt.format(username=p.username).casefold() for p in persons.values() if p.username}
    for user in directory.search_users():
        if not _under(user.dn, base) or user.username.casefold() in BUILTIN:
            continue
        seen.add(user.id)
        person = persons.get(user.id)
        if person is None:
            if user.id not in linked and user.username.casefold() not in admin_names:
                findings.append(
                    Finding("orphan", "critical", user.username, user.employee_number or "", "no HR record")
                )
            continue
        if person.status == PersonStatus.LEFT and user.enabled:
            findings.append(
                Finding(
                    "leaver_enabled", "critical", user.username, person.employee_number, "left but enabled"
                )
            )
        if person.status == PersonStatus.PENDING_START and user.enabled:
            findings.append(
                Finding(
                    "not_started_enabled",
                    "critical",
                    user.username,
                    person.employee_number,
                    f"enabled before the start date {person.start_date}",
                )
            )
        if person.status == PersonStatus.ACTIVE and not user.enabled:
            findings.append(
                Finding(
                    "missing_account", "warning", user.username, person.employee_number, "active but disabled"
                )
            )
        explained = (
            {g.casefold() for g in person.groups or []} if person.status != PersonStatus.LEFT else set()
        )
        for group in directory.user_groups(user.id, nested=False):
            key = group.casefold()
            if key in ignore or key in explained or (user.id, key) in kept:
                continue
            findings.append(
                Finding(
                    "unexplained_group",
                    "warning",
                    user.username,
                    person.employee_number,
                    f"member of {group}: not birthright, no recorded grant",
                )
            )
    for sub, person in persons.items():
        if sub not in seen and person.status == PersonStatus.ACTIVE:
            findings.append(
                Finding(
                    "missing_account",
                    "warning",
                    person.username or "",
                    person.employee_number,
                    "no account in the directory",
                )
            )
    if alert and findings:  # a clean run leaves no trace (the worker runs it every interval)
        with services.transaction() as session:
            serious = [f for f in findings if f.kind in SERIOUS]
            audit.record(
                session,
                "hr.reconciled",
                actor="hr",
                details={"findings": len(findings), "serious": len(serious)},
            )
            for f in serious:
                audit.record(
                    session,
                    "hr.reconcile.alert",
                    severity=audit.Severity.CRITICAL,
                    outcome="failure",
                    actor="hr",
                    details={"kind": f.kind, "username": f.username, "detail": f.detail},
                )
    return findings


def findings_csv(findings: list[Finding]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["kind", "severity", "username", "employee_number", "detail"])
    writer.writeheader()
    for f in findings:
        writer.writerow(asdict(f))
    return out.getvalue()


REGISTER_FIELDS = (
    ("name", "Name"),
    ("unit", "Organisational unit"),
    ("title", "Title"),
    ("granted", "Date granted"),
    ("decision", "Decision number"),
    ("ended", "Date ended"),
    ("scope", "Scope of authorisation"),
    ("username", "User identifier"),
    ("remarks", "Remarks"),
    ("certified", "Last certified"),
)


def register(session: Session) -> list[dict[str, Any]]:
    """Register of persons authorised to process personal data (PABIANICE §15): name, unit,
    title, date granted and decision number, date ended, scope, user identifier, remarks — one
    row per authorisation (a joiner's, each later post's), each with its own grant."""
    rows = []
    stmt = (
        select(Authorisation, HrPerson)
        .join(HrPerson, HrPerson.employee_number == Authorisation.employee_number)
        .order_by(
            HrPerson.family_name,
            HrPerson.given_name,
            HrPerson.employee_number,
            Authorisation.granted_on,
            Authorisation.id,
        )
    )
    certified = dict(
        session.execute(
            select(CampaignItem.username, func.max(CampaignItem.decided_at))
            .where(CampaignItem.final.is_(True), CampaignItem.automatic.is_(False))
            .group_by(CampaignItem.username)
        ).all()
    )
    for grant, p in session.execute(stmt):
        last = certified.get(p.username) if p.username and not grant.ended_on else None
        rows.append(
            {
                "name": f"{p.given_name} {p.family_name}",
                "unit": grant.unit,
                "title": grant.title,
                "granted": grant.granted_on.isoformat(),
                "decision": grant.decision_number or "",
                "ended": grant.ended_on.isoformat() if grant.ended_on else "",
                "scope": grant.scope,
                "username": p.username or "",
                "remarks": grant.remarks or "",
                "certified": last.date().isoformat() if last else "",
                "employee_number": p.employee_number,
            }
        )
    return rows


def register_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in REGISTER_FIELDS])
    for row in rows:
        writer.writerow([row[key] for key, _ in REGISTER_FIELDS])
    return out.getvalue()


def register_pdf(rows: list[dict[str, Any]], *, organisation: str) -> bytes:
    """The register as a printable PDF; names and units as written (embedded Unicode font)."""
    from iam.pdf import FAMILY, document

    pdf = document(orientation="L", format="A4")
    pdf.add_page()
    pdf.set_font(FAMILY, "B", 12)
    pdf.cell(0, 8, f"{organisation} – register of authorised persons", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 8)
    pdf.cell(0, 5, f"As of {clock.now():%Y-%m-%d %H:%M} UTC", new_x="LMARGIN", new_y="NEXT")
    with pdf.table() as table:
        head = table.row()
        for _, label in REGISTER_FIELDS:
            head.cell(label)
        for row in rows:
            r = table.row()
            for key, _ in REGISTER_FIELDS:
                r.cell(str(row[key]))
    return bytes(pdf.output())
