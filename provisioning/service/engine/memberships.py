"""Birthright memberships of new accounts, written per group across joiners (issue 18).

A joiner applied by the worker is created without its groups; the transaction that records it
queues a ``provisioning.groups`` job with the account's id, DN and groups. Whichever worker runs
one such job takes every other due one with it (up to :data:`BATCH`) and writes one membership
modify per group and 100 members instead of one per person and group: the DC takes a batch at
about 2,000 members/s against about 160/s one by one.

Nothing is lost: a job is done only once its memberships are written; when the directory is
unreachable every job of the batch goes back to the queue with backoff, and the account stays
as it is (its groups come with the retry). AD refuses a batched modify whole when one member is
already in the group or gone; ``Directory.add_members`` then writes that chunk one by one.

Per-person order holds: before any later event of a person is applied (a mover, a leaver),
that person's queued memberships are written first (:func:`settle_person`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from iam import jobs
from iam.directory.base import Directory, DirectoryUser
from iam.directory.errors import DirectoryUnavailable, NoSuchEntry
from provisioning.service.engine.common import Ctx, Waiting, ensure_group, forget_groups, log

if TYPE_CHECKING:
    from iam.services import Services

GROUPS_JOB = "provisioning.groups"
#: Joiners whose memberships one worker writes together.
BATCH = 500


def _prefix(employee_number: str) -> str:
    return f"hr-groups:{employee_number}:"


def queue(ctx: Ctx, employee_number: str, user: DirectoryUser, groups: list[str]) -> None:
    """In the joiner's own transaction: its memberships, to be written with others'."""
    if not groups:
        return
    jobs.enqueue(
        ctx.session,
        GROUPS_JOB,
        {
            "employee_number": employee_number,
            "sub": user.id,
            "dn": user.dn,
            "username": user.username,
            "groups": list(groups),
        },
        dedup_key=f"{_prefix(employee_number)}{ctx.event.id}",
        max_attempts=ctx.settings.max_attempts + 4,
    )


def write(directory: Directory, payloads: list[dict[str, Any]]) -> dict[str, Exception]:
    """One ``add_members`` per group for all ``payloads``. Returns the groups that could not be
    written, with why (the others are written); an unreachable directory stops it all."""
    by_group: dict[str, list[DirectoryUser]] = defaultdict(list)
    for p in payloads:
        user = DirectoryUser(id=str(p["sub"]), username=str(p.get("username") or ""), dn=str(p["dn"]))
        for group in p["groups"]:
            by_group[str(group)].append(user)
    failed: dict[str, Exception] = {}
    for group, users in by_group.items():
        try:
            try:
                gone = directory.add_members(group, users)
            except NoSuchEntry:  # the group was deleted after the accounts were made: again, once
                forget_groups(directory)
                ensure_group(directory, group)
                gone = directory.add_members(group, users)
        except DirectoryUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 — this group's members wait; the others go on
            log.warning("memberships of %s could not be written: %s", group, exc)
            failed[group] = exc
            continue
        if gone:
            log.warning("%d account(s) no longer exist; not added to %s", len(gone), group)
    return failed


def _run(services: Services, entries: list[tuple[str | None, dict[str, Any]]], me: str) -> None:
    """Write ``entries`` (job id, payload; None: the job the worker itself runs) and settle the
    claimed jobs: done, or back in the queue when their memberships were not all written.
    Raises for the worker's own job when it was not."""
    backoff_base = services.settings.worker.backoff_base
    ids = [i for i, _ in entries if i is not None]
    try:
        failed = write(services.directory, [p for _, p in entries])
    except Exception as exc:
        with services.transaction() as session:
            jobs.settle(session, ids, me=me, error=f"{type(exc).__name__}: {exc}", backoff_base=backoff_base)
        raise
    bad = {i: p for i, p in entries if failed.keys() & set(p["groups"])}
    with services.transaction() as session:
        jobs.settle(session, [i for i in ids if i not in bad], me=me, error=None, backoff_base=backoff_base)
        for i, p in bad.items():
            if i is not None:
                why = "; ".join(f"{g}: {failed[g]}" for g in p["groups"] if g in failed)
                jobs.settle(session, [i], me=me, error=why, backoff_base=backoff_base)
    if None in bad:
        own = bad[None]
        raise jobs.RetryLater("; ".join(f"{g}: {failed[g]}" for g in own["groups"] if g in failed))


def run_batch(services: Services, payload: dict[str, Any]) -> None:
    """Handler of one ``provisioning.groups`` job: it and every other due one, together."""
    me = jobs.worker_id()
    with services.transaction() as session:
        more, _ = jobs.claim_more(
            session, GROUPS_JOB, me=me, limit=BATCH - 1, lease=services.settings.worker.lease
        )
    entries: list[tuple[str | None, dict[str, Any]]] = [(None, payload), *more]
    try:
        _run(services, entries, me)
    except DirectoryUnavailable as exc:
        raise jobs.RetryLater(str(exc)) from exc


def settle_person(services: Services, employee_number: str) -> None:
    """Write this person's queued memberships now, before their next event applies. Raises
    Waiting while another worker is writing them (the event is retried after it)."""
    if not _pending(services, employee_number):
        return
    me = jobs.worker_id()
    with services.transaction() as session:
        mine, busy = jobs.claim_more(
            session,
            GROUPS_JOB,
            me=me,
            limit=50,
            lease=services.settings.worker.lease,
            dedup_prefix=_prefix(employee_number),
        )
    if mine:
        entries: list[tuple[str | None, dict[str, Any]]] = list(mine)
        _run(services, entries, me)
        with services.reader() as reader:
            if _left(reader, [i for i, _ in mine]):
                raise Waiting("The joiner's group memberships could not all be written yet.")
    if busy:
        raise Waiting("The joiner's group memberships are being written; this event follows them.")


def _left(reader: Any, ids: list[str]) -> bool:
    from sqlalchemy import select

    from iam.models.jobs import Job, JobStatus

    return (
        reader.scalar(select(Job.id).where(Job.id.in_(ids), Job.status != JobStatus.DONE).limit(1))
        is not None
    )


def _pending(services: Services, employee_number: str) -> bool:
    from sqlalchemy import select

    from iam.models.jobs import Job, JobStatus

    with services.reader() as reader:
        stmt = (
            select(Job.id)
            .where(
                Job.kind == GROUPS_JOB,
                Job.dedup_key.startswith(_prefix(employee_number), autoescape=True),
                Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
            .limit(1)
        )
        return reader.scalar(stmt) is not None
