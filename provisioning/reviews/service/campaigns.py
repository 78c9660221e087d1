"""Campaigns: start (the catalogue becomes items with reviewers), stages, escalation, reminders,
deadlines with the default outcome (R-REV-3), and close. Every step is an audit event."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from iam import audit, clock, i18n, jobs
from iam.audit import Severity
from iam.db import is_postgres, new_id
from iam.errors import Conflict, NotFound
from iam.i18n import N_, Nn_
from iam.models.jobs import Job, JobStatus
from provisioning.reviews import definitions
from provisioning.reviews.definitions import Definition
from provisioning.reviews.models import Campaign, CampaignItem, CampaignStatus, Decision, Outcome, Remediation
from provisioning.reviews.service.catalogue import Builder, Person, Row
from provisioning.reviews.service.reviewers import Reviewers

if TYPE_CHECKING:
    from iam.services import Services

BATCH = 5000
REMEDIATE_JOB = "reviews.remediate"
SYSTEM = "system:reviews"


def _person_values(campaign_id: str, person: Person) -> dict[str, Any]:
    """The columns every item of one person shares."""
    hr = person.hr
    return {
        "campaign_id": campaign_id,
        "person": person.key,
        "person_name": person.user.name,
        "username": person.user.username,
        "employee_number": hr.employee_number if hr else person.user.employee_number,
        "department": person.department,
        "job_title": person.title,
    }


def _values(shared: dict[str, Any], row: Row, reviewer: str) -> dict[str, Any]:
    ent = row.entitlement
    return {
        **shared,
        "account_id": row.account.id,
        "account": row.account.username,
        "account_kind": row.account.kind,
        "source": ent.source,
        "kind": ent.kind,
        "resource": ent.resource,
        "via": list(ent.via),
        "origin": row.origin,
        "origin_ref": row.origin_ref,
        "granted_at": row.granted_at,
        "granted_by": row.granted_by,
        "justification": row.justification,
        "owner": ent.owner,
        "privileged": ent.privileged,
        "stage": 1,
        "reviewer": reviewer,
        "recommendation": row.recommendation,
        "recommendation_reason": row.reason,
        "helpers": row.helpers,
        "history": [],
        "automatic": False,
        "final": False,
    }


_ITEM_JSON = ("via", "helpers", "history")


def _store_items(session: Session, batch: list[dict[str, Any]]) -> None:
    """Insert a batch of items: PostgreSQL's ``COPY`` (a campaign can have a million items),
    elsewhere one multi-row INSERT."""
    if not batch:
        return
    if not is_postgres(session):
        session.execute(insert(CampaignItem), batch)
        return
    columns = list(batch[0])
    raw = session.connection().connection.driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    json_at = [i for i, c in enumerate(columns) if c in _ITEM_JSON]
    dumps = json.dumps
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {CampaignItem.__tablename__} ({names}) FROM STDIN") as copy,
    ):
        for values in batch:
            row = list(values.values())
            for i in json_at:
                row[i] = dumps(row[i]) if row[i] else "[]" if isinstance(row[i], list) else "{}"
            copy.write_row(row)


def start(
    services: Services,
    session: Session,
    *,
    definition: Definition,
    actor: str,
    trigger: str = "manual",
    person: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Generate a campaign from the catalogue. ``person``: only that person (event-triggered).
    ``dry_run``: count what it would create, store nothing."""
    if person is None and not dry_run:
        running = session.scalar(
            select(Campaign.id).where(
                Campaign.definition == definition.name,
                Campaign.status == CampaignStatus.OPEN,
                Campaign.trigger.in_(["manual", "schedule"]),
            )
        )
        if running:
            raise Conflict(
                N_("A campaign of '%(name)s' is already open (%(running)s)."),
                name=definition.name,
                running=running,
            )
    builder = Builder(services, session, definition, person=person)
    reviewers = Reviewers(services, session, definition, builder.usernames)
    now = clock.now()
    campaign = Campaign(
        definition=definition.name,
        title=definition.title,
        trigger=trigger,
        spec=definition.model_dump(mode="json"),
        started_at=now,
        started_by=actor,
        due_at=now + dt.timedelta(days=definition.duration_days),
        stage=1,
        reminders_sent=[],
    )
    if not dry_run:
        session.add(campaign)
        session.flush()
    stage = definition.stages[0]
    total = 0
    per_reviewer: Counter[str] = Counter()
    batch: list[dict[str, Any]] = []
    resolved: dict[tuple[str, str | None], str] = {}
    """The stage's reviewer depends on the person and the resource's owner only."""
    current: Person | None = None
    shared: dict[str, Any] = {}
    for row in builder.rows():
        if row.person is not current:
            current, shared = row.person, _person_values(campaign.id, row.person)
        key = (row.person.key, row.entitlement.owner)
        reviewer = resolved.get(key)
        if reviewer is None:
            hr = row.person.hr
            reviewer = resolved[key] = reviewers.resolve(
                stage,
                person=row.person.key,
                username=row.person.user.username,
                employee_number=hr.employee_number if hr else None,
                owner=row.entitlement.owner,
            )
        per_reviewer[reviewer] += 1
        total += 1
        if not dry_run:
            batch.append(_values(shared, row, reviewer))
            if len(batch) >= BATCH:
                _store_items(session, batch)
                batch.clear()
        if progress is not None:
            progress(total)
    summary = {
        "definition": definition.name,
        "title": definition.title,
        "trigger": trigger,
        "persons": len(builder.persons),
        "items": total,
        "reviewers": dict(sorted(per_reviewer.items())),
        "default_outcome": str(definition.default_outcome),
        "due_at": campaign.due_at.isoformat(),
    }
    if dry_run:
        return {"dry_run": True, **summary}
    _store_items(session, batch)
    campaign.items_total = total
    audit.record(
        session,
        "review.campaign_started",
        severity=Severity.SIGNIFICANT,
        actor=actor,
        subject=person,
        details={"campaign": campaign.id, **{k: v for k, v in summary.items() if k != "reviewers"}},
    )
    _mail_reviewers(
        services,
        session,
        campaign,
        per_reviewer,
        subject=N_("Access review: %(title)s"),
        text=Nn_(
            "You have %(num)d access right to review by %(due)s.",
            "You have %(num)d access rights to review by %(due)s.",
        ),
    )
    return {"id": campaign.id, **summary}


