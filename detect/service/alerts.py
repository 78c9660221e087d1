"""Detection and immediate alerts (R-AUD-2).

The worker's task :func:`run` reads new sealed audit events from a cursor (see
:mod:`detect.service.cursor` for why the cursor, and not the write path: evaluating on every
audit write would put queries on the hot path of every sign-in and token, and would count
events whose transaction later rolls back). One pass holds the cursor's row lock, so every
node and worker evaluates each event exactly once; counts over a window are kept in the
``detect_hits`` table, never in one process's memory.

A rule whose threshold is crossed raises ONE alert per incident (rule + key, e.g. the network
of a spraying attempt): a critical audit event (streamed to the SIEM with the rest of the log,
and mailed to the security officer by the core), a mail to each configured recipient, and the
optional webhook — all durable jobs in the same transaction. Matching events while the alert's
quiet window lasts are counted on it instead of raising another."""

from __future__ import annotations

import datetime as dt
import ipaddress
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from detect import rules as rules_mod
from detect.models import Alert, AlertState, Hit
from detect.service import cursor
from iam import audit, clock, i18n, jobs
from iam.errors import NotFound, ValidationFailed
from iam.i18n import N_
from iam.models.identity import Identity

if TYPE_CHECKING:
    from iam.services import Services

CURSOR = "alerts"
RAISED = "alert.raised"
"""The critical audit event of a new alert."""
COMMENT_MAX = 2000


@dataclass(frozen=True)
class Event:
    """The fields of one audit event the rules look at."""

    id: int
    at: dt.datetime
    event: str
    outcome: str
    actor: str | None
    subject: str | None
    client_id: str | None
    ip: str | None
    details: Mapping[str, Any]

    @classmethod
    def of(cls, row: Sequence[Any]) -> Event:
        ev_id, _seq, at, event, outcome, actor, subject, client_id, ip, details = row
        return cls(int(ev_id), at, event, outcome, actor, subject, client_id, ip, details or {})


