"""Evidence for the auditor: a campaign's report as CSV or a printable PDF — scope, reviewers,
every item with its decision, who, when, comment, remediation and its directory read-back. The
SHA-256 of each report produced is recorded in the audit log."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit
from iam.pdf import FAMILY
from iam.pdf import document as pdf_document
from provisioning.reviews.models import Campaign, CampaignItem
from provisioning.reviews.service.campaigns import get

if TYPE_CHECKING:
    from iam.services import Services

COLUMNS = (
    "item",
    "person",
    "person_name",
    "department",
    "title",
    "account",
    "account_kind",
    "kind",
    "resource",
    "via",
    "origin",
    "origin_ref",
    "granted_at",
    "owner",
    "privileged",
    "stage",
    "reviewer",
    "recommendation",
    "decision",
    "reduce_to",
    "automatic",
    "decided_by",
    "decided_at",
    "comment",
    "remediation",
    "remediated_at",
    "verified_at",
)


def _row(item: CampaignItem) -> dict[str, Any]:
    return {
        "item": item.id,
        "person": item.username,
        "person_name": item.person_name,
        "department": item.department or "",
        "title": item.job_title or "",
        "account": item.account,
        "account_kind": item.account_kind,
        "kind": item.kind,
        "resource": item.resource,
        "via": " > ".join(item.via or []),
        "origin": item.origin,
        "origin_ref": item.origin_ref or "",
        "granted_at": item.granted_at.isoformat() if item.granted_at else "",
        "owner": item.owner or "",
        "privileged": "yes" if item.privileged else "no",
        "stage": item.stage,
        "reviewer": item.reviewer,
        "recommendation": item.recommendation,
        "decision": item.decision or "",
        "reduce_to": item.reduce_to or "",
        "automatic": "yes" if item.automatic else "no",
        "decided_by": item.decided_by or "",
        "decided_at": item.decided_at.isoformat() if item.decided_at else "",
        "comment": item.comment or "",
        "remediation": item.remediation or "",
        "remediated_at": item.remediated_at.isoformat() if item.remediated_at else "",
        "verified_at": item.verified_at.isoformat() if item.verified_at else "",
    }


def _items(session: Session, campaign: Campaign) -> list[CampaignItem]:
    return list(
        session.scalars(
            select(CampaignItem)
            .where(CampaignItem.campaign_id == campaign.id)
            .order_by(CampaignItem.username, CampaignItem.account, CampaignItem.resource, CampaignItem.id)
        )
    )


def summary(session: Session, campaign: Campaign) -> dict[str, Any]:
    items = _items(session, campaign)
    decisions = Counter(i.decision or "open" for i in items)
    by_reviewer: dict[str, Counter[str]] = {}
    by_department: dict[str, Counter[str]] = {}
    for item in items:
        state = "decided" if item.decision else "open"
        by_reviewer.setdefault(item.reviewer, Counter())[state] += 1
        by_department.setdefault(item.department or "-", Counter())[state] += 1
    return {
        "id": campaign.id,
        "definition": campaign.definition,
        "title": campaign.title,
        "trigger": campaign.trigger,
        "status": campaign.status,
        "stage": campaign.stage,
        "stages": len(campaign.spec.get("stages", [])),
        "started_at": campaign.started_at.isoformat(),
        "started_by": campaign.started_by,
        "due_at": campaign.due_at.isoformat(),
        "closed_at": campaign.closed_at.isoformat() if campaign.closed_at else None,
        "default_outcome": campaign.spec.get("default_outcome"),
        "scope": campaign.spec.get("scope"),
        "items": len(items),
        "decisions": dict(decisions),
        "automatic": sum(1 for i in items if i.automatic),
        "remediation": dict(Counter(i.remediation for i in items if i.remediation)),
        "reviewers": {k: dict(v) for k, v in sorted(by_reviewer.items())},
        "departments": {k: dict(v) for k, v in sorted(by_department.items())},
    }


def csv_report(session: Session, campaign: Campaign) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for item in _items(session, campaign):
        writer.writerow(_row(item))
    return out.getvalue().encode("utf-8")


def pdf_report(session: Session, campaign: Campaign) -> bytes:
    info = summary(session, campaign)
    pdf = pdf_document(orientation="L", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font(FAMILY, "B", 13)
    pdf.cell(0, 8, _text(f"Access review: {campaign.title}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 9)
    lines = [
        f"Campaign {campaign.id} ({campaign.definition}, {campaign.trigger}), status {campaign.status}",
        f"Started {info['started_at']} by {campaign.started_by}; due {info['due_at']}; "
        f"closed {info['closed_at'] or '-'}",
        f"Scope: {info['scope']}; default outcome for unanswered items: {info['default_outcome']}",
        f"Items: {info['items']}; decisions: {info['decisions']}; automatic: {info['automatic']}; "
        f"remediation: {info['remediation']}",
        "Reviewers: "
        + "; ".join(
            f"{k} {v.get('decided', 0)} decided / {v.get('open', 0)} open"
            for k, v in info["reviewers"].items()
        ),
    ]
    for line in lines:
        pdf.multi_cell(0, 5, _text(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    widths = (28, 30, 45, 24, 24, 30, 20, 44, 32)
    head = ("Person", "Account", "Right", "Origin", "Reviewer", "Decision", "When", "Comment", "Remediation")
    pdf.set_font(FAMILY, "B", 7)
    for w, h in zip(widths, head, strict=True):
        pdf.cell(w, 5, h, border=1)
    pdf.ln()
    pdf.set_font(FAMILY, "", 7)
    for item in _items(session, campaign):
        right = item.resource + (f" (via {' > '.join(item.via)})" if item.via else "")
        decision = (item.decision or "open") + (" (auto)" if item.automatic else "")
        if item.reduce_to:
            decision += f" -> {item.reduce_to}"
        cells = (
            item.username,
            item.account,
            right,
            item.origin,
            item.decided_by or item.reviewer,
            decision,
            f"{item.decided_at:%Y-%m-%d}" if item.decided_at else "",
            item.comment or "",
            (item.remediation or "") + (f" {item.verified_at:%Y-%m-%d}" if item.verified_at else ""),
        )
        for w, text in zip(widths, cells, strict=True):
            pdf.cell(w, 5, _text(text)[: int(w / 1.6)], border=1)
        pdf.ln()
    return bytes(pdf.output())


def _text(text: str) -> str:
    """Names as written (the document's font is Unicode); control characters dropped."""
    return "".join(ch for ch in text if ch.isprintable())


def report(
    services: Services, session: Session, *, campaign_id: str, fmt: str, actor: str
) -> tuple[bytes, str]:
    """The report and its SHA-256 (recorded in the audit log and on the campaign)."""
    campaign = get(session, campaign_id)
    data = pdf_report(session, campaign) if fmt == "pdf" else csv_report(session, campaign)
    digest = hashlib.sha256(data).hexdigest()
    campaign.report_sha256 = digest
    audit.record(
        session,
        "review.report",
        actor=actor,
        details={"campaign": campaign.id, "format": fmt, "sha256": digest, "items": campaign.items_total},
    )
    return data, digest