def _mail_reviewers(
    services: Services,
    session: Session,
    campaign: Campaign,
    counts: Counter[str] | dict[str, int],
    *,
    subject: str,
    text: tuple[str, str],
) -> int:
    """One ``iam.mail`` job per reviewer with an address (durable; retried while the relay is down),
    inserted together (a campaign can have thousands of reviewers)."""
    sent = 0
    now = clock.now()
    mails: list[dict[str, Any]] = []
    for username, n in counts.items():
        if n <= 0:
            continue
        user = services.directory.find_user(username=username)
        if user is None or not user.email:
            continue
        t = i18n.for_recipient(services.settings, session, sub=user.id)
        due = t.moment(campaign.due_at, ZoneInfo(services.settings.timezone))
        body = (
            t.ngettext(text[0], text[1], n, due=due)
            + "\n\n"
            + t.gettext("Campaign: %(title)s", title=campaign.title)
            + "\n"
            + t.gettext("Open your review inbox: %(url)s", url=services.settings.issuer + "/reviews/")
            + "\n"
        )
        mail_subject = "[IAM] " + t.gettext(subject, title=campaign.title)
        mails.append(
            {
                "id": new_id(),
                "kind": "iam.mail",
                "payload": {"to": user.email, "subject": mail_subject, "text": body},
                "run_at": now,
                "status": JobStatus.PENDING,
                "attempts": 0,
                "created_at": now,
            }
        )
        sent += 1
    for i in range(0, len(mails), BATCH):
        session.execute(insert(Job), mails[i : i + BATCH])
    return sent


