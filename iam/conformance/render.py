"""The report as HTML (the page and ``--format html``) and PDF (``--format pdf``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from iam.pdf import FAMILY, document

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

#: The report's fixed words, per language (the rulebooks' languages; English otherwise).
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Conformance report",
        "period": "Period",
        "generated": "Generated",
        "organisation": "Organisation",
        "article": "Article",
        "rule": "Rule",
        "status": "Status",
        "evidence": "Evidence",
        "query": "How to re-run",
        "met": "met",
        "not met": "not met",
        "not configured": "not configured",
        "outside the system": "outside the system",
        "totals": "Totals",
        "hash": "SHA-256 of the report (recorded in the audit log)",
        "why_outside": "Not served by the software",
    },
    "sr": {
        "title": "Izveštaj o usklađenosti",
        "period": "Period",
        "generated": "Izrađen",
        "organisation": "Organ",
        "article": "Član",
        "rule": "Pravilo",
        "status": "Status",
        "evidence": "Dokazi",
        "query": "Kako ponoviti proveru",
        "met": "ispunjeno",
        "not met": "nije ispunjeno",
        "not configured": "nije podešeno",
        "outside the system": "van sistema",
        "totals": "Ukupno",
        "hash": "SHA-256 izveštaja (upisan u dnevnik revizije)",
        "why_outside": "Softver ne pokriva",
    },
}


def words(language: str) -> dict[str, str]:
    return WORDS.get(language.split("_")[0].split("-")[0], WORDS["en"])


def html(report: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("iam/conformance_report.html").render(report=report, w=words(report["language"]))


def _cell(doc: Any, width: float, height: float, text: str) -> None:
    doc.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT")


def pdf(report: dict[str, Any]) -> bytes:
    w = words(report["language"])
    doc = document(orientation="P", unit="mm", format="A4")
    doc.set_auto_page_break(True, margin=15)
    doc.add_page()
    width = doc.w - doc.l_margin - doc.r_margin
    doc.set_font(FAMILY, "B", 14)
    _cell(doc, width, 7, f"{w['title']}: {report['rulebook']['title']}")
    doc.set_font(FAMILY, "", 9)
    _cell(
        doc,
        width,
        5,
        f"{w['organisation']}: {report['organisation']}   {w['period']}: {report['period']['label']}   "
        f"{w['generated']}: {report['generated_at'][:19]} UTC",
    )
    totals = ", ".join(f"{w.get(k, k)}: {v}" for k, v in sorted(report["totals"].items()))
    _cell(doc, width, 5, f"{w['totals']}: {totals}")
    doc.ln(2)
    for article in report["articles"]:
        doc.set_font(FAMILY, "B", 10)
        status = w.get(article["status"], article["status"])
        rules = f" ({', '.join(article['rules'])})" if article["rules"] else ""
        _cell(doc, width, 5.5, f"{article['ref']} — {status.upper()}{rules}")
        doc.set_font(FAMILY, "", 9)
        _cell(doc, width, 4.5, article["rule"])
        if article.get("outside"):
            _cell(doc, width, 4.5, f"{w['why_outside']}: {article['outside']}")
        for ev in article["evidence"]:
            doc.set_font(FAMILY, "B", 8.5)
            _cell(doc, width, 4.2, f"• {ev['check']}: {w.get(ev['status'], ev['status'])} — {ev['summary']}")
            doc.set_font(FAMILY, "", 8)
            for item in ev["items"][:20]:
                _cell(doc, width, 4, f"    {item}")
            if ev["query"]:
                _cell(doc, width, 4, f"    {w['query']}: {ev['query']}")
        doc.ln(1.5)
    doc.ln(3)
    doc.set_font(FAMILY, "", 8)
    _cell(doc, width, 4, f"{w['hash']}: {report['sha256']}")
    return bytes(doc.output())
