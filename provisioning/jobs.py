"""Scheduled work of provisioning: events at their effective time (with backoff and the
dead-letter list), start dates, grace-period removals, retention, activation mails and the
periodic reconciliation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam.backup.service import after_restore
from iam.directory.errors import DirectoryUnavailable
from iam.jobs import RetryLater, handler, periodic
from provisioning import access
from provisioning.requests import jobs as _request_jobs  # noqa: F401 — registers access-request jobs
from provisioning.reviews import jobs as _review_jobs  # noqa: F401 — registers access-review jobs
from provisioning.service import delivery, engine
from provisioning.service.engine import memberships

if TYPE_CHECKING:
    from iam.services import Services

access.register()  # birthright and HR origins, reviews waiting, on "my access" (iam.access)


@handler("provisioning.apply")
def _apply(services: Services, session: Session, payload: dict[str, Any]) -> None:
    # a joiner's memberships are queued and written per group with other joiners' (below)
    engine.apply_due(services, str(payload["employee_number"]), batch_groups=True)


@handler(memberships.GROUPS_JOB)
def _groups(services: Services, session: Session, payload: dict[str, Any]) -> None:
    memberships.run_batch(services, payload)


def _directory_retry(fn: Any, services: Services, employee_number: str) -> None:
    try:
        fn(services, employee_number)
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


@handler("provisioning.start")
def _start(services: Services, session: Session, payload: dict[str, Any]) -> None:
    _directory_retry(engine.start, services, str(payload["employee_number"]))


@handler("provisioning.remove_groups")
def _remove(services: Services, session: Session, payload: dict[str, Any]) -> None:
    _directory_retry(engine.remove_due_groups, services, str(payload["employee_number"]))


@handler("provisioning.purge")
def _purge(services: Services, session: Session, payload: dict[str, Any]) -> None:
    _directory_retry(engine.purge, services, str(payload["employee_number"]))


@handler(delivery.MAIL_JOB)
def _mail(services: Services, session: Session, payload: dict[str, Any]) -> None:
    delivery.send_link(services, session, str(payload["activation"]), str(payload["to"]))


@periodic("provisioning.reconcile", lambda settings: settings.provisioning.reconcile_interval)
def _reconcile(services: Services) -> None:
    from sqlalchemy import select

    from provisioning.models import HrPerson
    from provisioning.service import reports

    with services.reader() as session:
        in_use = session.scalar(select(HrPerson.employee_number).limit(1)) is not None
    if in_use:  # before HR sends anyone, every account would be an "orphan"
        reports.reconcile(services, alert=True)


@after_restore("hr")
def _after_restore(services: Services) -> str:
    """After a restore, compare AD with what HR says before anyone signs in (orphans, accounts
    of leavers enabled again, missing entitlements) and alert on what differs."""
    from provisioning.service import reports

    findings = reports.reconcile(services, alert=True)
    return f"reconciled with the directory: {len(findings)} finding(s) (see `iam hr reconcile`)"


from provisioning import conformance as _conformance  # noqa: E402, F401 — registers conformance evidence
