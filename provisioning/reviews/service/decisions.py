"""Reviewers' decisions: approve, revoke, reduce (with comment where it matters), in bulk over a
filter, delegation — never on one's own access, whichever account one acts from. Decisions can
be changed until the stage closes. Each decision is an audit event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, func, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from iam import audit, clock, persons
from iam.audit import Severity
from iam.db import is_postgres
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from iam.i18n import N_
from provisioning.reviews.models import Campaign, CampaignItem, CampaignStatus, Decision
from provisioning.reviews.service.reviewers import is_officer

if TYPE_CHECKING:
    from iam.services import Services

MAX_COMMENT = 2000


@dataclass(frozen=True)
class Reviewer:
    """Who acts, as the edge (page, API, CLI) established it."""

    username: str
    sub: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class Filter:
    campaign: str | None = None
    person: str | None = None
    """Username of the person whose access it is."""
    resource: str | None = None
    recommendation: str | None = None
    department: str | None = None
    open_only: bool = True


def person_key(services: Services, session: Session, reviewer: Reviewer) -> tuple[frozenset[str], set[str]]:
    """Every account the acting person may act through (:func:`iam.persons.accounts_of`: their
    own, their admin account, HR-linked accounts, shared accounts they hold), and the names of
    those accounts (a reviewer signed in with their admin account still sees their items)."""
    sub = reviewer.sub
    if sub is None:
        user = services.directory.find_user(username=reviewer.username)
        sub = user.id if user else None
    if sub is None:
        return frozenset(), {reviewer.username.casefold()}
    accounts = persons.accounts_of(session, sub)
    names = {reviewer.username.casefold()}
    for other in accounts - {sub}:
        user = services.directory.get_user(other)
        if user is not None:
            names.add(user.username.casefold())
    return accounts, names


def _own(
    session: Session, accounts: frozenset[str], item: CampaignItem, cache: dict[str, frozenset[str]]
) -> bool:
    """Whether the item is access of the person acting, compared as persons (their admin
    account's, and a shared account they hold, count as theirs)."""
    if not accounts:
        return False
    if item.account_id not in cache:
        cache[item.account_id] = persons.accounts_of(session, item.account_id)
    return bool(({item.person, item.account_id} | cache[item.account_id]) & accounts)


def _query(session: Session, flt: Filter) -> Select[Any]:
    q = select(CampaignItem).join(Campaign, Campaign.id == CampaignItem.campaign_id)
    q = q.where(Campaign.status == CampaignStatus.OPEN, CampaignItem.final.is_(False))
    if flt.campaign:
        q = q.where(CampaignItem.campaign_id == flt.campaign)
    if flt.person:
        q = q.where(CampaignItem.username == flt.person)
    if flt.resource:
        q = q.where(CampaignItem.resource == flt.resource)
    if flt.recommendation:
        q = q.where(CampaignItem.recommendation == flt.recommendation)
    if flt.department:
        q = q.where(CampaignItem.department == flt.department)
    if flt.open_only:
        q = q.where(CampaignItem.decision.is_(None))
    return q


# Every distinct reviewer of one campaign, one index probe each on
# ix_review_items_campaign_reviewer (a "loose index scan"): a few thousand probes instead of
# reading a million rows to compare lower(reviewer).
_REVIEWERS = text(
    """
    WITH RECURSIVE r(reviewer) AS (
        SELECT min(reviewer) FROM review_items WHERE campaign_id = :c
        UNION ALL
        SELECT (SELECT min(i.reviewer) FROM review_items i
                WHERE i.campaign_id = :c AND i.reviewer > r.reviewer)
        FROM r WHERE r.reviewer IS NOT NULL
    )
    SELECT reviewer FROM r WHERE reviewer IS NOT NULL
    """
)


def _reviewed_by(session: Session, flt: Filter, names: set[str]) -> ColumnElement[bool]:
    """Items whose reviewer is one of ``names`` (compared case-insensitively). On PostgreSQL the
    stored spellings of those names are looked up first so that the campaign/reviewer index
    answers (a campaign can have a million items)."""
    if not is_postgres(session):
        return func.lower(CampaignItem.reviewer).in_(names)
    if flt.campaign:
        ids = [flt.campaign]
    else:
        ids = list(session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.OPEN)))
    spellings = {
        reviewer
        for campaign_id in ids
        for reviewer in session.scalars(_REVIEWERS, {"c": campaign_id})
        if reviewer.lower() in names
    }
    return CampaignItem.reviewer.in_(sorted(spellings))


