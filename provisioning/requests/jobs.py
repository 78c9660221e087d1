"""Scheduled work of access requests (run by ``iam worker``).

- ``requests.fulfil``: a decided grant into AD, read back; AD down → retried.
- ``requests.end``: a time-limited grant removed at its end (queued with ``run_at``), read back.
- periodic ``requests.tick`` (``requests.tick_interval``): reminders before a step's deadline,
  escalation once it passed (working days of the organisation's calendar).

Also registers where request-given rights came from (access reviews show "granted by access
request N")."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import entitlements, events
from iam.directory.errors import DirectoryUnavailable
from iam.jobs import RetryLater, handler, periodic
from provisioning.requests.service import deciding, fulfilment
from provisioning.ticks import run_tick

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("provisioning.requests")


@handler(deciding.FULFIL_JOB)
def _fulfil(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        fulfilment.fulfil(services, session, int(payload["request"]))
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


@handler(deciding.END_JOB)
def _end(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        fulfilment.end(services, session, int(payload["request"]))
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


@periodic("requests.tick", lambda settings: settings.requests.tick_interval)
def _tick(services: Services) -> None:
    run_tick(services, deciding.tick, what="access requests", log=log)


entitlements.register_origins("access_requests", fulfilment.origins)
events.identity_disabled.connect(deciding.on_identity_disabled, weak=False)
