"""The shape of a feature's periodic pass (access requests, access reviews): one transaction;
the directory down or a configuration error is one log line and the next pass tries again;
what was done is logged when anything was."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from iam.directory.errors import DirectoryUnavailable
from iam.errors import ConfigError

if TYPE_CHECKING:
    from iam.services import Services


def run_tick(
    services: Services,
    step: Callable[[Services, Session], dict[str, int]],
    *,
    what: str,
    log: logging.Logger,
) -> None:
    """Run STEP in a transaction of its own; WHAT names the feature in the log ("access reviews")."""
    try:
        with services.transaction() as session:
            done = step(services, session)
    except DirectoryUnavailable as exc:
        log.warning("%s: the directory is unavailable; next pass retries (%s)", what, exc)
        return
    except ConfigError as exc:
        log.error("%s: %s", what, exc)  # noqa: TRY400 — one sentence, no traceback
        return
    if any(done.values()):
        log.info("%s: %s", what, done)
