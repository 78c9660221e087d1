"""The worker's check that a restore drill is due (R-OPS-2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from iam.jobs import periodic

if TYPE_CHECKING:
    from iam.services import Services


@periodic("iam.backup.drill_due", lambda settings: settings.backup.check_interval)
def drill_due(services: Services) -> None:
    from iam.backup.service import check_drill_due

    check_drill_due(services)
