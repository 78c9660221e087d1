"""Scheduled work of access reviews (run by ``iam worker``).

- ``reviews.remediate``: one revocation into the directory, read back; AD down → retried.
- ``reviews.event``: a campaign for one person after a mover, rehire, break-glass use or an
  out-of-band finding (queued by the feature that saw it).
- periodic ``reviews.tick`` (``reviews.tick_interval``): deadlines with the default outcome,
  escalation, reminders, and scheduled starts (every ``recurrence_months``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import events
from iam import jobs as job_table
from iam.directory.errors import DirectoryUnavailable
from iam.jobs import RetryLater, handler, periodic
from provisioning.reviews.service import campaigns, remediation
from provisioning.ticks import run_tick

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("provisioning.reviews")

EVENT_JOB = "reviews.event"


@handler(campaigns.REMEDIATE_JOB)
def _remediate(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        remediation.remediate(services, session, int(payload["item"]))
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


@handler(EVENT_JOB)
def _event(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        campaigns.on_event(
            services,
            session,
            event=str(payload["event"]),
            person=str(payload["person"]),
            actor=str(payload["actor"]),
        )
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


@periodic("reviews.tick", lambda settings: settings.reviews.tick_interval)
def _tick(services: Services) -> None:
    run_tick(services, campaigns.tick, what="access reviews", log=log)


def _on_review_requested(sub: str, *, session: Session, event: str, actor: str = "system", **_: Any) -> None:
    """Queue the review in the sender's transaction: it exists exactly when the change does,
    and the directory read happens in the worker (retried while AD is down)."""
    job_table.enqueue(session, EVENT_JOB, {"event": event, "person": sub, "actor": actor})


events.review_requested.connect(_on_review_requested, weak=False)
