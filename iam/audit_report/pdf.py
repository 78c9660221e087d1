"""The audit report as a printable PDF (A4 landscape, embedded Unicode font, readable names)."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from iam import clock
from iam.audit_report.service import COLUMNS, ReportQuery, rows
from iam.models.audit import AuditEvent
from iam.pdf import FAMILY, document

_WIDTHS = {
    "at": 30,
    "event": 52,
    "severity": 18,
    "outcome": 16,
    "actor": 30,
    "subject": 30,
    "client_id": 25,
    "ip": 22,
    "details": 40,
    "id": 14,
}


def report_pdf(
    evs: list[AuditEvent],
    q: ReportQuery,
    *,
    organisation: str,
    zone: str,
    title: str | None = None,
    footer: str | None = None,
) -> bytes:
    pdf: Any = document(orientation="L", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.add_page()
    pdf.set_font(FAMILY, "B", 13)
    pdf.cell(0, 8, f"{organisation} – {title or _('Audit report')}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FAMILY, "", 9)
    period = _(
        "Period: %(start)s – %(end)s (UTC)", start=f"{q.start:%Y-%m-%d %H:%M}", end=f"{q.end:%Y-%m-%d %H:%M}"
    )
    pdf.cell(0, 5, period, new_x="LMARGIN", new_y="NEXT")
    filters = []
    if q.person:
        filters.append(_("person: %(name)s", name=q.person))
    if q.client:
        filters.append(_("application: %(name)s", name=q.client))
    if q.severity:
        filters.append(_("severity %(level)s and above", level=q.severity))
    if filters:
        pdf.cell(0, 5, _("Only events for %(what)s", what="; ".join(filters)), new_x="LMARGIN", new_y="NEXT")
    made = _(
        "Produced %(when)s UTC; %(count)s event(s); times in %(zone)s.",
        when=f"{clock.now():%Y-%m-%d %H:%M}",
        count=len(evs),
        zone=zone,
    )
    pdf.cell(0, 5, made, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font(FAMILY, "", 7)
    widths = tuple(_WIDTHS[key] for key, _label in COLUMNS)
    with pdf.table(col_widths=widths, text_align="LEFT", line_height=3.6) as table:
        head = table.row()
        for _key, label in COLUMNS:
            head.cell(str(label))
        for row in rows(evs, zone=zone):
            r = table.row()
            for key, _label in COLUMNS:
                r.cell(row[key][:400])
    if not evs:
        pdf.ln(3)
        pdf.set_font(FAMILY, "", 10)
        pdf.cell(0, 6, _("No event matched."), new_x="LMARGIN", new_y="NEXT")
    if footer:
        pdf.ln(4)
        pdf.set_font(FAMILY, "", 9)
        pdf.multi_cell(0, 5, footer)
    return bytes(pdf.output())
