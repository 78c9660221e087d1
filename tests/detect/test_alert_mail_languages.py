"""The alert mail goes out in each recipient's saved language (``identities.language``, found by
the address), else in the organisation's default — observed at a real SMTP sink."""

from __future__ import annotations

import datetime as dt

import pytest

from detect.service import alerts
from iam import clock
from iam.config import MailSettings
from iam.jobs import run_due
from iam.models.identity import Identity
from iam.services import Services
from tests.detect.helpers import failed_login, ruleset, seal
from tests.smtp import SmtpSink

MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("language", "lines"),
    [
        (
            "pl",
            [
                "Alert bezpieczeństwa: Brute force on one account",
                "Reguła:",
                "Próg: 6",
                "Fakty:",
                "aby go potwierdzić lub zamknąć.",
            ],
        ),
        (
            "vi",
            [
                "Cảnh báo an ninh: Brute force on one account",
                "Quy tắc:",
                "Ngưỡng: 6",
                "để xác nhận hoặc đóng",
            ],
        ),
        (
            "sr-Latn",
            ["Bezbednosno upozorenje: Brute force on one account", "Pravilo:", "Prag: 6", "Činjenice:"],
        ),
    ],
)
def test_alert_mail_in_the_officers_language_and_the_default_for_the_other(
    sqlite_services: Services,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    language: str,
    lines: list[str],
) -> None:
    services = sqlite_services
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={
                "languages": ["en", "pl", "vi", "sr-Latn"],
                "mail": MailSettings(
                    host="127.0.0.1", port=smtp_sink.server_address[1], sender="iam@idp.test"
                ),
            }
        ),
    )
    with services.transaction() as s:  # the officer chose a language; the head of service did not
        s.add(Identity(sub="officer", directory="local", username="officer", email="Officer@Example.test"))
        s.add(Identity(sub="head", directory="local", username="head", email="head@example.test"))
        s.flush()
        s.get(Identity, "officer").language = language  # type: ignore[union-attr]
    clock.freeze(MONDAY_NOON)
    for _ in range(6):
        failed_login(services, "alice")
    seal(services)
    alerts.run(services, ruleset=ruleset())
    while run_due(services, limit=50):
        pass
    by_to = {m["to"][0]: m["msg"] for m in smtp_sink.messages}
    officer, head = by_to["officer@example.test"], by_to["head@example.test"]
    assert officer["Subject"] == head["Subject"] == "[IAM alert] Brute force on one account: alice"
    mine = officer.get_content()
    for line in lines:
        assert line in mine
    assert "/security/alerts/" in mine and "Threshold" not in mine
    default = head.get_content()
    for line in ("Security alert: Brute force on one account", "Rule:", "Threshold: 6", "Facts:"):
        assert line in default
    assert "Open http://localhost/security/alerts/" in default
