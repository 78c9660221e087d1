"""Refusals stay on record when the refusal rolls the transaction back (iam.audit.record_refusal),
on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from iam import audit
from iam.audit import Severity
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from iam.services import Services


class Refused(Exception):
    pass


def _refuse(s: object, *changes: str, **kw: object) -> None:
    """Record the changes and a refusal, then refuse (the caller's unit of work rolls back)."""
    for name in changes:
        audit.record(s, name, actor="alice")  # type: ignore[arg-type]
    audit.record_refusal(s, "thing.refused", **kw)  # type: ignore[arg-type]
    raise Refused


def _events(services: Services) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.event.like("thing.%")).order_by(AuditEvent.id))
        )


def test_refusal_survives_the_rollback_that_follows_it(services: Services) -> None:
    with pytest.raises(Refused), services.transaction() as s:  # "thing.changed" rolls back
        _refuse(s, "thing.changed", actor="alice", subject="bob", details={"why": "no"})
    events = _events(services)
    assert [(e.event, e.outcome, e.severity, e.details) for e in events] == [
        ("thing.refused", "failure", "significant", {"why": "no"})
    ]
    with services.transaction() as s:  # the row is intact: its HMAC verifies, it seals
        audit.seal(s)
        result = audit.verify(s)
    assert result.ok and result.unsealed == 0


def test_committed_refusal_is_written_once(services: Services) -> None:
    with services.transaction() as s:
        audit.record_refusal(s, "thing.refused", actor="alice")
    assert [e.event for e in _events(services)] == ["thing.refused"]


def test_refusal_in_a_rolled_back_savepoint_is_kept(services: Services) -> None:
    with services.transaction() as s:
        with pytest.raises(Refused), s.begin_nested():
            _refuse(s, actor="alice")
        audit.record(s, "thing.after", actor="alice")
    assert sorted(e.event for e in _events(services)) == ["thing.after", "thing.refused"]


def test_critical_refusal_still_alerts_after_the_rollback(services: Services) -> None:
    with pytest.raises(Refused), services.transaction() as s:
        _refuse(s, severity=Severity.CRITICAL, actor="mallory")
    (event,) = _events(services)
    with services.transaction() as s:
        jobs = s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).all()
    assert [j.payload for j in jobs] == [{"event_id": event.id}]
