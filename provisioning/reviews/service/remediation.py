"""Remediation: a revocation reaches the directory through a durable job (retried while AD is
down), is recorded with its campaign and decision, and is read back to prove it is gone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, entitlements, jobs
from iam.audit import Severity
from iam.directory import NoSuchEntry
from provisioning.reviews.models import CampaignItem, Decision, Remediation
from provisioning.reviews.service.campaigns import REMEDIATE_JOB, SYSTEM, get

if TYPE_CHECKING:
    from iam.services import Services


def target(item: CampaignItem) -> str:
    """What is removed: a nested membership goes through its direct group (``via[0]``)."""
    return item.via[0] if item.kind == "group" and item.via else item.resource


def remediate(services: Services, session: Session, item_id: int) -> str | None:
    """Carry one settled revocation into the directory and read it back. Raises
    ``DirectoryUnavailable`` while the directory is down (the job retries). The directory is
    written before ``session`` is used (the built-in directory writes through its own
    transactions, which must not wait for this one)."""
    with services.reader() as reader:
        item = reader.get(CampaignItem, item_id)
        if (
            item is None
            or not item.final
            or item.remediation not in (Remediation.PENDING, Remediation.FAILED)
        ):
            return None
        account_id, kind, name, decision = item.account_id, item.kind, item.source, item.decision
        what, reduce_to = target(item), item.reduce_to
        reference, reason = f"review item {item.id}", f"access review {item.campaign_id}: {item.decision}"
    source = entitlements.source(name)
    error = None
    if decision == Decision.REDUCE and reduce_to:
        try:
            services.directory.add_member(reduce_to, account_id)  # the lesser right first
        except NoSuchEntry:
            error = f"No group named {reduce_to!r}: the lesser right could not be given."
    if error is None:
        source.revoke(
            services,
            session,
            account_id=account_id,
            kind=kind,
            resource=what,
            actor=SYSTEM,
            reason=reason,
            reference=reference,
        )
    still = error is None and source.holds(services, session, account_id=account_id, kind=kind, resource=what)
    row = session.get(CampaignItem, item_id)
    assert row is not None
    now = clock.now()
    if error is not None:
        row.remediation, row.remediation_error = Remediation.FAILED, error
    else:
        row.remediated_at = row.verified_at = now
        row.remediation = Remediation.STILL_PRESENT if still else Remediation.DONE
        row.remediation_error = "The right is still there after removal." if still else None
    failed = error is not None or still
    audit.record(
        session,
        "review.remediated",
        severity=Severity.CRITICAL if failed else Severity.SIGNIFICANT,
        outcome="failure" if failed else "success",
        actor=SYSTEM,
        subject=account_id,
        details={
            "campaign": row.campaign_id,
            "item": row.id,
            "decision": decision,
            "account": row.account,
            "resource": what,
            **({"reduce_to": reduce_to} if reduce_to else {}),
            "verified": not failed,
            **({"error": error} if error else {}),
        },
    )
    return row.remediation


def apply(session: Session, *, campaign_id: str, actor: str) -> int:
    """Queue the pending revocations of a campaign whose definition does not apply them at once."""
    get(session, campaign_id)
    pending = session.scalars(
        select(CampaignItem.id).where(
            CampaignItem.campaign_id == campaign_id,
            CampaignItem.final.is_(True),
            CampaignItem.remediation == Remediation.PENDING,
        )
    ).all()
    for item_id in pending:
        jobs.enqueue(session, REMEDIATE_JOB, {"item": item_id}, dedup_key=f"review-item:{item_id}")
    audit.record(
        session, "review.apply", actor=actor, details={"campaign": campaign_id, "queued": len(pending)}
    )
    return len(pending)


def verify(services: Services, session: Session, *, campaign_id: str, actor: str) -> dict[str, Any]:
    """Read the directory back for every remediated item: anything still present is reported
    (and a critical audit event raised)."""
    get(session, campaign_id)
    items = session.scalars(
        select(CampaignItem).where(
            CampaignItem.campaign_id == campaign_id,
            CampaignItem.remediation.in_([Remediation.DONE, Remediation.STILL_PRESENT]),
        )
    ).all()
    present = []
    now = clock.now()
    for item in items:
        source = entitlements.source(item.source)
        still = source.holds(
            services, session, account_id=item.account_id, kind=item.kind, resource=target(item)
        )
        item.remediation = Remediation.STILL_PRESENT if still else Remediation.DONE
        item.verified_at = now
        if still:
            present.append({"item": item.id, "account": item.account, "resource": target(item)})
    audit.record(
        session,
        "review.verified",
        severity=Severity.CRITICAL if present else Severity.NORMAL,
        outcome="failure" if present else "success",
        actor=actor,
        details={"campaign": campaign_id, "checked": len(items), "still_present": len(present)},
    )
    return {"checked": len(items), "still_present": present}
