"""Access reviews' mails in each recipient's saved language (``identities.language``), else the
organisation's default: the reviewer's reminder and the closing summary to the security
officers — observed at a real SMTP sink."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from iam import clock
from iam.jobs import run_due
from iam.models.identity import Identity
from iam.services import Services
from provisioning import jobs as _provisioning_jobs  # noqa: F401 — registers the review jobs
from provisioning.models import HrPerson, PersonStatus
from provisioning.reviews.definitions import Definition
from provisioning.reviews.models import CampaignItem
from provisioning.reviews.service import campaigns, decisions
from provisioning.reviews.service.decisions import Reviewer
from tests.provisioning.helpers import send_mail_to, speak
from tests.smtp import SmtpSink
from tests.sso.helpers import make_user

MONDAY = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def office(sqlite_services: Services, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Services:
    """ana manages bob (who holds Payments); officer and deputy are the security officers."""
    services = sqlite_services
    clock.freeze(MONDAY)
    s = services.settings
    send_mail_to(
        services,
        smtp_sink,
        monkeypatch,
        reviews=s.reviews.model_copy(update={"security_officers": ["officer", "deputy"]}),
    )
    users = {
        n: make_user(services, n, given_name=n.title(), family_name="X")
        for n in ("ana", "bob", "officer", "deputy")
    }
    services.directory.create_group("Payments")
    services.directory.add_member("Payments", users["bob"].id)
    with services.transaction() as sess:
        for emp, name, manager in (("1", "ana", None), ("2", "bob", "1")):
            sess.add(
                HrPerson(
                    employee_number=emp,
                    given_name=name.title(),
                    family_name="X",
                    department="Finance",
                    title="Clerk",
                    manager=manager,
                    engagement="staff",
                    start_date=MONDAY.date(),
                    status=PersonStatus.ACTIVE,
                    username=name,
                    sub=users[name].id,
                    groups=[],
                    granted_at=MONDAY,
                )
            )
        for name, user in users.items():
            sess.add(Identity(sub=user.id, directory="local", username=name, last_login_at=MONDAY))
    services.extensions["test.users"] = users
    return services


def _speak(services: Services, language: str | None, *names: str) -> None:
    users = services.extensions["test.users"]
    speak(services, language, *(users[n].id for n in names))


def _delivered(services: Services, sink: SmtpSink) -> dict[str, EmailMessage]:
    while run_due(services, limit=50):
        pass
    out = {m["to"][0]: m["msg"] for m in sink.messages}
    sink.messages.clear()
    return out


def _start(services: Services) -> str:
    d = Definition.model_validate({"name": "q4", "title": "Q4 review", "duration_days": 10})
    with services.transaction() as sess:
        return str(campaigns.start(services, sess, definition=d, actor="test")["id"])


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        ("pl", "[IAM] Przypomnienie: Q4 review", "Nadal masz 1 uprawnienie do przejrzenia do "),
        ("ro", "[IAM] Memento: Q4 review", "Mai aveți 1 drept de acces de revizuit până la "),
        (None, "[IAM] Reminder: Q4 review", "You still have 1 access right to review by 2026-12-10"),
    ],
)
def test_reviewer_reminder(
    office: Services, smtp_sink: SmtpSink, language: str | None, subject: str, phrase: str
) -> None:
    _speak(office, language, "ana")
    cid = _start(office)
    _delivered(office, smtp_sink)  # the invitation
    with office.transaction() as sess:
        assert campaigns.remind(office, sess, campaigns.get(sess, cid)) == 1
    mail = _delivered(office, smtp_sink)["ana@example.test"]
    assert mail["Subject"] == subject
    assert phrase in mail.get_content()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "pl",
            [
                "[IAM] Przegląd dostępu zamknięty: Q4 review",
                "Przegląd dostępu „Q4 review” ({cid}) został zamknięty.",
                "  Odebrane: 1",
                "Raport: http://localhost/reviews/campaigns/{cid}",
            ],
        ),
        (
            "vi",
            [
                "[IAM] Đợt rà soát quyền truy cập đã kết thúc: Q4 review",
                "Đợt rà soát quyền truy cập “Q4 review” ({cid}) đã kết thúc.",
                "  Đã thu hồi: 1",
                "Báo cáo: http://localhost/reviews/campaigns/{cid}",
            ],
        ),
    ],
)
def test_closing_summary_in_each_officers_language(
    office: Services, smtp_sink: SmtpSink, language: str, expected: list[str]
) -> None:
    """The officer who chose a language reads it; the deputy (no choice) reads the default."""
    _speak(office, language, "officer")
    cid = _start(office)
    with office.reader() as sess:
        ids = list(sess.scalars(select(CampaignItem.id).where(CampaignItem.campaign_id == cid)))
    assert len(ids) == 1
    with office.transaction() as sess:
        decisions.decide(
            office,
            sess,
            reviewer=Reviewer(username="ana"),
            items=ids,
            decision="revoke",
            comment="Not needed",
        )
    _delivered(office, smtp_sink)
    with office.transaction() as sess:
        campaigns.close(office, sess, campaign_id=cid, actor="officer")
    sent = _delivered(office, smtp_sink)
    mine, default = sent["officer@example.test"], sent["deputy@example.test"]
    subject, *lines = (e.format(cid=cid) for e in expected)
    assert mine["Subject"] == subject
    for line in lines:
        assert line in mine.get_content()
    assert default["Subject"] == "[IAM] Access review closed: Q4 review"
    text = default.get_content()
    for line in (
        f'The access review "Q4 review" ({cid}) has closed.',
        "  Revoked: 1",
        "Revocations are carried into the directory by the worker and read back.",
        f"Report: http://localhost/reviews/campaigns/{cid}",
    ):
        assert line in text
