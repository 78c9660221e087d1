"""The access requests' mails go out in each recipient's saved language (``identities.language``),
else in the organisation's default — the approver's step, the reminder and the overdue notice,
the refusal, the grant and the end of a time-limited grant — observed at a real SMTP sink."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from iam import clock
from iam.jobs import run_due
from iam.models.identity import Identity
from iam.services import Services
from provisioning import jobs as _provisioning_jobs  # noqa: F401 — registers the request jobs
from provisioning.models import HrPerson, PersonStatus
from provisioning.requests.service import asking, deciding
from provisioning.requests.service.common import Actor
from tests.provisioning.helpers import send_mail_to, speak
from tests.smtp import SmtpSink
from tests.sso.helpers import make_user

CATALOGUE = """
[item.records]
group = "Records"
title = { en = "Records: read", pl = "Akta: odczyt", ro = "Registre: citire", vi = "Hồ sơ: đọc", sr = "Arhiva: čitanje" }
chain = ["manager"]
max_days = 30
"""

MONDAY = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def office(
    sqlite_services: Services, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Services]:
    """mara manages ivo; sec is the security officer; mails go to the sink; five languages."""
    services = sqlite_services
    clock.freeze(MONDAY)
    users = {n: make_user(services, n, given_name=n.title(), family_name="T") for n in ("mara", "ivo", "sec")}
    path = tmp_path / "requestable.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    s = services.settings
    send_mail_to(
        services,
        smtp_sink,
        monkeypatch,
        reviews=s.reviews.model_copy(update={"security_officers": ["sec"]}),
        requests=s.requests.model_copy(update={"catalogue_file": path, "country": "PL"}),
    )
    services.extensions.pop("requests.catalogue", None)
    services.directory.create_group("Records")
    with services.transaction() as sess:
        for emp, name, manager in (("10", "mara", None), ("11", "ivo", "10"), ("12", "sec", None)):
            sess.add(
                HrPerson(
                    employee_number=emp,
                    given_name=name.title(),
                    family_name="T",
                    department="Registry",
                    title="Clerk",
                    manager=manager,
                    engagement="staff",
                    start_date=clock.now().date(),
                    status=PersonStatus.ACTIVE,
                    username=name,
                    sub=users[name].id,
                    groups=[],
                )
            )
            sess.add(
                Identity(sub=users[name].id, directory="local", username=name, email=f"{name}@example.test")
            )
    services.extensions["test.users"] = users
    yield services
    services.extensions.pop("requests.catalogue", None)


def _speak(services: Services, language: str | None, *names: str) -> None:
    users = services.extensions["test.users"]
    speak(services, language, *(users[n].id for n in names))


def _ask(services: Services, *, days: int | None = None) -> int:
    ivo = services.extensions["test.users"]["ivo"]
    with services.transaction() as sess:
        req = asking.submit(
            services,
            sess,
            actor=Actor(username="ivo", sub=ivo.id),
            item_name="records",
            person_sub=ivo.id,
            justification="Filing",
            duration_days=days,
        )
        return req.id


def _decide(services: Services, rid: int, outcome: str, comment: str) -> None:
    mara = services.extensions["test.users"]["mara"]
    with services.transaction() as sess:
        deciding.decide(
            services,
            sess,
            request_id=rid,
            actor=Actor(username="mara", sub=mara.id),
            outcome=outcome,
            comment=comment,
        )


def _delivered(services: Services, sink: SmtpSink) -> dict[str, list[tuple[str, str]]]:
    """Run the worker until nothing is due; the mails the sink got, by recipient (then forget them)."""
    while run_due(services, limit=50):
        pass
    out: dict[str, list[tuple[str, str]]] = {}
    for m in sink.messages:
        out.setdefault(m["to"][0], []).append((str(m["msg"]["Subject"]), str(m["msg"].get_content())))
    sink.messages.clear()
    return out


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "pl",
            {
                "step": "[IAM] Wniosek o dostęp {rid} czeka na Twoją decyzję",
                "asked": "ivo wnioskuje o Akta: odczyt (Records) dla: Ivo T (ivo).",
                "why": "Uzasadnienie: Filing",
                "refused": "[IAM] Wniosek o dostęp {rid} został odrzucony",
                "by": "Wniosek o dostęp {rid} dotyczący Akta: odczyt (ivo) został odrzucony przez: mara.",
                "comment": "Komentarz: Not needed now",
            },
        ),
        (
            None,
            {
                "step": "[IAM] Access request {rid} waits for your decision",
                "asked": "ivo asked for Records: read (Records) for Ivo T (ivo).",
                "why": "Justification: Filing",
                "refused": "[IAM] Access request {rid} refused",
                "by": "The access request {rid} for Records: read (ivo) was refused by mara.",
                "comment": "Comment: Not needed now",
            },
        ),
    ],
)
def test_step_and_refusal_mails(
    office: Services, smtp_sink: SmtpSink, language: str | None, expected: dict[str, str]
) -> None:
    _speak(office, language, "mara", "ivo")
    rid = _ask(office)
    sent = _delivered(office, smtp_sink)
    [(subject, body)] = sent["mara@example.test"]
    assert subject == expected["step"].format(rid=rid)
    assert expected["asked"] in body and expected["why"] in body and "/requests/inbox" in body
    _decide(office, rid, "refuse", "Not needed now")
    sent = _delivered(office, smtp_sink)
    [(subject, body)] = sent["ivo@example.test"]
    assert subject == expected["refused"].format(rid=rid)
    assert expected["by"].format(rid=rid) in body and expected["comment"] in body


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "vi",
            {
                "granted": "[IAM] Yêu cầu quyền truy cập {rid} đã được cấp",
                "holds": "ivo hiện có Records đến ",
                "decision": "Quyết định AR/2026/{rid} do mara đưa ra: Fine",
                "ended": "[IAM] Quyền truy cập đã kết thúc: Records",
                "ended_text": "Quyền truy cập có thời hạn theo yêu cầu {rid} (Records) đã kết thúc.",
            },
        ),
        (
            None,
            {
                "granted": "[IAM] Access request {rid} granted",
                "holds": "ivo now holds Records until 2026-12-10 ",
                "decision": "Decision AR/2026/{rid} by mara: Fine",
                "ended": "[IAM] Access ended: Records",
                "ended_text": "The time-limited access of request {rid} (Records) ended.",
            },
        ),
    ],
)
def test_grant_and_end_mails(
    office: Services, smtp_sink: SmtpSink, language: str | None, expected: dict[str, str]
) -> None:
    _speak(office, language, "ivo")
    rid = _ask(office, days=10)
    _delivered(office, smtp_sink)
    _decide(office, rid, "grant", "Fine")
    sent = _delivered(office, smtp_sink)
    [(subject, body)] = sent["ivo@example.test"]
    assert subject == expected["granted"].format(rid=rid)
    assert expected["holds"] in body and expected["decision"].format(rid=rid) in body
    clock.advance(dt.timedelta(days=11))
    sent = _delivered(office, smtp_sink)
    [(subject, body)] = sent["ivo@example.test"]
    assert subject == expected["ended"]
    assert expected["ended_text"].format(rid=rid) in body


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "sr-Latn",
            {
                "reminder": "[IAM] Podsetnik: rok za zahtev za pristup {rid} je ",
                "waits": "Korak „rukovodilac” zahteva za pristup {rid} (Arhiva: čitanje za ivo) čeka na vas.",
                "overdue": "[IAM] Rok je istekao: zahtev za pristup {rid}",
                "late": "Rok za korak „rukovodilac” zahteva za pristup {rid} (Arhiva: čitanje za ivo) bio je ",
                "to": "Eskaliran je na: sec.",
            },
        ),
        (
            None,
            {
                "reminder": "[IAM] Reminder: access request {rid} is due ",
                "waits": "The manager step of access request {rid} (Records: read for ivo) waits for you.",
                "overdue": "[IAM] Overdue: access request {rid}",
                "late": "The manager step of access request {rid} (Records: read for ivo) was due ",
                "to": "It is escalated to: sec.",
            },
        ),
    ],
)
def test_reminder_and_overdue_mails(
    office: Services, smtp_sink: SmtpSink, language: str | None, expected: dict[str, str]
) -> None:
    _speak(office, language, "mara", "sec")
    rid = _ask(office)
    _delivered(office, smtp_sink)

    def tick() -> dict[str, int]:
        with office.transaction() as sess:
            return deciding.tick(office, sess)

    seen: dict[str, int] = {"reminded": 0, "escalated": 0}
    for _ in range(40):  # half days until the step was reminded and then escalated
        for key, n in tick().items():
            seen[key] += n
        if seen["reminded"]:
            break
        clock.advance(dt.timedelta(hours=12))
    sent = _delivered(office, smtp_sink)
    [(subject, body)] = sent["mara@example.test"]
    assert subject.startswith(expected["reminder"].format(rid=rid))
    assert expected["waits"].format(rid=rid) in body
    for _ in range(40):
        clock.advance(dt.timedelta(hours=12))
        if tick()["escalated"]:
            break
    sent = _delivered(office, smtp_sink)
    for who in ("mara@example.test", "sec@example.test"):
        [(subject, body)] = sent[who]
        assert subject == expected["overdue"].format(rid=rid)
        assert expected["late"].format(rid=rid) in body and expected["to"] in body


def test_each_recipient_reads_their_own_language(office: Services, smtp_sink: SmtpSink) -> None:
    """One overdue step, two recipients: the one who chose Romanian reads Romanian, the other
    (no saved choice) the organisation's default."""
    _speak(office, "ro", "sec")
    rid = _ask(office)
    _delivered(office, smtp_sink)
    clock.advance(dt.timedelta(days=10))
    with office.transaction() as sess:
        assert deciding.tick(office, sess)["escalated"] == 1
    sent = _delivered(office, smtp_sink)
    assert [s for s, _ in sent["sec@example.test"]] == [f"[IAM] Termen depășit: cererea de acces {rid}"]
    assert [s for s, _ in sent["mara@example.test"]] == [f"[IAM] Overdue: access request {rid}"]
