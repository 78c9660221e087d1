"""``iam hr …`` commands that need no directory: exit codes and --json (issue 10 item 19)."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result
from sqlalchemy import select

import provisioning
from iam.cli import Ctx, cli
from iam.models.audit import AuditEvent
from iam.services import Services
from provisioning.models import EventStatus, HrEvent
from provisioning.service import events as event_service
from provisioning.service.schemas import parse_event

if "hr" not in cli.commands:
    provisioning.register(cli)


def run(services: Services, *args: str) -> Result:
    ctx = Ctx()
    ctx._settings = services.settings
    ctx._services = services
    return CliRunner().invoke(cli, list(args), obj=ctx, catch_exceptions=False)


def refused(result: Result) -> str:
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ")
    return line.removeprefix("Error: ")


def test_hr_replay_nothing_unknown_and_json(sqlite_services: Services) -> None:
    s = sqlite_services
    assert refused(run(s, "hr", "replay", "--all")) == "There are no dead HR events."
    assert refused(run(s, "hr", "replay", "no-such-event", "--json")) == "There is no such HR event."
    result = run(s, "hr", "events", "--employee", "nobody", "--json")
    assert refused(result) == "No HR event matched --employee 'nobody'."
    assert json.loads(result.stdout) == []

    event = parse_event(
        {"idempotency_key": "cli-dead-1", "kind": "leaver", "person": {"employee_number": "E-404"}}
    )
    with s.transaction() as session:
        accepted = event_service.accept(
            session, event, source="api", actor="test", settings=s.settings.provisioning
        )
        event_id = accepted.event.id
        # the worker gave up on it (as after provisioning.max_attempts failures)
        row = session.get(HrEvent, event_id)
        assert row is not None
        row.status = EventStatus.DEAD
    result = run(s, "hr", "replay", "--all", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"replayed": [event_id]}
    with s.reader() as session:
        row = session.get(HrEvent, event_id)
        assert row is not None and row.status == EventStatus.PENDING
        assert session.scalars(select(AuditEvent).where(AuditEvent.event == "hr.event.replayed")).one()
    assert refused(run(s, "hr", "replay", event_id)) == "Only events on the dead-letter list can be replayed."
