"""The report as HTML (the page and ``--format html``) and PDF (``--format pdf``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from iam.conformance import catalogue
from iam.pdf import FAMILY, document

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

#: The report's fixed words, per language: the rulebooks' languages (Serbian in Latin script for
#: sr-Latn and sr-Cyrl pages alike: the transliteration lives in deploy/, outside the package),
#: English for any other. The last keys are the reasons an article is outside the system.
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
        "organisational": "organisational",
        "physical": "physical",
        "network": "network",
        "endpoint": "endpoint",
        "contractual": "contractual",
        "scope": "scope",
        "no requirement": "no requirement",
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
        "organisational": "organizaciona mera",
        "physical": "fizička zaštita",
        "network": "mreža",
        "endpoint": "radne stanice i uređaji",
        "contractual": "ugovorna obaveza",
        "scope": "predmet i ciljevi propisa",
        "no requirement": "bez zahteva",
    },
    "pl": {
        "title": "Raport zgodności",
        "period": "Okres",
        "generated": "Sporządzono",
        "organisation": "Jednostka",
        "article": "Przepis",
        "rule": "Wymaganie",
        "status": "Status",
        "evidence": "Dowody",
        "query": "Jak powtórzyć sprawdzenie",
        "met": "spełnione",
        "not met": "niespełnione",
        "not configured": "nieskonfigurowane",
        "outside the system": "poza systemem",
        "totals": "Razem",
        "hash": "SHA-256 raportu (zapisany w dzienniku zdarzeń audytowych)",
        "why_outside": "Poza zakresem oprogramowania",
        "organisational": "środek organizacyjny",
        "physical": "zabezpieczenie fizyczne",
        "network": "sieć",
        "endpoint": "stacje robocze i urządzenia",
        "contractual": "zobowiązanie umowne",
        "scope": "zakres i cele przepisów",
        "no requirement": "brak wymagań",
    },
    "ro": {
        "title": "Raport de conformitate",
        "period": "Perioada",
        "generated": "Întocmit la",
        "organisation": "Instituția",
        "article": "Articolul",
        "rule": "Cerința",
        "status": "Stare",
        "evidence": "Dovezi",
        "query": "Cum se repetă verificarea",
        "met": "îndeplinită",
        "not met": "neîndeplinită",
        "not configured": "neconfigurată",
        "outside the system": "în afara sistemului",
        "totals": "Total",
        "hash": "SHA-256 al raportului (înregistrat în jurnalul de audit)",
        "why_outside": "Nu este acoperită de aplicație",
        "organisational": "măsură organizatorică",
        "physical": "protecție fizică",
        "network": "rețea",
        "endpoint": "stații de lucru și echipamente",
        "contractual": "obligație contractuală",
        "scope": "obiectul și scopul reglementării",
        "no requirement": "fără cerințe",
    },
    "vi": {
        "title": "Báo cáo tuân thủ",
        "period": "Kỳ báo cáo",
        "generated": "Ngày lập",
        "organisation": "Cơ quan",
        "article": "Điều",
        "rule": "Yêu cầu",
        "status": "Trạng thái",
        "evidence": "Bằng chứng",
        "query": "Cách chạy lại kiểm tra",
        "met": "đạt",
        "not met": "không đạt",
        "not configured": "chưa cấu hình",
        "outside the system": "ngoài hệ thống",
        "totals": "Tổng cộng",
        "hash": "SHA-256 của báo cáo (ghi trong nhật ký kiểm toán)",
        "why_outside": "Ngoài phạm vi phần mềm",
        "organisational": "biện pháp tổ chức",
        "physical": "bảo vệ vật lý",
        "network": "mạng",
        "endpoint": "máy trạm và thiết bị",
        "contractual": "nghĩa vụ hợp đồng",
        "scope": "phạm vi và mục tiêu của quy chế",
        "no requirement": "không có yêu cầu",
    },
}

#: The languages a report is in (``--language``; any other gives English).
LANGUAGES = tuple(WORDS)


def words(language: str) -> dict[str, str]:
    """The fixed words for a language tag (``pl``, ``sr-Cyrl``, ``sr_Latn``); English otherwise."""
    return WORDS.get(catalogue.base_language(language), WORDS["en"])


def lang(language: str) -> str:
    """The HTML ``lang`` of a report's words: ``sr-Latn`` for any Serbian, ``en`` for the rest."""
    base = catalogue.base_language(language)
    return "sr-Latn" if base == "sr" else base if base in WORDS else "en"


def html(report: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("iam/conformance_report.html").render(
        report=report, w=words(report["language"]), lang=lang(report["language"])
    )


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
            _cell(doc, width, 4.5, f"{w['why_outside']}: {w.get(article['outside'], article['outside'])}")
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
