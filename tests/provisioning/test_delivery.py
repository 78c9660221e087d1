"""Events are stored before they are acknowledged, applied exactly once, in effective order;
malformed input changes nothing; an unreachable directory delays but loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from iam import clock, jobs
from iam.cli import Ctx, cli
from iam.directory.ad import ActiveDirectory
from iam.models import Job
from provisioning.models import EventStatus, HrEvent
from provisioning.service.events import APPLY_JOB
from provisioning.service.schemas import EventIn
from tests.provisioning.conftest import SFX, Hr, joiner

pytestmark = pytest.mark.samba

import provisioning  # noqa: E402

provisioning.register(cli)


def _count(hr: Hr) -> int:
    with hr.services.reader() as s:
        return int(s.scalar(select(func.count()).select_from(HrEvent)) or 0)


def test_token_with_hr_scope_required(hr: Hr) -> None:
    assert hr.client.post("/api/v1/hr/events", json=joiner("1")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert hr.client.post("/api/v1/hr/events", json=joiner("1"), headers=bad).status_code == 401
    assert _count(hr) == 0


def test_duplicate_delivery_is_recognised_and_a_reused_key_refused(hr: Hr) -> None:
    event = joiner("4001")
    first = hr.post(event)
    again = hr.post(event)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["duplicate"] is True and again.json["id"] == first.json["id"]
    changed = json.loads(json.dumps(event))
    changed["person"]["title"] = "Director"
    conflict = hr.post(changed)
    assert conflict.status_code == 409
    assert "idempotency key" in conflict.json["error_description"]
    hr.work()
    assert _count(hr) == 1
    user = hr.directory.find_user(employee_number="4001")
    assert user is not None
    assert hr.accounts("4001") == [user.dn]  # exactly one account holds the number


def test_simultaneous_deliveries_of_one_event_store_it_once_and_create_one_account(
    hr: Hr, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = joiner("4101")
    headers = [hr.headers(), hr.headers()]
    if "postgres" in request.node.callspec.id:
        # Both requests have looked the key up and found nothing before either stores the event,
        # so one of them meets the unique key: the race path. (SQLite runs one writer at a time,
        # so there the second request simply finds the stored event.)
        both_looked = threading.Barrier(2, timeout=20)
        effective = EventIn.effective

        def effective_after_both_looked(self: EventIn, timezone: str, **kw: Any) -> dt.datetime:
            both_looked.wait()
            return effective(self, timezone, **kw)

        monkeypatch.setattr(EventIn, "effective", effective_after_both_looked)
    answers: list[Any] = [None, None]
    errors: list[BaseException] = []

    def deliver(i: int) -> None:
        try:
            client = hr.client.application.test_client()
            answers[i] = client.post("/api/v1/hr/events", json=event, headers=headers[i])
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    assert not errors, errors
    assert sorted(a.status_code for a in answers) == [200, 202], [a.get_json() for a in answers]
    [first] = [a.json for a in answers if a.status_code == 202]
    [again] = [a.json for a in answers if a.status_code == 200]
    assert first["duplicate"] is False and again["duplicate"] is True and again["id"] == first["id"]
    with hr.services.reader() as s:
        assert list(s.scalars(select(HrEvent.id))) == [first["id"]]
        assert s.scalar(select(func.count()).select_from(Job).where(Job.kind == APPLY_JOB)) == 1
    hr.work()
    user = hr.directory.find_user(employee_number="4101")
    assert user is not None
    assert hr.accounts("4101") == [user.dn]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"kind": "promotion"}, "kind: Input should be 'joiner', 'mover', 'leaver' or 'rehire'"),
        ({"person": {"employee_number": "x y"}}, "person.employee_number: String should match pattern"),
        (
            {"effective_at": "2026-12-01T08:00:00"},
            "effective_at: Value error, a date-time needs a UTC offset",
        ),
        ({"person": {"employee_number": "5"}}, "a joiner needs person.given_name"),
        ({"unknown": 1}, "unknown: Extra inputs are not permitted"),
    ],
)
def test_malformed_event_is_refused_precisely_and_changes_nothing(hr: Hr, patch: dict, message: str) -> None:
    event = {**joiner("5"), **patch}
    resp = hr.post(event)
    assert resp.status_code == 400
    assert message.replace("Value error, ", "") in resp.json["error_description"]
    assert _count(hr) == 0


def test_out_of_order_mover_is_superseded_and_mover_before_joiner_waits(hr: Hr) -> None:
    now = clock.now()
    # the mover arrives before its joiner: it waits (retried), then applies after the joiner
    early = {
        "idempotency_key": "m-6001",
        "kind": "mover",
        "effective_at": (now + dt.timedelta(minutes=5)).isoformat(),
        "person": {"employee_number": "6001", "department": "IT", "title": "Engineer"},
    }
    assert hr.post(early).status_code == 202
    assert hr.post(joiner("6001", "Marek", "Nowak")).status_code == 202
    clock.advance(dt.timedelta(minutes=6))
    hr.work()
    user = hr.directory.find_user(employee_number="6001")
    assert user is not None
    assert hr.directory.user_groups(user.id, nested=False) == ["all-staff", "it"]
    # an older mover delivered late does not undo the newer state
    stale = {
        "idempotency_key": "m-6001-old",
        "kind": "mover",
        "effective_at": (now + dt.timedelta(minutes=1)).isoformat(),
        "person": {"employee_number": "6001", "department": "Finance"},
    }
    resp = hr.post(stale)
    hr.work()
    with hr.services.reader() as s:
        row = s.get(HrEvent, resp.json["id"])
        assert row is not None and row.status == EventStatus.SUPERSEDED
    assert hr.directory.user_groups(user.id, nested=False) == ["all-staff", "it"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_directory_unreachable_during_batch_nothing_lost_nothing_twice(hr: Hr, tmp_path: Path) -> None:
    lines = [json.dumps(joiner(f"70{i:02d}", "Jan", "Kowalski")) for i in range(6)]
    lines.append(json.dumps(joiner("7099", "Eva", "Novák", start_date="2026-13-01")))  # malformed
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    ctx = Ctx()
    ctx._services = hr.services
    result = runner.invoke(cli, ["hr", "import", str(bad)], obj=ctx)
    assert result.exit_code == 1
    assert "line 7: person.start_date" in result.output
    assert _count(hr) == 0  # the whole file is refused

    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines[:6]) + "\n")
    dry = runner.invoke(cli, ["hr", "import", str(good), "--dry-run", "--json"], obj=ctx)
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.output)["events"]
    assert [p["username"] for p in planned] == [f"jan.kowalski{SFX}"] + [
        f"jan.kowalski{SFX}{n}" for n in range(2, 7)
    ]
    assert _count(hr) == 0

    working = hr.services.directory
    broken = ActiveDirectory(
        working.settings.model_copy(
            update={"url": f"ldaps://127.0.0.1:{_closed_port()}", "connect_timeout": 1.0}
        )
    )
    hr.services.__dict__["directory"] = broken
    result = runner.invoke(cli, ["hr", "import", str(good)], obj=ctx)
    assert result.exit_code == 0, result.output
    assert _count(hr) == 6  # stored before anything touched the directory
    hr.work()
    with hr.services.reader() as s:
        rows = list(s.scalars(select(HrEvent)))
        assert {r.status for r in rows} == {EventStatus.PENDING}
        assert all(r.attempts >= 1 and r.error for r in rows)
    hr.services.__dict__["directory"] = working  # the directory is back
    for _ in range(4):
        clock.advance(dt.timedelta(minutes=10))  # past the backoff
        hr.work()
    with hr.services.reader() as s:
        rows = list(s.scalars(select(HrEvent)))
        assert {r.status for r in rows} == {EventStatus.APPLIED}, [(r.status, r.error) for r in rows]
    users = [hr.directory.find_user(employee_number=f"70{i:02d}") for i in range(6)]
    assert sorted(u.username for u in users if u) == [p["username"] for p in planned]
    # the same file again: recognised, nothing applied twice
    again = runner.invoke(cli, ["hr", "import", str(good), "--json"], obj=ctx)
    assert json.loads(again.output) == {"accepted": 0, "duplicates": 6, "total": 6}


def test_event_that_keeps_failing_goes_to_dead_letters_and_is_replayable(hr: Hr) -> None:
    # the clock moves 90 minutes below: start in the morning, so no run crosses midnight (the
    # joiner's start date would then be a day after the mover it must precede)
    clock.freeze(dt.datetime.combine(clock.now().date() + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC))
    hr.services.settings.provisioning.max_attempts = 2
    resp = hr.post(
        {"idempotency_key": "mv-ghost", "kind": "mover", "person": {"employee_number": "8001", "title": "X"}}
    )
    for _ in range(3):
        hr.work()
        clock.advance(dt.timedelta(minutes=30))
    with hr.services.reader() as s:
        row = s.get(HrEvent, resp.json["id"])
        assert row is not None and row.status == EventStatus.DEAD
        assert "no HR record" in (row.error or "")
    assert hr.post(joiner("8001")).status_code == 202
    hr.work()
    runner = CliRunner()
    ctx = Ctx()
    ctx._services = hr.services
    out = runner.invoke(cli, ["hr", "replay", resp.json["id"]], obj=ctx)
    assert out.exit_code == 0, out.output
    hr.work()
    with hr.services.reader() as s:
        row = s.get(HrEvent, resp.json["id"])
        assert row is not None and row.status == EventStatus.APPLIED


def _dead_mover(hr: Hr, key: str, emp: str) -> str:
    hr.services.settings.provisioning.max_attempts = 1
    resp = hr.post(
        {"idempotency_key": key, "kind": "mover", "person": {"employee_number": emp, "title": "X"}}
    )
    hr.work()
    with hr.services.reader() as s:
        row = s.get(HrEvent, resp.json["id"])
        assert row is not None and row.status == EventStatus.DEAD, row and row.status
    return str(resp.json["id"])


def test_a_dead_event_that_can_never_apply_is_discarded_with_a_reason(hr: Hr) -> None:
    """Issue 10 item 16: discarded (CLI and API), audited with the reason, never applied, and
    refused without a reason or when the event is not dead."""
    from iam.models.audit import AuditEvent

    by_cli = _dead_mover(hr, "mv-typo", "9901")
    ctx = Ctx()
    ctx._services = hr.services
    runner = CliRunner()
    no_reason = runner.invoke(cli, ["hr", "discard", by_cli], obj=ctx)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    blank = runner.invoke(cli, ["hr", "discard", by_cli, "--reason", "  "], obj=ctx)
    assert blank.exit_code == 1 and "Give the reason" in blank.output
    out = runner.invoke(
        cli, ["hr", "discard", by_cli, "--reason", "typo in the employee number", "--json"], obj=ctx
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert (
        data["status"] == "discarded"
        and data["result"]["discarded"]["reason"] == "typo in the employee number"
    )
    again = runner.invoke(cli, ["hr", "discard", by_cli, "--reason", "twice"], obj=ctx)
    assert again.exit_code == 1 and "Only events on the dead-letter list" in again.output
    replay = runner.invoke(cli, ["hr", "replay", by_cli], obj=ctx)
    assert replay.exit_code == 1  # a discarded event is not replayed either

    by_api = _dead_mover(hr, "mv-ghost-api", "9902")
    url = f"/api/v1/hr/events/{by_api}/discard"
    assert hr.client.post(url, json={"reason": "x"}).status_code == 401
    assert hr.client.post(url, json={}, headers=hr.headers()).status_code == 400
    assert hr.client.post(url, json={"reason": " "}, headers=hr.headers()).status_code == 400
    missing = hr.client.post("/api/v1/hr/events/nope/discard", json={"reason": "r"}, headers=hr.headers())
    assert missing.status_code == 404
    resp = hr.client.post(url, json={"reason": "the person never existed"}, headers=hr.headers())
    assert resp.status_code == 200 and resp.json["status"] == "discarded"
    assert hr.client.post(url, json={"reason": "again"}, headers=hr.headers()).status_code == 409

    # a joiner for 9902 later does not bring the discarded mover back
    assert hr.post(joiner("9902")).status_code == 202
    hr.work()
    with hr.services.reader() as s:
        assert s.get(HrEvent, by_api).status == EventStatus.DISCARDED  # type: ignore[union-attr]
        events = s.scalars(select(AuditEvent).where(AuditEvent.event == "hr.event.discarded")).all()
        assert sorted(e.details["reason"] for e in events) == [
            "the person never existed",
            "typo in the employee number",
        ]
        assert {e.severity for e in events} == {"significant"}


def test_a_leaver_is_applied_before_a_queue_of_joiners(hr: Hr) -> None:
    """Issue 18: a leaver's access ends first, even behind a batch of joiners (jobs.URGENT)."""
    first = hr.post(joiner("4701"))
    assert first.status_code == 202
    hr.work()
    for i in range(4):
        assert hr.post(joiner(f"47{10 + i}", given=f"Joiner{i}")).status_code == 202
    leave = hr.post(
        {"idempotency_key": "leave-4701", "kind": "leaver", "person": {"employee_number": "4701"}}
    )
    assert leave.status_code == 202
    with hr.services.reader() as s:
        queued = {
            str(j.payload["employee_number"]): j.priority
            for j in s.scalars(select(Job).where(Job.kind == APPLY_JOB, Job.status == "pending"))
        }
    assert queued["4701"] == jobs.URGENT and {queued[f"47{10 + i}"] for i in range(4)} == {jobs.NORMAL}
    jobs.run_due(hr.services, limit=1)  # one job: the leaver's, though the joiners came first
    with hr.services.reader() as s:
        assert s.get(HrEvent, leave.json["id"]).status == EventStatus.APPLIED  # type: ignore[union-attr]
        assert (
            s.scalar(select(func.count()).select_from(HrEvent).where(HrEvent.status == EventStatus.APPLIED))
            == 2
        )
