"""Who acts, and what they may do: the authorisation rules of PIM (deny by default)."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.directory.errors import DirectoryError
from iam.errors import Forbidden
from pim.models import ElevationRequest, Eligibility
from pim.roles import Role

if TYPE_CHECKING:
    from iam.services import Services


@dataclass(frozen=True)
class Actor:
    """The person acting, as established by the view / CLI / API edge."""

    sub: str
    username: str
    level: str = "password"
    """The sign-in level they proved (see :mod:`pim.assurance`)."""
    ip: str | None = None
    user_agent: str | None = None
    system: bool = False
    """The worker or an operator at the CLI (trusted: no personal restrictions)."""
    officer: bool = False
    """Vouched for as a security officer by the administration console's role check
    (``iam.admin``, role ``security_officer``: the ``[admin]`` groups and lists)."""

    @classmethod
    def operator(cls, name: str = "cli") -> Actor:
        return cls(sub=f"operator:{name}", username=f"operator:{name}", level="smartcard", system=True)


SYSTEM = Actor(sub="system", username="system", level="smartcard", system=True)


def record(session: Session, event: str, actor: Actor, **kw: Any) -> int:
    kw.setdefault("ip", actor.ip)
    kw.setdefault("user_agent", actor.user_agent)
    return audit.record(session, event, actor=actor.username if actor.system else actor.sub, **kw)


def refuse(session: Session, event: str, actor: Actor, **kw: Any) -> int:
    """Audit a refusal so that it stays on record although the refusal rolls the transaction
    back (see :func:`iam.audit.record_refusal`). Every PIM refusal goes through here."""
    kw.setdefault("ip", actor.ip)
    kw.setdefault("user_agent", actor.user_agent)
    kw.setdefault("severity", audit.Severity.SIGNIFICANT)
    return audit.record_refusal(session, event, actor=actor.username if actor.system else actor.sub, **kw)


def _groups_of(services: Services, sub: str) -> list[str]:
    try:
        return services.directory.user_groups(sub)
    except DirectoryError:
        return []  # deny when the directory cannot say


def _same_name(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def is_security_officer(services: Services, actor: Actor) -> bool:
    if actor.system or actor.officer:
        return True
    s = services.settings.pim
    if any(_same_name(actor.username, u) for u in s.security_officers):
        return True
    if s.security_officer_group:
        return any(_same_name(g, s.security_officer_group) for g in _groups_of(services, actor.sub))
    return False


def may_approve(services: Services, role: Role, actor: Actor) -> bool:
    """Named approver or member of the role's approver group (not the same as requester: the
    caller checks that)."""
    if actor.system:
        return True
    if any(_same_name(actor.username, u) for u in role.approvers):
        return True
    if role.approver_group:
        return any(_same_name(g, role.approver_group) for g in _groups_of(services, actor.sub))
    return False


def require_officer(session: Session, services: Services, actor: Actor, *, action: str) -> None:
    """Deny (audited) unless the actor is a security officer."""
    if not is_security_officer(services, actor):
        refuse(session, "pim.officer_action_refused", actor, details={"action": action})
        raise Forbidden("Only a security officer may do this.")


def eligibility(session: Session, role: str, actor: Actor) -> Eligibility | None:
    return session.scalar(
        select(Eligibility).where(
            Eligibility.role == role,
            (Eligibility.sub == actor.sub) | (Eligibility.username == actor.username),
        )
    )


def random_password(length: int = 32) -> str:
    """Random, unknown to anyone, meets AD complexity (all four classes)."""
    alphabet = string.ascii_letters + string.digits
    core = "".join(secrets.choice(alphabet) for _ in range(length))
    return f"{core}aA1-"


def notify(session: Session, req: ElevationRequest, event: str) -> None:
    """Mail the people concerned (a job: a mail outage never blocks the change)."""
    jobs.enqueue(session, "pim.notify", {"request_id": req.id, "event": event})


def remaining(req: ElevationRequest) -> dt.timedelta | None:
    if req.ends_at is None:
        return None
    return max(req.ends_at - clock.now(), dt.timedelta(0))


def seal(services: Services, value: str, *, context: str) -> str:
    """Encrypt a secret for storage (AES-GCM, bound to ``context``)."""
    blob = services.cipher.encrypt(value.encode(), context=context.encode())
    return base64.b64encode(blob).decode()


def unseal(services: Services, stored: str, *, context: str) -> str:
    return services.cipher.decrypt(base64.b64decode(stored), context=context.encode()).decode()