def inbox(
    services: Services,
    session: Session,
    reviewer: Reviewer,
    flt: Filter,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[CampaignItem], int]:
    """The reviewer's items (under any of their names), grouped by person, newest campaign first."""
    _, names = person_key(services, session, reviewer)
    q = _query(session, flt).where(_reviewed_by(session, flt, names))
    total = int(session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0)
    rows = session.scalars(
        q.order_by(CampaignItem.username, CampaignItem.resource, CampaignItem.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def _check_comment(decision: Decision, comment: str, privileged: bool) -> None:
    if len(comment) > MAX_COMMENT:
        raise ValidationFailed(
            N_("A comment has at most %(MAX_COMMENT)s characters."), MAX_COMMENT=MAX_COMMENT
        )
    if decision in (Decision.REVOKE, Decision.REDUCE) and not comment.strip():
        raise ValidationFailed(N_("Say why in a comment: it is required to revoke or reduce access."))
    if decision is Decision.APPROVE and privileged and not comment.strip():
        raise ValidationFailed(N_("Say why in a comment: it is required to keep privileged access."))


def refuse(session: Session, reviewer: Reviewer, reason: str, details: dict[str, Any]) -> Forbidden:
    """A refused decision: audited so that the refusal's rollback keeps the event."""
    audit.record_refusal(
        session,
        "review.decision_refused",
        severity=Severity.SIGNIFICANT,
        outcome="refused",
        actor=reviewer.sub or reviewer.username,
        ip=reviewer.ip,
        user_agent=reviewer.user_agent,
        details={"reason": reason, **details},
    )
    return Forbidden(reason)


def decide(
    services: Services,
    session: Session,
    *,
    reviewer: Reviewer,
    items: Sequence[int] | None = None,
    flt: Filter | None = None,
    decision: str,
    comment: str = "",
    reduce_to: str | None = None,
) -> list[int]:
    """Decide on the given items, or on every open item of the reviewer that ``flt`` matches.
    All or nothing: one item that may not be decided refuses the whole call."""
    try:
        choice = Decision(decision)
    except ValueError:
        raise ValidationFailed(N_("The decision is one of approve, revoke, reduce.")) from None
    if choice is Decision.REDUCE and not (reduce_to or "").strip():
        raise ValidationFailed(N_("Name the lesser right to keep (reduce_to)."))
    if (items is None and flt is None) or (items is not None and not items):
        raise ValidationFailed(N_("Select at least one item, or decide over a filter."))
    mine, names = person_key(services, session, reviewer)
    if items is not None:
        found = session.scalars(select(CampaignItem).where(CampaignItem.id.in_(list(items)))).all()
        if len(found) != len(set(items)):
            raise NotFound(N_("Some of these review items do not exist."))
        rows = list(found)
    else:
        assert flt is not None
        rows = list(session.scalars(_query(session, flt).where(_reviewed_by(session, flt, names))).all())
    campaigns = {
        c.id: c
        for c in session.scalars(select(Campaign).where(Campaign.id.in_({r.campaign_id for r in rows})))
    }
    now = clock.now()
    linked: dict[str, frozenset[str]] = {}
    for item in rows:
        if campaigns[item.campaign_id].status != CampaignStatus.OPEN or item.final:
            raise Conflict(N_("Review item %(id)s is settled: its stage or campaign has closed."), id=item.id)
        if _own(session, mine, item, linked):
            raise refuse(
                session,
                reviewer,
                "Nobody decides on their own access (nor their admin account's).",
                {"item": item.id, "campaign": item.campaign_id},
            )
        if item.reviewer.casefold() not in names:
            raise refuse(session, reviewer, "This item is not yours to review.", {"item": item.id})
        _check_comment(choice, comment, item.privileged)
        if choice is Decision.REDUCE and item.kind != "group":
            raise ValidationFailed(N_("Only a group membership can be reduced to a lesser group."))
        if choice is not Decision.APPROVE and item.kind == "group" and item.via:
            raise ValidationFailed(
                f"{item.account} holds {item.resource} through {item.via[0]}: decide on the membership in "
                f"{item.via[0]} (the nested one follows it)."
            )
    values = {
        "decision": str(choice),
        "comment": comment.strip() or None,
        "decided_by": reviewer.username,
        "decided_at": now,
        "reduce_to": reduce_to.strip() if choice is Decision.REDUCE and reduce_to else None,
        "automatic": False,
    }
    ids = [item.id for item in rows]
    for i in range(0, len(ids), 1000):  # one UPDATE per thousand items, not one per item
        session.execute(
            update(CampaignItem).where(CampaignItem.id.in_(ids[i : i + 1000])).values(**values),
            execution_options={"synchronize_session": False},
        )
    for item in rows:  # the loaded items show the decision too (without a second write)
        for key, value in values.items():
            set_committed_value(item, key, value)
    audit.record_many(
        session,
        "review.decided",
        (
            {
                "actor": reviewer.sub or reviewer.username,
                "subject": item.account_id,
                "ip": reviewer.ip,
                "user_agent": reviewer.user_agent,
                "details": {
                    "campaign": item.campaign_id,
                    "item": item.id,
                    "decision": str(choice),
                    "resource": item.resource,
                    "account": item.account,
                    "stage": item.stage,
                    **({"reduce_to": item.reduce_to} if item.reduce_to else {}),
                },
            }
            for item in rows
        ),
    )
    return [r.id for r in rows]


def delegate(
    services: Services,
    session: Session,
    *,
    reviewer: Reviewer,
    items: Sequence[int],
    to: str,
    comment: str = "",
) -> list[int]:
    """Hand items to another reviewer (the current reviewer or a security officer may)."""
    to = to.strip()
    if not to:
        raise ValidationFailed(N_("Name who the items go to."))
    target = services.directory.find_user(username=to)
    if target is None:
        raise ValidationFailed(N_("There is no account named '%(to)s'."), to=to)
    target_accounts = persons.accounts_of(session, target.id)
    _, names = person_key(services, session, reviewer)
    officer = is_officer(services, reviewer.username)
    rows = list(session.scalars(select(CampaignItem).where(CampaignItem.id.in_(list(items)))).all())
    if len(rows) != len(set(items)):
        raise NotFound(N_("Some of these review items do not exist."))
    linked: dict[str, frozenset[str]] = {}
    for item in rows:
        if item.final or item.decision is not None:
            raise Conflict(N_("Review item %(id)s is already decided."), id=item.id)
        if item.reviewer.casefold() not in names and not officer:
            raise refuse(session, reviewer, "This item is not yours to delegate.", {"item": item.id})
        if _own(session, target_accounts, item, linked):
            raise ValidationFailed(N_("%(to)s cannot review their own access."), to=to)
    for item in rows:
        audit.record(
            session,
            "review.delegated",
            actor=reviewer.sub or reviewer.username,
            subject=item.account_id,
            details={
                "campaign": item.campaign_id,
                "item": item.id,
                "from": item.reviewer,
                "to": target.username,
                "comment": comment[:MAX_COMMENT],
            },
        )
        item.delegated_by, item.reviewer = item.reviewer, target.username
    return [r.id for r in rows]


def item_dict(item: CampaignItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "campaign": item.campaign_id,
        "person": item.username,
        "person_name": item.person_name,
        "department": item.department,
        "title": item.job_title,
        "account": item.account,
        "account_kind": item.account_kind,
        "kind": item.kind,
        "resource": item.resource,
        "via": item.via,
        "origin": item.origin,
        "origin_ref": item.origin_ref,
        "granted_at": item.granted_at.isoformat() if item.granted_at else None,
        "granted_by": item.granted_by,
        "owner": item.owner,
        "privileged": item.privileged,
        "stage": item.stage,
        "reviewer": item.reviewer,
        "recommendation": item.recommendation,
        "recommendation_reason": item.recommendation_reason,
        "helpers": item.helpers,
        "decision": item.decision,
        "reduce_to": item.reduce_to,
        "comment": item.comment,
        "decided_by": item.decided_by,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
        "automatic": item.automatic,
        "final": item.final,
        "remediation": item.remediation,
        "history": item.history,
    }
