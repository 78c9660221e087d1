"""The worker's SIEM task: one pass over the destinations every ``siem.interval`` seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iam.jobs import periodic

if TYPE_CHECKING:
    from iam.services import Services


@periodic("iam.siem.stream", lambda settings: float(settings.siem.interval))
def stream(services: Services) -> None:
    """Send each destination what it has not received (a no-op without destinations)."""
    if services.settings.siem.destinations:
        from iam.siem.service import pump_all

        pump_all(services)
