"""Detection rules on the audit log (R-AUD-2): one alert per incident, thresholds, quiet
windows, working hours, mails and webhook as durable jobs, alert handling — on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from detect import rules
from detect.models import Alert, Hit
from detect.service import alerts
from iam import clock
from iam.errors import ConfigError, ValidationFailed
from iam.models.audit import AuditEvent
from iam.models.identity import Identity
from iam.models.jobs import Job
from iam.services import Services
from tests.detect.helpers import RULES, failed_login, ruleset, seal, write

MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _alerts(services: Services) -> list[Alert]:
    with services.reader() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def _pass(services: Services, text: str = RULES) -> None:
    seal(services)
    alerts.run(services, ruleset=ruleset(text))


def test_spraying_raises_one_alert_mailed_to_officer_and_heads(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    for i in range(7):
        failed_login(services, f"user{i}", ip=f"198.51.100.{i + 1}")
    _pass(services)
    assert _alerts(services) == []  # 7 accounts from the network: below 8
    for i in range(7, 20):  # more accounts, still one try each, from the same /24
        failed_login(services, f"user{i}", ip=f"198.51.100.{i + 1}")
    _pass(services)
    found = _alerts(services)
    assert [(a.rule, a.key) for a in found] == [("password_spraying", "198.51.100.0/24")]
    alert = found[0]
    assert alert.events == 20  # the 8 that crossed the threshold, then each later one on the incident
    with services.reader() as s:
        raised = s.get(AuditEvent, alert.audit_event_id)
        assert raised is not None and raised.event == "alert.raised" and raised.severity == "critical"
        mails = s.scalars(select(Job).where(Job.kind == "iam.mail")).all()
        assert sorted(j.payload["to"] for j in mails) == ["head@example.test", "officer@example.test"]
        assert all("Password spraying" in str(j.payload["subject"]) for j in mails)
        assert s.scalar(select(func.count()).select_from(Job).where(Job.kind == "iam.notify_critical")) == 1


def test_one_person_mistyping_is_not_spraying(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    for i in range(8):
        for _ in range(4):  # four tries each: more than "few"
            failed_login(services, f"typo{i}")
    _pass(services, RULES.replace("threshold = 6", "threshold = 60"))
    assert _alerts(services) == []


def test_brute_force_one_alert_per_incident_then_new_after_quiet(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    for _ in range(5):
        failed_login(services, "alice")
    _pass(services)
    assert _alerts(services) == []
    for _ in range(10):
        failed_login(services, "alice")
    _pass(services)
    assert [(a.rule, a.key, a.events) for a in _alerts(services)] == [("brute_force", "alice", 15)]
    clock.advance(dt.timedelta(hours=2))  # past the quiet window: a new incident
    for _ in range(6):
        failed_login(services, "alice")
    _pass(services)
    assert [a.rule for a in _alerts(services)] == ["brute_force", "brute_force"]


def test_window_slides(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    for _ in range(5):
        failed_login(services, "bob")
        clock.advance(dt.timedelta(minutes=3))  # 5 tries in 15 minutes: never 6 within 10
    _pass(services)
    assert _alerts(services) == []


def test_elevation_outside_working_hours_only(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    write(services, "pim.activated", subject="sub-1", details={"role": "x"})
    clock.freeze(dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC))  # Saturday night
    write(services, "pim.activated", subject="sub-2", details={"role": "x"})
    _pass(services)
    assert [(a.rule, a.key) for a in _alerts(services)] == [("elevation_outside_hours", "sub-2")]


def test_token_from_outside_networks_and_disabled_person(services: Services) -> None:
    write(
        services,
        "token.refused",
        outcome="failure",
        client_id="app-1",
        details={"reason": "network_not_allowed"},
    )
    write(services, "token.refused", outcome="failure", client_id="app-2", details={"error": "invalid_grant"})
    with services.transaction() as s:
        s.add(Identity(sub="gone", directory="local", username="gone", disabled=True))
        s.add(Identity(sub="here", directory="local", username="here"))
    write(
        services, "token.issued", subject="gone", client_id="app-1", details={"grant_type": "refresh_token"}
    )
    write(
        services, "token.issued", subject="here", client_id="app-1", details={"grant_type": "refresh_token"}
    )
    _pass(services)
    assert sorted((a.rule, a.key) for a in _alerts(services)) == [
        ("inactive_account_success", "gone"),
        ("token_outside_networks", "app-1"),
    ]


def test_each_event_is_evaluated_once_across_passes(services: Services) -> None:
    clock.freeze(MONDAY_NOON)
    for _ in range(6):
        failed_login(services, "carol")
    seal(services)
    rs = ruleset()
    assert alerts.run(services, ruleset=rs) >= 6  # (and what the fixture wrote)
    assert alerts.run(services, ruleset=rs) == 0  # a second worker finds nothing left
    with services.reader() as s:
        assert s.scalar(select(func.count()).select_from(Hit).where(Hit.rule == "brute_force")) == 6
    assert len(_alerts(services)) == 1


def test_unsealed_events_wait(services: Services) -> None:
    for _ in range(6):
        failed_login(services, "dave")
    assert alerts.run(services, ruleset=ruleset()) == 0  # not sealed yet: not read
    _pass(services)
    assert len(_alerts(services)) == 1


def test_webhook_job_when_configured(services: Services) -> None:
    text = RULES.replace(
        "[working_hours]", '[webhook]\nurl = "https://siem.example.test/hook"\n\n[working_hours]'
    )
    write(
        services,
        "token.refused",
        outcome="failure",
        client_id="app-9",
        details={"reason": "network_not_allowed"},
    )
    _pass(services, text)
    with services.reader() as s:
        hooks = s.scalars(select(Job).where(Job.kind == "detect.webhook")).all()
    assert [h.payload["alert"] for h in hooks] == [_alerts(services)[0].id]


def test_handle_alert_states(services: Services) -> None:
    write(
        services,
        "token.refused",
        outcome="failure",
        client_id="app-3",
        details={"reason": "network_not_allowed"},
    )
    _pass(services)
    alert_id = _alerts(services)[0].id
    with services.transaction() as s:
        alerts.handle(s, alert_id, to="acknowledged", comment="", actor="officer", ip=None)
    with pytest.raises(ValidationFailed, match="needs a comment"), services.transaction() as s:
        alerts.handle(s, alert_id, to="closed", comment="  ", actor="officer", ip=None)
    with services.transaction() as s:
        alerts.handle(s, alert_id, to="closed", comment="Firewall rule fixed", actor="officer", ip=None)
    with pytest.raises(ValidationFailed), services.transaction() as s:
        alerts.handle(s, alert_id, to="acknowledged", comment="", actor="officer", ip=None)
    (alert,) = _alerts(services)
    assert (alert.state, alert.comment, alert.handled_by) == ("closed", "Firewall rule fixed", "officer")
    with services.reader() as s:
        events = s.scalars(select(AuditEvent.event).where(AuditEvent.event.like("alert.%"))).all()
    assert sorted(events) == ["alert.acknowledged", "alert.change_refused", "alert.closed", "alert.raised"]


def test_shipped_rules_are_valid() -> None:
    from iam.config import DETECT_RULES_FILE

    shipped = rules.load(DETECT_RULES_FILE)
    assert {"password_spraying", "brute_force", "mfa_fatigue", "ad_change_outside"} <= {
        r.id for r in shipped.rule
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nid = 'x'\ntitle = 't'\nevents = []", r"rule\[1\]\.events"),
        ("[[rule]]\nid = 'x'\ntitle = 't'\nevents = ['a']\nkey = 'nowhere'", r"rule\[1\]\.key"),
        (
            "[[rule]]\nid = 'x'\ntitle = 't'\nevents = ['a']\nmax_per_value = 2",
            "max_per_value needs distinct",
        ),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_invalid_rules_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rules.parse(text)