def _mail_summary(services: Services, session: Session, campaign: Campaign) -> None:
    """The closing summary to the security officers (through the durable mail job)."""
    from provisioning.reviews.service.reviewers import officers

    rows = session.execute(
        select(CampaignItem.decision, CampaignItem.automatic, func.count())
        .where(CampaignItem.campaign_id == campaign.id)
        .group_by(CampaignItem.decision, CampaignItem.automatic)
    ).all()
    report = f"{services.settings.issuer}/reviews/campaigns/{campaign.id}"
    for username in officers(services):
        user = services.directory.find_user(username=username)
        if user is None or not user.email:
            continue
        t = i18n.for_recipient(services.settings, session, sub=user.id)
        lines = [
            "  "
            + t.gettext(DECISION_NAMES.get(decision or "", N_("Not decided")))
            + (" " + t.gettext("(default outcome)") if automatic else "")
            + f": {n}"
            for decision, automatic, n in rows
        ]
        text = (
            t.gettext(
                'The access review "%(title)s" (%(id)s) has closed.', title=campaign.title, id=campaign.id
            )
            + "\n\n"
            + "\n".join(lines)
            + "\n\n"
            + t.gettext("Revocations are carried into the directory by the worker and read back.")
            + "\n"
            + t.gettext("Report: %(url)s", url=report)
            + "\n"
        )
        subject = "[IAM] " + t.gettext("Access review closed: %(title)s", title=campaign.title)
        jobs.enqueue(session, "iam.mail", {"to": user.email, "subject": subject, "text": text})


DECISION_NAMES = {
    Decision.APPROVE.value: N_("Kept"),
    Decision.REVOKE.value: N_("Revoked"),
    Decision.REDUCE.value: N_("Reduced"),
}
"""How the closing summary names the items' decisions."""


