"""Joiners and rehires (R-JML-1 … R-JML-3): the account in the department's OU under the
organisation's username rule, birthright groups only, an initial password with must-change,
disabled until the start date."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from iam.directory.base import DirectoryUser, NewUser
from iam.directory.errors import EntryExists, NoSuchEntry
from iam.i18n import N_
from iam.identities import upsert_identity
from provisioning.models import GroupRemoval, HrPerson, PersonStatus
from provisioning.service import delivery, grants
from provisioning.service.engine import memberships
from provisioning.service.engine.common import (
    ACTOR,
    Ctx,
    Permanent,
    Waiting,
    applied,
    base_ou,
    choose_username,
    ensure_group,
    forget_groups,
    groups_created,
    log,
    position,
    reserve,
    schedule_end,
    set_fields,
    start_of,
)
from provisioning.service.policies import birthright, naming
from provisioning.service.schemas import EventIn

if TYPE_CHECKING:
    from iam.services import Services


@dataclass
class Account:
    """What the directory step did for a joiner or rehire."""

    user: DirectoryUser
    password: str
    groups: list[str]
    ou: str
    started: bool
    created_groups: list[str] = field(default_factory=list)
    password_hash: str | None = None
    """argon2id hash of ``password`` for the history, computed before the write transaction."""
    groups_queued: bool = False
    """The new account's memberships are not written yet: the record queues them (memberships)."""


def directory_step(
    services: Services, reader: Session, data: EventIn, person: HrPerson | None, *, batch_groups: bool = False
) -> Account:
    """Find (a retry) or create the account, set the initial password, add the birthright
    groups, enable it if the start date has come. Every step can run twice harmlessly.

    A new account is written in as few directory round trips as the directory allows: AD takes
    the password, must-change, the account state and (with the groups' DNs known) the
    memberships with the add (see ``ActiveDirectory.create_user``). With ``batch_groups`` a new
    account is made without its memberships, which are queued and written per group together
    with other joiners' (``memberships``)."""
    from iam.passwords import hashing
    from iam.passwords import service as passwords

    directory = services.directory
    want = position(person, data.person)
    ou = birthright(services).ou_for(want["department"], base_ou(services))
    groups = birthright(services).groups_for(
        department=want["department"], title=want["title"], kind=want["engagement"]
    )
    started = start_of(want["start_date"], services.settings.provisioning) <= clock.now()

    def write(temporary: str) -> tuple[list[str], DirectoryUser | None, bool]:
        try:
            created = [g for g in groups if ensure_group(directory, g)]
            return created, *_write_account(
                services, reader, person, want, ou, groups, started, temporary, batch_groups
            )
        except NoSuchEntry:
            # a group remembered as existing was deleted meanwhile: look again, retry once
            forget_groups(directory)
            created = [g for g in groups if ensure_group(directory, g)]
            return created, *_write_account(
                services, reader, person, want, ou, groups, started, temporary, batch_groups
            )

    # AD may refuse the random password (the write is refused whole): another is tried at once
    # instead of the event waiting for its retry
    temporary, (created, fresh, queued) = passwords.with_random_password(services.password_profile, write)
    if fresh is None:
        raise Waiting("The new account vanished from the directory.")
    # The history entry's hash is computed here, outside the database transaction (not under
    # the write lock), at the cost a random machine-made password needs (hashing.py).
    password_hash = hashing.hash_generated_password(temporary)
    return Account(fresh, temporary, groups, ou, started, created, password_hash, queued)


def _write_account(
    services: Services,
    reader: Session,
    person: HrPerson | None,
    want: dict[str, Any],
    ou: str,
    groups: list[str],
    started: bool,
    temporary: str,
    batch_groups: bool,
) -> tuple[DirectoryUser | None, bool]:
    """The account in the directory: created in one go, or (a retry, a rehire whose account
    is still there) brought to the wanted state step by step. The second value: the new
    account's memberships are left to be queued (``batch_groups``)."""
    directory = services.directory
    user = None
    if person is not None and person.sub:
        user = directory.get_user(person.sub)
    if user is None:
        user = directory.find_user(employee_number=want["employee_number"])
    if user is None:
        queued = batch_groups and bool(groups)

        def new(username: str, checked: bool) -> NewUser:
            return NewUser(
                username=username,
                given_name=want["given_name"],
                family_name=want["family_name"],
                display_name=f"{want['given_name']} {want['family_name']}",
                email=want["email"],
                employee_number=want["employee_number"],
                ou=ou or None,
                enabled=started,
                password=temporary,
                must_change=True,
                groups=() if queued else tuple(groups),
                name_checked=checked,
            )

        if person is not None and person.username:
            # a rehire after the account was deleted: the same name
            return directory.create_user(new(person.username, False)), queued
        candidates = naming(services).candidates(
            given=want["given_name"], family=want["family_name"], employee_number=want["employee_number"]
        )
        taken: set[str] = set()
        for _ in range(len(candidates)):
            # choose_username has just searched the directory for the name: the add does not
            # search again; a name taken in between fails the add and the next one is tried
            username = choose_username(reader, directory, candidates, want["employee_number"], taken=taken)
            try:
                return directory.create_user(new(username, True)), queued
            except EntryExists:
                log.info("username %s was taken meanwhile; trying the next one", username)
                taken.add(username.casefold())
        raise Permanent(N_("No free username: every name the naming rule allows is taken or reserved."))
    directory.set_password(user.id, temporary, must_change=True)
    for group in groups:
        directory.add_member(group, user.id)
    if started:
        directory.enable(user.id)
    else:
        directory.disable(user.id)
    return directory.get_user(user.id), False


