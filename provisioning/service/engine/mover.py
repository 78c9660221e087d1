"""Movers (R-JML-4): birthright groups recomputed for the new post; what the old post gave goes
after the grace period; remaining access not explained by the new post is queued for review."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from provisioning.models import GroupRemoval, HrPerson, ReviewItem
from provisioning.service import grants
from provisioning.service.engine.common import (
    ACTOR,
    Ctx,
    Waiting,
    applied,
    base_ou,
    ensure_group,
    groups_created,
    position,
    remove_member,
    schedule_end,
    set_fields,
)
from provisioning.service.policies import birthright
from provisioning.service.schemas import EventIn

if TYPE_CHECKING:
    from iam.services import Services


@dataclass
class Move:
    new: list[str]
    added: list[str]
    removed: list[str]
    removed_now: bool
    cancel: list[str]
    """Pending removals (by id) of groups the new post gives again: a move back."""
    review: list[str]
    created_groups: list[str] = field(default_factory=list)
    moved_from: str | None = None
    """The account's DN before it moved to the new department's OU (None: it did not move)."""
    dn: str = ""
    renamed: bool = False


def directory_step(services: Services, reader: Session, data: EventIn, person: HrPerson) -> Move:
    if person.sub is None:
        raise Waiting("The person has no account yet.")
    directory = services.directory
    settings = services.settings.provisioning
    want = position(person, data.person)
    old = list(person.groups or [])
    new = birthright(services).groups_for(
        department=want["department"], title=want["title"], kind=want["engagement"]
    )
    added = [g for g in new if g not in old]
    removed = [g for g in old if g not in new]
    created = [g for g in added if ensure_group(directory, g)]
    for group in added:
        directory.add_member(group, person.sub)
    now = settings.mover_grace_period == 0
    if now:
        for group in removed:
            remove_member(directory, group, person.sub)
    cancel = [
        r.id
        for r in reader.scalars(
            select(GroupRemoval).where(
                GroupRemoval.employee_number == person.employee_number,
                GroupRemoval.removed_at.is_(None),
                GroupRemoval.cancelled_at.is_(None),
            )
        )
        if r.group in new
    ]
    ignore = {g.casefold() for g in settings.reconcile_ignore_groups}
    held = directory.user_groups(person.sub, nested=False)
    review = [g for g in held if g not in new and g not in removed and g.casefold() not in ignore]
    move = Move(new, added, removed, now, cancel, review, created)
    _place(services, person, want, move)
    return move


def _place(services: Services, person: HrPerson, want: dict[str, Any], move: Move) -> None:
    """The account follows the person: into the new department's OU, and renamed when the name
    changed (the username never changes, R-JML-3). Both are harmless to repeat."""
    assert person.sub is not None
    directory = services.directory
    before = directory.get_user(person.sub)
    if before is None:
        raise Waiting("The account is missing in the directory.")
    user = before
    if (want["given_name"], want["family_name"]) != (person.given_name, person.family_name):
        user = directory.rename_user(
            person.sub,
            given_name=want["given_name"],
            family_name=want["family_name"],
            display_name=f"{want['given_name']} {want['family_name']}",
        )
        move.renamed = True
    target = birthright(services).ou_for(want["department"], base_ou(services))
    if target:
        if not before.dn.casefold().endswith("," + target.casefold()):
            move.moved_from = before.dn
        user = directory.move_user(person.sub, target)
    move.dn = user.dn


def record_mover(ctx: Ctx, person: HrPerson, move: Move) -> None:
    assert person.sub is not None
    set_fields(person, ctx.data.person)
    groups_created(ctx, move.created_groups)
    for removal_id in move.cancel:
        row = ctx.session.get(GroupRemoval, removal_id)
        if row is not None and row.removed_at is None:
            row.cancelled_at = clock.now()
    due = clock.now() + dt.timedelta(seconds=ctx.settings.mover_grace_period)
    for group in move.removed:
        ctx.session.add(
            GroupRemoval(
                employee_number=person.employee_number,
                sub=person.sub,
                group=group,
                reason="mover",
                event_id=ctx.event.id,
                due_at=due,
                removed_at=clock.now() if move.removed_now else None,
            )
        )
    if move.removed and not move.removed_now:
        jobs.enqueue(
            ctx.session,
            "provisioning.remove_groups",
            {"employee_number": person.employee_number},
            run_at=due,
            dedup_key=f"hr-remove:{ctx.event.id}",
        )
    open_items = {
        r.group
        for r in ctx.session.scalars(
            select(ReviewItem).where(
                ReviewItem.employee_number == person.employee_number, ReviewItem.decided_at.is_(None)
            )
        )
    }
    for group in move.review:
        if group not in open_items:
            ctx.session.add(
                ReviewItem(
                    employee_number=person.employee_number, sub=person.sub, group=group, event_id=ctx.event.id
                )
            )
    person.groups = move.new
    person.last_effective_at = ctx.event.effective_at
    grants.moved(
        ctx.session,
        person,
        event_id=ctx.event.id,
        on=grants.local_date(ctx.event.effective_at, ctx.settings.timezone),
        decision=ctx.data.person.decision_number,
    )
    if "end_date" in ctx.data.person.model_fields_set:
        schedule_end(ctx, person)
    details = {
        "event": ctx.event.id,
        "employee_number": person.employee_number,
        "department": person.department,
        "title": person.title,
        "added": move.added,
        "removed": move.removed,
        "removal_due_at": due.isoformat(),
        "for_review": move.review,
        "dn": move.dn,
        "moved_from": move.moved_from,
        "renamed": move.renamed,
    }
    if person.sub:  # "as if a new engagement" (R-JML-4): the new manager reviews what is left
        events.review_requested.send(person.sub, session=ctx.session, event="mover", actor=ACTOR)
    audit.record(
        ctx.session,
        "hr.mover",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=person.sub,
        details=details,
    )
    applied(ctx, details)


def remove_due_groups(services: Services, employee_number: str) -> int:
    """After the grace period: remove what the old post gave (job ``provisioning.remove_groups``)."""
    with services.reader() as reader:
        due = [
            (r.id, r.group, r.sub, r.reason, r.event_id)
            for r in reader.scalars(
                select(GroupRemoval).where(
                    GroupRemoval.employee_number == employee_number,
                    GroupRemoval.removed_at.is_(None),
                    GroupRemoval.cancelled_at.is_(None),
                    GroupRemoval.due_at <= clock.now(),
                )
            )
        ]
    for _, group, sub, _, _ in due:
        remove_member(services.directory, group, sub)
    with services.transaction() as session:
        for removal_id, group, sub, reason, event_id in due:
            row = session.get(GroupRemoval, removal_id)
            if row is None or row.removed_at is not None:
                continue
            row.removed_at = clock.now()
            audit.record(
                session,
                "hr.access_removed",
                severity=audit.Severity.SIGNIFICANT,
                actor=ACTOR,
                subject=sub,
                details={"group": group, "reason": reason, "event": event_id},
            )
    return len(due)