def get(session: Session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(N_("There is no review campaign '%(campaign_id)s'."), campaign_id=campaign_id)
    return campaign


def definition_of(services: Services, campaign: Campaign) -> Definition:
    """The definition as it was when the campaign started."""
    return Definition.model_validate(campaign.spec)


def open_counts(session: Session, campaign: Campaign) -> Counter[str]:
    rows = session.execute(
        select(CampaignItem.reviewer, func.count())
        .where(
            CampaignItem.campaign_id == campaign.id,
            CampaignItem.decision.is_(None),
            CampaignItem.final.is_(False),
        )
        .group_by(CampaignItem.reviewer)
    )
    return Counter(dict(rows.all()))


def escalate(services: Services, session: Session, campaign: Campaign, *, actor: str = SYSTEM) -> int:
    """Open items of the current stage go to the fallback reviewer."""
    definition = definition_of(services, campaign)
    reviewers = Reviewers(services, session, definition)
    moved: Counter[str] = Counter()
    items = session.scalars(
        select(CampaignItem).where(
            CampaignItem.campaign_id == campaign.id,
            CampaignItem.decision.is_(None),
            CampaignItem.final.is_(False),
        )
    ).all()
    for item in items:
        to = reviewers.fallback_for(item.person)
        if to.casefold() != item.reviewer.casefold():
            item.delegated_by, item.reviewer = item.reviewer, to
            moved[to] += 1
    campaign.escalated_at = clock.now()
    audit.record(
        session,
        "review.escalated",
        severity=Severity.SIGNIFICANT,
        actor=actor,
        details={
            "campaign": campaign.id,
            "stage": campaign.stage,
            "items": sum(moved.values()),
            "to": dict(moved),
        },
    )
    _mail_reviewers(
        services,
        session,
        campaign,
        moved,
        subject=N_("Escalated access review: %(title)s"),
        text=Nn_(
            "%(num)d access right nobody reviewed in time was passed to you; please decide by %(due)s.",
            "%(num)d access rights nobody reviewed in time were passed to you; please decide by %(due)s.",
        ),
    )
    return sum(moved.values())


def _automatic(item: CampaignItem, outcome: Outcome, now: dt.datetime) -> None:
    if outcome is Outcome.RECOMMENDATION:
        decision = Decision.REVOKE if item.recommendation == "revoke" else Decision.APPROVE
        why = f"Not answered by the deadline: the recommendation applied ({item.recommendation_reason})"
    elif outcome is Outcome.REVOKE:
        decision, why = (
            Decision.REVOKE,
            "Not answered by the deadline: revoked (the campaign's default outcome).",
        )
    else:  # keep, or escalate that ran out too
        decision, why = Decision.APPROVE, "Not answered by the deadline: kept unchanged, not reviewed."
    item.decision, item.comment, item.decided_by, item.decided_at = str(decision), why, SYSTEM, now
    item.automatic = True


def close_stage(
    services: Services, session: Session, campaign: Campaign, *, actor: str, final: bool = False
) -> dict[str, int]:
    """The current stage ends: unanswered items get the default outcome (``escalate``: first to
    the fallback reviewer, once); approved items go on to the next stage; the rest is settled
    and revocations are queued for the directory. ``final``: the whole campaign ends now."""
    if campaign.status != CampaignStatus.OPEN:
        raise Conflict(N_("This campaign is closed."))
    definition = definition_of(services, campaign)
    outcome = definition.default_outcome
    if outcome is Outcome.ESCALATE and campaign.escalated_at is None and not final:
        escalate(services, session, campaign, actor=actor)
        campaign.due_at = clock.now() + dt.timedelta(days=max(1, definition.duration_days // 2))
        return {"escalated": 1}
    now = clock.now()
    items = session.scalars(
        select(CampaignItem).where(
            CampaignItem.campaign_id == campaign.id,
            CampaignItem.stage == campaign.stage,
            CampaignItem.final.is_(False),
        )
    ).all()
    nxt = definition.stages[campaign.stage] if campaign.stage < len(definition.stages) and not final else None
    reviewers = Reviewers(services, session, definition) if nxt else None
    counts: Counter[str] = Counter()
    advanced: Counter[str] = Counter()
    direct = {(i.account_id, i.resource.casefold()): i for i in items if i.kind == "group" and not i.via}
    auto_decided: list[dict[str, Any]] = []
    """One audit event per automatic decision, written together after the loop."""
    for item in items:
        parent = (
            direct.get((item.account_id, item.via[0].casefold()))
            if item.kind == "group" and item.via
            else None
        )
        if item.decision is None and parent is not None and parent.decision is not None:
            # a nested membership follows the decision on the membership it comes through
            item.decision, item.decided_by, item.decided_at = (
                parent.decision,
                parent.decided_by,
                parent.decided_at,
            )
            item.comment = f"Follows the decision on {parent.resource}."
            item.automatic = parent.automatic
        if item.decision is None:
            _automatic(item, outcome, now)
            counts["automatic"] += 1
            auto_decided.append(
                {
                    "actor": SYSTEM,
                    "subject": item.account_id,
                    "details": {
                        "campaign": campaign.id,
                        "item": item.id,
                        "decision": item.decision,
                        "outcome": str(outcome),
                    },
                }
            )
        if (
            nxt is not None
            and reviewers is not None
            and item.decision == Decision.APPROVE
            and not item.automatic
        ):
            item.history = [*item.history, _snapshot(item)]
            item.stage += 1
            item.reviewer = reviewers.resolve(
                nxt,
                person=item.person,
                username=item.username,
                employee_number=item.employee_number,
                owner=item.owner,
            )
            item.decision = item.comment = item.decided_by = item.decided_at = item.delegated_by = None
            advanced[item.reviewer] += 1
            continue
        item.final = True
        counts[str(item.decision)] += 1
        if item.decision in (Decision.REVOKE, Decision.REDUCE):
            item.remediation = Remediation.PENDING
            if definition.auto_apply:
                jobs.enqueue(session, REMEDIATE_JOB, {"item": item.id}, dedup_key=f"review-item:{item.id}")
    audit.record_many(session, "review.auto_decided", auto_decided)
    event = "review.stage_closed"
    if advanced:
        campaign.stage += 1
        campaign.due_at = now + dt.timedelta(days=definition.duration_days)
        campaign.escalated_at = None
        campaign.reminders_sent = []
        _mail_reviewers(
            services,
            session,
            campaign,
            advanced,
            subject=N_("Access review (next stage): %(title)s"),
            text=Nn_(
                "You have %(num)d access right to review by %(due)s.",
                "You have %(num)d access rights to review by %(due)s.",
            ),
        )
    else:
        campaign.status, campaign.closed_at, campaign.closed_by = CampaignStatus.CLOSED, now, actor
        event = "review.campaign_closed"
        _mail_summary(services, session, campaign)
    audit.record(
        session,
        event,
        severity=Severity.SIGNIFICANT,
        actor=actor,
        details={
            "campaign": campaign.id,
            "stage": campaign.stage,
            "advanced": sum(advanced.values()),
            **counts,
        },
    )
    return {"advanced": sum(advanced.values()), **counts}


def _snapshot(item: CampaignItem) -> dict[str, Any]:
    return {
        "stage": item.stage,
        "reviewer": item.reviewer,
        "decision": item.decision,
        "comment": item.comment,
        "decided_by": item.decided_by,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }


def close(services: Services, session: Session, *, campaign_id: str, actor: str) -> dict[str, int]:
    """End the campaign now: every open item gets the default outcome."""
    return close_stage(services, session, get(session, campaign_id), actor=actor, final=True)


def extend(session: Session, *, campaign_id: str, days: int, actor: str) -> Campaign:
    campaign = get(session, campaign_id)
    if campaign.status != CampaignStatus.OPEN:
        raise Conflict(N_("This campaign is closed."))
    if not 1 <= days <= 90:
        from iam.errors import ValidationFailed

        raise ValidationFailed(N_("Extend by 1 to 90 days."))
    campaign.due_at = campaign.due_at + dt.timedelta(days=days)
    audit.record(session, "review.extended", actor=actor, details={"campaign": campaign.id, "days": days})
    return campaign


def remind(services: Services, session: Session, campaign: Campaign, *, actor: str = SYSTEM) -> int:
    sent = _mail_reviewers(
        services,
        session,
        campaign,
        open_counts(session, campaign),
        subject=N_("Reminder: %(title)s"),
        text=Nn_(
            "You still have %(num)d access right to review by %(due)s.",
            "You still have %(num)d access rights to review by %(due)s.",
        ),
    )
    audit.record(
        session, "review.reminded", actor=actor, details={"campaign": campaign.id, "reviewers": sent}
    )
    return sent


def tick(services: Services, session: Session) -> dict[str, int]:
    """The worker's pass: deadlines, escalation, reminders, then scheduled starts."""
    now = clock.now()
    done: Counter[str] = Counter()
    for campaign in session.scalars(select(Campaign).where(Campaign.status == CampaignStatus.OPEN)).all():
        definition = definition_of(services, campaign)
        if campaign.due_at <= now:
            close_stage(services, session, campaign, actor=SYSTEM)
            done["deadline"] += 1
            continue
        stage_start = campaign.due_at - dt.timedelta(days=definition.duration_days)
        if (
            definition.escalate_after_days is not None
            and campaign.escalated_at is None
            and now >= stage_start + dt.timedelta(days=definition.escalate_after_days)
        ):
            escalate(services, session, campaign)
            done["escalated"] += 1
        for days in sorted(definition.reminder_days, reverse=True):
            if now >= campaign.due_at - dt.timedelta(days=days) and days not in campaign.reminders_sent:
                campaign.reminders_sent = [*campaign.reminders_sent, days]
                remind(services, session, campaign)
                done["reminded"] += 1
                break
    for definition in definitions.definitions(services).values():
        if definition.recurrence_months <= 0:
            continue
        last = session.scalar(
            select(func.max(Campaign.started_at)).where(
                Campaign.definition == definition.name, Campaign.trigger.in_(["manual", "schedule"])
            )
        )
        # The first campaign of a definition is started by hand; from then on it recurs.
        if last is not None and now >= add_months(last, definition.recurrence_months):
            start(services, session, definition=definition, actor=SYSTEM, trigger="schedule")
            done["started"] += 1
    return dict(done)


def add_months(when: dt.datetime, months: int) -> dt.datetime:
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    day = min(
        when.day,
        [
            31,
            29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][month - 1],
    )
    return when.replace(year=year, month=month, day=day)


def on_event(services: Services, session: Session, *, event: str, person: str, actor: str) -> list[str]:
    """A mover, rehire, break-glass use or out-of-band finding: a campaign for that one person
    from every definition that names the event."""
    from iam import entitlements

    person = entitlements.linked_accounts(services, session).get(person, (person, ""))[0]
    started = []
    for definition in definitions.definitions(services).values():
        if event in definition.events:
            result = start(
                services, session, definition=definition, actor=actor, trigger=event, person=person
            )
            if result["items"] == 0:
                session.execute(
                    update(Campaign)
                    .where(Campaign.id == result["id"])
                    .values(status=CampaignStatus.CLOSED, closed_at=clock.now(), closed_by=SYSTEM)
                )
            started.append(str(result["id"]))
    return started
