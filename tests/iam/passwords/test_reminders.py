"""Password-expiry reminders (issue "Password rules…" item 7), observed on a local SMTP sink;
time moves, nothing sleeps."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from iam import clock, jobs
from iam.config import MailSettings
from iam.models.audit import AuditEvent
from iam.models.passwords import PasswordReminder
from iam.passwords.profiles import profile_from_settings
from iam.passwords.reminders import due_bucket, send_due_reminders
from iam.services import Services
from tests.smtp import SmtpSink
from tests.sso.helpers import make_user

START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def cacak(services: Services, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Čačak's profile (182 days, warned 14 days before), reminders at 14/7/1 days, mail to the sink."""
    passwords = services.settings.passwords.model_copy(update={"profile": "cacak"})
    settings = services.settings.model_copy(
        update={
            "passwords": passwords,
            "mail": MailSettings(host="127.0.0.1", port=smtp_sink.server_address[1], sender="iam@idp.test"),
        }
    )
    monkeypatch.setattr(services, "settings", settings)
    monkeypatch.setattr(services, "password_profile", profile_from_settings(passwords))
    return services


def test_due_bucket() -> None:
    days = [14, 7, 1]
    assert due_bucket(days, dt.timedelta(days=20)) is None
    assert due_bucket(days, dt.timedelta(days=14)) == 14
    assert due_bucket(days, dt.timedelta(days=6, hours=23)) == 7
    assert due_bucket(days, dt.timedelta(hours=3)) == 1


def _sent(services: Services) -> int:
    with services.transaction() as s:
        return s.scalar(select(func.count()).select_from(PasswordReminder)) or 0


def test_reminders_are_mailed_once_per_day_bucket(cacak: Services, smtp_sink: SmtpSink) -> None:
    clock.freeze(START)
    user = make_user(cacak, "dragana")  # password set now: expires START + 182 days
    expires = START + dt.timedelta(days=182)

    clock.freeze(expires - dt.timedelta(days=20))
    assert send_due_reminders(cacak) == 0
    clock.freeze(expires - dt.timedelta(days=13))
    assert send_due_reminders(cacak) == 1
    assert send_due_reminders(cacak) == 0  # the worker scans often; one mail per reminder day
    assert jobs.run_due(cacak) >= 1
    assert len(smtp_sink.messages) == 1
    msg = smtp_sink.messages[0]["msg"]
    assert smtp_sink.messages[0]["to"] == [user.email]
    assert msg["Subject"] == "Your password expires in 13 days"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "dragana" in text and expires.strftime("%Y-%m-%d") in text and "/password/change" in text
    assert "<strong>dragana</strong>" in html and 'href="http://localhost/password/change"' in html

    # the worker was down for a week: only the most urgent reminder goes out, once
    clock.freeze(expires - dt.timedelta(hours=20))
    assert send_due_reminders(cacak) == 1
    assert send_due_reminders(cacak) == 0
    jobs.run_due(cacak)
    assert [m["msg"]["Subject"] for m in smtp_sink.messages][-1] == "Your password expires today"
    assert _sent(cacak) == 2
    with cacak.transaction() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.event == "password.expiry_reminder").order_by(AuditEvent.id)
        ).all()
        assert [e.details["days_before"] for e in events] == [14, 1]
        assert all(e.subject == user.id for e in events)

    # expired: no more reminders (the sign-in forces the change)
    clock.freeze(expires + dt.timedelta(minutes=1))
    assert send_due_reminders(cacak) == 0


def test_a_new_password_starts_a_new_cycle(cacak: Services) -> None:
    clock.freeze(START)
    user = make_user(cacak, "milos")
    clock.freeze(START + dt.timedelta(days=175))
    assert send_due_reminders(cacak) == 1
    cacak.directory.set_password(user.id, "Nova#Lozinka-2026", must_change=False)
    assert send_due_reminders(cacak) == 0  # 182 days from now
    clock.freeze(START + dt.timedelta(days=175 + 175))
    assert send_due_reminders(cacak) == 1


def test_reminders_off_and_accounts_without_mail(services: Services) -> None:
    clock.freeze(START)
    make_user(services, "petar")
    clock.freeze(START + dt.timedelta(days=5000))
    assert send_due_reminders(services) == 0  # default profile: passwords do not expire


def test_relay_down_keeps_the_mail_queued(cacak: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    clock.freeze(START)
    make_user(cacak, "ana")
    clock.freeze(START + dt.timedelta(days=170))
    assert send_due_reminders(cacak) == 1
    down = cacak.settings.model_copy(update={"mail": MailSettings(host="127.0.0.1", port=1)})
    monkeypatch.setattr(cacak, "settings", down)
    jobs.run_due(cacak)
    from iam.models.jobs import Job, JobStatus

    with cacak.transaction() as s:
        job = s.scalars(select(Job).where(Job.kind == "iam.mail")).one()
        assert job.status == JobStatus.PENDING and job.attempts == 1 and job.last_error


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        ("pl", "Twoje hasło wygasa za 13 dni", "Nikt z Grad Pabianice nigdy nie poprosi Cię o hasło"),
        ("sr-Cyrl", "Ваша лозинка истиче за 13 дана", "Нико из организације Grad Pabianice"),
        ("vi", "Mật khẩu của bạn hết hạn sau 13 ngày", "Không ai ở Grad Pabianice"),
    ],
)
def test_reminder_in_the_recipients_saved_language(
    cacak: Services,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    language: str,
    subject: str,
    phrase: str,
) -> None:
    """Issue 13: a mail goes out in the recipient's saved language (else the default)."""
    from iam import i18n
    from iam.models.identity import Identity

    settings = cacak.settings.model_copy(
        update={"languages": ["en", "pl", "sr-Cyrl", "vi"], "organisation": "Grad Pabianice"}
    )
    monkeypatch.setattr(cacak, "settings", settings)
    clock.freeze(START)
    user = make_user(cacak, "jadwiga")
    other = make_user(cacak, "marek")  # no saved language: the default (English)
    with cacak.transaction() as s:
        s.add(Identity(sub=user.id, directory="local", username="jadwiga"))
        s.flush()
        assert i18n.save_language(s, user.id, language)
    clock.freeze(START + dt.timedelta(days=182 - 13))
    assert send_due_reminders(cacak) == 2
    jobs.run_due(cacak)
    by_to = {m["to"][0]: m["msg"] for m in smtp_sink.messages}
    mine = by_to[user.email]
    assert mine["Subject"] == subject
    text = mine.get_body(preferencelist=("plain",)).get_content()
    html = mine.get_body(preferencelist=("html",)).get_content()
    assert phrase in text and phrase in html
    assert f'<html lang="{language}">' in html
    assert by_to[other.email]["Subject"] == "Your password expires in 13 days"
