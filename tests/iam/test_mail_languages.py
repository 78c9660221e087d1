"""The core's mails in the recipient's language: the overdue monthly audit review reminder to the
security officer (saved language found by the address, else the default); and a long translated
subject keeps its spaces when it is folded (Python's folder loses the one between two encoded
words). Observed at a real SMTP sink."""

from __future__ import annotations

import datetime as dt

import pytest

from iam import audit, clock
from iam.audit_report import review as rv
from iam.config import AuditSettings, MailSettings
from iam.core_jobs import send_mail
from iam.jobs import run_due
from iam.models.identity import Identity
from iam.services import Services
from tests.smtp import SmtpSink


def _to_sink(services: Services, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, **update: object) -> None:
    mail = MailSettings(host="127.0.0.1", port=sink.server_address[1], sender="iam@idp.test")
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={"languages": ["en", "pl", "ro", "vi", "sr-Latn"], "mail": mail, **update}
        ),
    )


@pytest.mark.parametrize(
    ("language", "subject", "phrases"),
    [
        (
            "ro",
            "[IAM] Revizuirea lunară a auditului pentru 2026-11 este întârziată",
            [
                "Revizuirea lunară a jurnalului de audit pentru 2026-11 avea termen",
                "Citiți-o și semnați-o la ",
            ],
        ),
        (
            "sr-Latn",
            "[IAM] Mesečni pregled revizije za 2026-11 kasni",
            [
                "Mesečni pregled dnevnika revizije za 2026-11 trebalo je da bude završen do",
                "Pročitajte ga i potpišite",
            ],
        ),
        (
            None,
            "[IAM] Monthly audit review 2026-11 is overdue",
            [
                "The monthly review of the audit log for 2026-11 was due on 2026-12-10 and has not been signed off.",
                "Read and sign it off at http://localhost/audit/review/2026-11",
            ],
        ),
    ],
)
def test_overdue_audit_review_reminder(
    sqlite_services: Services,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    language: str | None,
    subject: str,
    phrases: list[str],
) -> None:
    services = sqlite_services
    _to_sink(
        services, smtp_sink, monkeypatch, audit=AuditSettings(security_officer_email="officer@example.org")
    )
    clock.freeze(dt.datetime(2026, 11, 12, 10, 0, tzinfo=dt.UTC))
    with services.transaction() as s:
        s.add(
            Identity(
                sub="o", directory="local", username="officer", email="officer@example.org", language=language
            )
        )
        audit.record(s, "login.succeeded", actor="ana", client_id="hr")
    clock.freeze(dt.datetime(2026, 12, 11, 9, 0, tzinfo=dt.UTC))
    assert rv.remind_overdue(services) == ["2026-11"]
    while run_due(services, limit=50):
        pass
    [mail] = [m["msg"] for m in smtp_sink.messages if m["to"] == ["officer@example.org"]]
    assert mail["Subject"] == subject
    for phrase in phrases:
        assert phrase in mail.get_content()


def test_a_long_translated_subject_keeps_every_space(
    sqlite_services: Services, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    _to_sink(sqlite_services, smtp_sink, monkeypatch)
    subjects = [
        "[IAM] Yêu cầu quyền truy cập 1 đã được cấp",
        "[IAM] Nhắc nhở: yêu cầu quyền truy cập 12 đến hạn lúc 4 thg 12, 2026 00:00 UTC",
        "[IAM] Przypomnienie: termin wniosku o dostęp 7 upływa 4 gru 2026 00:00 UTC " * 3,
        "[IAM] Захтев за приступ 3 чека ваше мишљење",
        "[IAM alert] Brute force on one account: alice " * 3,
    ]
    for subject in subjects:
        send_mail(sqlite_services, to="x@example.test", subject=subject.strip(), body="ă ș ț")
    assert [str(m["msg"]["Subject"]) for m in smtp_sink.messages] == [s.strip() for s in subjects]
    assert all(m["msg"].get_content().strip() == "ă ș ț" for m in smtp_sink.messages)