def network(ip: str | None) -> str | None:
    """The caller's network: /24 for IPv4, /64 for IPv6 (spraying rotates within one)."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def field(ev: Event, name: str) -> str | None:
    if name == "network":
        return network(ev.ip)
    if name == "client":
        return ev.client_id
    value = getattr(ev, name)
    return str(value) if value else None


class Context:
    """What a pass needs besides the events: rules, time zone, identity look-ups."""

    def __init__(self, session: Session, ruleset: rules_mod.RuleSet, timezone: str) -> None:
        self.session = session
        self.ruleset = ruleset
        self.zone = zoneinfo.ZoneInfo(timezone)
        self._inactive: dict[str, bool] = {}

    def inactive(self, sub: str | None) -> bool:
        if not sub:
            return False
        if sub not in self._inactive:
            identity = self.session.get(Identity, sub)
            self._inactive[sub] = identity is not None and identity.disabled
        return self._inactive[sub]


def matches(rule: rules_mod.Rule, ev: Event, ctx: Context) -> bool:
    if rule.outcome and ev.outcome != rule.outcome:
        return False
    for name, allowed in rule.where.items():
        if str(ev.details.get(name)) not in allowed:
            return False
    if rule.outside_hours and ctx.ruleset.working_hours.inside(ev.at.astimezone(ctx.zone)):
        return False
    return not (rule.identity == "inactive" and not ctx.inactive(ev.subject))


def _crossed(session: Session, rule: rules_mod.Rule, key: str, ev: Event) -> tuple[bool, int, int]:
    """Record the hit; return whether the threshold is crossed, the count and distinct count."""
    found = field(ev, rule.distinct) if rule.distinct else None
    value = found[:256] if found else None
    session.add(Hit(rule=rule.id, key=key, value=value, at=ev.at, event_id=ev.id))
    session.flush()
    since = ev.at - dt.timedelta(seconds=rule.window)
    count, distinct = session.execute(
        select(func.count(), func.count(func.distinct(Hit.value))).where(
            Hit.rule == rule.id, Hit.key == key, Hit.at > since
        )
    ).one()
    count, distinct = int(count), int(distinct)
    if rule.distinct is None:
        return count >= rule.threshold, count, distinct
    few_each = rule.max_per_value is None or count <= rule.max_per_value * distinct
    return distinct >= rule.threshold and few_each, count, distinct


def _current(session: Session, rule: rules_mod.Rule, key: str, at: dt.datetime) -> Alert | None:
    """The incident this event belongs to: an alert of the rule and key, not closed, whose last
    event is within the quiet window."""
    return session.scalar(
        select(Alert)
        .where(
            Alert.rule == rule.id,
            Alert.key == key,
            Alert.state != AlertState.CLOSED,
            Alert.last_at >= at - dt.timedelta(seconds=rule.quiet),
        )
        .order_by(Alert.last_at.desc())
        .limit(1)
    )


def evaluate(
    session: Session, services: Services, events: Sequence[Event], ruleset: rules_mod.RuleSet
) -> list[Alert]:
    """Apply the rules to ``events`` (in order); return the alerts raised."""
    by_event = ruleset.by_event()
    ctx = Context(session, ruleset, services.settings.timezone)
    raised: list[Alert] = []
    for ev in events:
        for rule in by_event.get(ev.event, ()):
            if not matches(rule, ev, ctx):
                continue
            key = field(ev, rule.key)
            if not key:
                continue
            key = key[:256]
            crossed, count, distinct = _crossed(session, rule, key, ev) if rule.counts else (True, 1, 1)
            current = _current(session, rule, key, ev.at)
            if current is not None:
                current.events += 1
                current.last_at = max(current.last_at, ev.at)
                continue
            if crossed:
                raised.append(_raise(session, services, ruleset, rule, key, ev, count, distinct))
    return raised


def _raise(
    session: Session,
    services: Services,
    ruleset: rules_mod.RuleSet,
    rule: rules_mod.Rule,
    key: str,
    ev: Event,
    count: int,
    distinct: int,
) -> Alert:
    details: dict[str, Any] = {
        "window_seconds": rule.window,
        "threshold": rule.threshold,
        "count": count,
        "trigger_event": ev.id,
        "event": ev.event,
    }
    if rule.distinct:
        details["distinct"] = distinct
        details["distinct_of"] = rule.distinct
    alert = Alert(
        rule=rule.id,
        key=key,
        title=rule.title,
        state=AlertState.OPEN,
        first_at=ev.at,
        last_at=ev.at,
        events=count if rule.counts else 1,
        details=details,
    )
    session.add(alert)
    session.flush()
    alert.audit_event_id = audit.record(
        session,
        RAISED,
        severity=audit.Severity.CRITICAL,
        outcome="failure",
        actor="system:detect",
        subject=key,
        client_id=ev.client_id,
        ip=ev.ip,
        details={"alert": alert.id, "rule": rule.id, "title": rule.title, **details},
    )
    for to in ruleset.recipients.all:
        subject, text = mail_for(services, alert, i18n.for_recipient(services.settings, session, email=to))
        jobs.enqueue(
            session,
            "iam.mail",
            {"to": to, "subject": subject, "text": text},
            dedup_key=f"detect.alert:{alert.id}:{to}"[:256],
        )
    if ruleset.webhook.url:
        jobs.enqueue(session, "detect.webhook", {"alert": alert.id}, dedup_key=f"detect.webhook:{alert.id}")
    return alert


FACT_LABELS = {
    "window_seconds": N_("Window (seconds)"),
    "threshold": N_("Threshold"),
    "count": N_("Events counted"),
    "trigger_event": N_("Triggering audit event"),
    "event": N_("Event"),
    "distinct": N_("Distinct values"),
    "distinct_of": N_("Counted distinct by"),
}
"""How the mail names an alert's facts (``details``); an unknown key is shown as it is."""