def _record_account(ctx: Ctx, person: HrPerson, acc: Account) -> dict[str, Any]:
    from iam.passwords import service as passwords

    reserve(ctx.session, acc.user.username, person.employee_number)
    person.username, person.sub = acc.user.username, acc.user.id
    person.groups = acc.groups
    groups_created(ctx, acc.created_groups)
    if acc.groups_queued:
        memberships.queue(ctx, person.employee_number, acc.user, acc.groups)
    identity = upsert_identity(ctx.session, acc.user, kind=ctx.directory.kind)
    identity.disabled = not acc.started
    identity.birth_date = person.birth_date
    ctx.session.flush()
    profile = ctx.services.password_profile
    passwords.record_password_set(
        ctx.session,
        acc.user.id,
        acc.password,
        by_admin=True,
        actor=ACTOR,
        profile=profile,
        password_hash=acc.password_hash,
    )
    if acc.started:
        person.status = PersonStatus.ACTIVE
        person.granted_at = person.granted_at or clock.now()
    else:
        person.status = PersonStatus.PENDING_START
        start = start_of(person.start_date, ctx.settings)
        jobs.enqueue(
            ctx.session,
            "provisioning.start",
            {"employee_number": person.employee_number},
            run_at=start,
            dedup_key=f"hr-start:{person.employee_number}:{start.isoformat()}:{ctx.event.id}",
        )
    # The position holds from the start date; a joiner applied before it holds from now. A mover
    # dated in between still applies.
    person.last_effective_at = min(ctx.event.effective_at, start_of(person.start_date, ctx.settings))
    grants.joined(ctx.session, person, event_id=ctx.event.id)
    schedule_end(ctx, person)
    return delivery.prepare(ctx.session, ctx.services, person, acc.password)


def record_joiner(ctx: Ctx, acc: Account) -> None:
    p = ctx.data.person
    person = HrPerson(employee_number=p.employee_number, status=PersonStatus.PENDING_START)
    set_fields(person, p)
    person.linked_accounts, person.groups = [], []
    ctx.session.add(person)
    ctx.session.flush()
    delivered = _record_account(ctx, person, acc)
    details = {
        "event": ctx.event.id,
        "employee_number": person.employee_number,
        "username": acc.user.username,
        "groups": acc.groups,
        "ou": acc.ou,
        "enabled": acc.started,
    }
    audit.record(
        ctx.session,
        "hr.joiner",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=acc.user.id,
        details=details,
    )
    applied(
        ctx,
        {
            **details,
            "sub": acc.user.id,
            "dn": acc.user.dn,
            "start_at": start_of(person.start_date, ctx.settings).isoformat(),
            **delivered,
        },
    )


def record_rehire(ctx: Ctx, person: HrPerson, acc: Account) -> None:
    previous = [
        {"group": r.group, "reason": r.reason, "removed_at": r.removed_at.isoformat()}
        for r in ctx.session.scalars(
            select(GroupRemoval).where(
                GroupRemoval.employee_number == person.employee_number, GroupRemoval.removed_at.is_not(None)
            )
        )
        if r.removed_at
    ]
    set_fields(person, ctx.data.person)
    if "end_date" not in ctx.data.person.model_fields_set:
        person.end_date = None
    person.ended_at = person.purge_at = person.granted_at = None
    delivered = _record_account(ctx, person, acc)
    details = {
        "event": ctx.event.id,
        "employee_number": person.employee_number,
        "username": person.username,
        "groups": acc.groups,
        "enabled": acc.started,
        "previous_removals": previous,
    }
    # every right carried over from before is reviewed (R-JML-4)
    events.review_requested.send(acc.user.id, session=ctx.session, event="rehire", actor=ACTOR)
    audit.record(
        ctx.session,
        "hr.rehire",
        severity=audit.Severity.SIGNIFICANT,
        actor=ACTOR,
        subject=acc.user.id,
        details=details,
    )
    applied(ctx, {**details, **delivered})


def start(services: Services, employee_number: str) -> bool:
    """The start date has come: enable the account (job ``provisioning.start``)."""
    with services.reader() as reader:
        person = reader.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.PENDING_START or person.sub is None:
            return False
        if start_of(person.start_date, services.settings.provisioning) > clock.now():
            return False
        sub = person.sub
    directory = services.directory
    directory.enable(sub)
    user = directory.get_user(sub)
    if user is None:
        raise Waiting("The account is missing in the directory.")
    with services.transaction() as session:
        person = session.get(HrPerson, employee_number)
        if person is None or person.status != PersonStatus.PENDING_START:
            return False
        row = upsert_identity(session, user, kind=directory.kind)
        row.birth_date = person.birth_date
        person.status = PersonStatus.ACTIVE
        person.granted_at = clock.now()
        audit.record(
            session,
            "hr.started",
            severity=audit.Severity.SIGNIFICANT,
            actor=ACTOR,
            subject=sub,
            details={"employee_number": employee_number, "username": person.username},
        )
        return True
