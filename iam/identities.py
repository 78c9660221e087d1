"""Identities: the accounts the provider has seen, and disabling them everywhere at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, events, jobs
from iam.directory.base import DirectoryUser
from iam.errors import NotFound
from iam.models.identity import Identity


def upsert_identity(session: Session, user: DirectoryUser, *, kind: str) -> Identity:
    """Record (or refresh) the identity of a directory user; ``sub`` is the directory's id."""
    row = session.get(Identity, user.id)
    if row is None:
        row = Identity(sub=user.id, directory=kind, username=user.username)
        session.add(row)
    row.username = user.username
    row.display_name = user.name
    row.email = user.email
    row.disabled = not user.enabled
    return row


def find_identity(session: Session, username: str) -> Identity | None:
    return session.scalar(select(Identity).where(Identity.username == username))


def disable_identity(
    session: Session,
    *,
    sub: str,
    actor: str,
    reason: str,
    ip: str | None = None,
    write_directory: bool = True,
) -> Identity:
    """Disable an account: sessions and tokens end now, the directory write is a durable job.

    Feature packages react to :data:`iam.events.identity_disabled` in this same transaction
    (SSO ends sessions, revokes refresh tokens and queues back-channel logouts).
    """
    row = session.get(Identity, sub)
    if row is None:
        raise NotFound("There is no such identity.")
    row.disabled = True
    row.updated_at = clock.now()
    if write_directory:
        jobs.enqueue(session, "iam.directory.disable", {"user_id": sub}, priority=jobs.URGENT)
    audit.record(
        session,
        "identity.disabled",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=sub,
        ip=ip,
        details={"reason": reason, "username": row.username},
    )
    events.identity_disabled.send(sub, session=session, reason=reason)
    return row


def enable_identity(session: Session, *, sub: str, actor: str, ip: str | None = None) -> Identity:
    row = session.get(Identity, sub)
    if row is None:
        raise NotFound("There is no such identity.")
    row.disabled = False
    jobs.enqueue(session, "iam.directory.enable", {"user_id": sub})
    audit.record(
        session,
        "identity.enabled",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        subject=sub,
        ip=ip,
        details={"username": row.username},
    )
    return row