def mail_for(services: Services, alert: Alert, t: i18n.Translator | None = None) -> tuple[str, str]:
    """Subject and text of the mail about ``alert`` (metadata only: no secrets, no payloads), in
    the language of ``t`` (a recipient's; default: the organisation's)."""
    t = t or i18n.translator(services.settings)
    page = f"{services.settings.issuer}/security/alerts/{alert.id}"
    zone = zoneinfo.ZoneInfo(services.settings.timezone)
    rows = [
        (t.gettext("Rule"), alert.rule),
        (t.gettext("About"), alert.key),
        (t.gettext("First"), t.moment(alert.first_at, zone)),
        (t.gettext("Alert id"), str(alert.id)),
    ]
    facts = [
        (t.gettext(FACT_LABELS[k]) if k in FACT_LABELS else k, v) for k, v in sorted(alert.details.items())
    ]
    width = max(len(label) for label, _ in rows) + 2
    text = (
        t.gettext("Security alert: %(title)s", title=alert.title)
        + "\n\n"
        + "".join(f"{label + ':':<{width}}{value}\n" for label, value in rows)
        + "\n"
        + t.gettext("Facts:")
        + "\n"
        + "".join(f"  {label}: {value}\n" for label, value in facts)
        + "\n"
        + t.gettext("Open %(url)s to acknowledge or close it.", url=page)
        + "\n"
    )
    # the tag stays as it is for mail filters (as "[IAM PIM]", "[IAM critical]"); the title is the
    # rules file's own text
    return f"[IAM alert] {alert.title}: {alert.key}", text


def webhook_body(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "title": alert.title,
        "key": alert.key,
        "state": alert.state,
        "first_at": alert.first_at.isoformat(),
        "last_at": alert.last_at.isoformat(),
        "events": alert.events,
        "details": alert.details,
        "audit_event_id": alert.audit_event_id,
    }


def run(services: Services, *, ruleset: rules_mod.RuleSet | None = None) -> int:
    """One pass: evaluate the sealed events after the cursor; return how many were read."""
    settings = services.settings.detect
    ruleset = ruleset or rules_mod.load(settings.rules_file)
    with services.transaction() as session:
        pos = cursor.lock(session, CURSOR)
        rows = cursor.events_after(session, pos, settings.batch)
        if not rows:
            return 0
        evaluate(session, services, [Event.of(r) for r in rows], ruleset)
        cursor.move(session, CURSOR, int(rows[-1][1]))
        return len(rows)


def purge_hits(services: Services) -> int:
    """Forget hits older than the retention (and than every rule's window)."""
    settings = services.settings.detect
    ruleset = rules_mod.load(settings.rules_file)
    keep = max(settings.hits_retention, ruleset.longest_window)
    with services.transaction() as session:
        result = session.execute(delete(Hit).where(Hit.at < clock.now() - dt.timedelta(seconds=keep)))
        return int(getattr(result, "rowcount", 0) or 0)


# -- handling alerts (the page) --------------------------------------------------------------------
TRANSITIONS = {
    AlertState.OPEN: (AlertState.ACKNOWLEDGED, AlertState.CLOSED),
    AlertState.ACKNOWLEDGED: (AlertState.CLOSED,),
    AlertState.CLOSED: (),
}


def handle(session: Session, alert_id: int, *, to: str, comment: str, actor: str, ip: str | None) -> Alert:
    """Acknowledge or close an alert. Closing needs a comment; every change is audited."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound("No such alert.")
    try:
        target = AlertState(to)
    except ValueError:
        raise ValidationFailed("Unknown alert state.") from None
    comment = comment.strip()
    if target not in TRANSITIONS[AlertState(alert.state)]:
        audit.record_refusal(
            session,
            "alert.change_refused",
            actor=actor,
            subject=str(alert.id),
            ip=ip,
            details={"alert": alert.id, "from": alert.state, "to": target.value},
        )
        raise ValidationFailed(f"An alert that is {alert.state} cannot become {target.value}.")
    if target is AlertState.CLOSED and not comment:
        raise ValidationFailed("Closing an alert needs a comment.")
    if len(comment) > COMMENT_MAX:
        raise ValidationFailed(f"The comment is longer than {COMMENT_MAX} characters.")
    before = alert.state
    alert.state = target
    alert.handled_by = actor
    alert.handled_at = clock.now()
    if comment:
        alert.comment = comment
    audit.record(
        session,
        f"alert.{target.value}",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=str(alert.id),
        ip=ip,
        details={"alert": alert.id, "rule": alert.rule, "from": before, "comment": comment[:500]},
    )
    return alert


def listing(session: Session, *, state: str | None = None, limit: int = 200) -> Sequence[Alert]:
    stmt = select(Alert).order_by(Alert.last_at.desc()).limit(limit)
    if state:
        stmt = stmt.where(Alert.state == state)
    return session.scalars(stmt).all()
