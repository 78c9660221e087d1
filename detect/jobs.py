"""Detection's worker tasks: the audit cursor passes (alerts, statistics), the AD change poll,
housekeeping, and the alert webhook (a durable job, retried)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.orm import Session

from detect import rules
from detect.models import Alert
from detect.service import adchanges, alerts, stats
from iam import clock
from iam.jobs import RetryLater, handler, periodic

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("detect")


@periodic("detect.alerts", lambda settings: float(settings.detect.interval))
def run_alerts(services: Services) -> None:
    """Evaluate the detection rules on new sealed audit events (every second by default)."""
    while alerts.run(services) >= services.settings.detect.batch:
        pass


@periodic("detect.stats", lambda settings: float(settings.detect.interval))
def run_stats(services: Services) -> None:
    """Add new sealed audit events to the per-agency counters."""
    while stats.run(services) >= services.settings.detect.batch:
        pass


@periodic("detect.ad_changes", lambda settings: float(settings.detect.ad_poll_interval))
def poll_directory(services: Services) -> None:
    """Follow Active Directory changes made outside the provider."""
    adchanges.poll(services)


@periodic("detect.housekeeping", 3600.0)
def housekeeping(services: Services) -> None:
    alerts.purge_hits(services)


@handler("detect.webhook")
def _webhook(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """POST the alert as JSON to the configured webhook (retried with backoff on failure)."""
    url = rules.load(services.settings.detect.rules_file).webhook.url
    alert = session.get(Alert, int(payload["alert"]))
    if not url or alert is None:
        return
    body = {"type": "iam.alert", "sent_at": clock.now().isoformat(), "alert": alerts.webhook_body(alert)}
    try:
        resp = httpx.post(url, json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        raise RetryLater(f"the webhook could not be reached: {type(exc).__name__}") from exc
    if resp.status_code >= 300:
        raise RetryLater(f"the webhook answered {resp.status_code}")
