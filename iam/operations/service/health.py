"""The health of each dependency, checked now: database, directory, mail relay, workers."""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from iam.models.jobs import Job, JobStatus
from iam.operations.service.workers import workers

if TYPE_CHECKING:
    from iam.services import Services


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    """True healthy, False failing, None not configured."""
    detail: str
    millis: int


def _timed(fn: Any) -> tuple[bool | None, str, int]:
    t0 = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception as exc:  # noqa: BLE001 — a failing check is a result, not an error
        ok, detail = False, type(exc).__name__
    return ok, detail, int((time.perf_counter() - t0) * 1000)


def _database(services: Services) -> tuple[bool | None, str]:
    with services.reader() as session:
        session.execute(text("SELECT 1"))
        pending = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.PENDING))
    return True, f"reachable; {pending} job(s) waiting"


def _directory(services: Services) -> tuple[bool | None, str]:
    services.directory.ping()
    return True, f"reachable ({services.settings.directory.kind})"


def _mail(services: Services) -> tuple[bool | None, str]:
    m = services.settings.mail
    if not m.host:
        return None, "not configured (mail.host is empty)"
    timeout = services.settings.operations.health_timeout
    with smtplib.SMTP(m.host, m.port, timeout=timeout) as smtp:
        code, _ = smtp.noop()
    return code == 250, f"{m.host}:{m.port} answered {code}"


def _workers(services: Services) -> tuple[bool | None, str]:
    alive_seconds = services.settings.operations.worker_alive_seconds
    with services.reader() as session:
        rows = workers(session, alive_seconds)
    alive = [w for w in rows if w.alive]
    if not alive:
        return False, f"no worker seen in the last {alive_seconds} s"
    return True, f"{len(alive)} alive"


def health(services: Services) -> list[Check]:
    """Check each dependency now (each with its own short timeout); never raises."""
    checks = {
        "database": _database,
        "directory": _directory,
        "mail": _mail,
        "workers": _workers,
    }
    out = []
    for name, fn in checks.items():
        ok, detail, millis = _timed(lambda fn=fn: fn(services))
        out.append(Check(name=name, ok=ok, detail=detail, millis=millis))
    return out
