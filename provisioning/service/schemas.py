"""The HR event as every channel delivers it (API, SCIM, batch files), validated at the edge."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zoneinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iam.errors import ValidationFailed
from iam.i18n import N_
from provisioning.models import Engagement, EventKind

EMPLOYEE_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class PersonIn(BaseModel):
    """The HR record (R-JML-1). On a mover only the changed fields need be sent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    employee_number: str = Field(pattern=EMPLOYEE_NUMBER)
    given_name: str | None = Field(default=None, min_length=1, max_length=256)
    family_name: str | None = Field(default=None, min_length=1, max_length=256)
    birth_date: dt.date | None = None
    email: str | None = Field(default=None, max_length=256, pattern=r"^[^@\s]+@[^@\s]+$")
    department: str | None = Field(default=None, min_length=1, max_length=256)
    title: str | None = Field(default=None, min_length=1, max_length=256)
    manager: str | None = Field(default=None, pattern=EMPLOYEE_NUMBER)
    """Employee number of the manager."""
    manager_email: str | None = Field(default=None, max_length=256, pattern=r"^[^@\s]+@[^@\s]+$")
    engagement: Engagement | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    personal_data: Literal["none", "limited", "full"] | None = None
    personal_data_scope: str | None = Field(default=None, max_length=2000)
    decision_number: str | None = Field(default=None, max_length=128)
    remarks: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _dates(self) -> PersonIn:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


REQUIRED_FOR_NEW = ("given_name", "family_name", "department", "title", "engagement", "start_date")


class EventIn(BaseModel):
    """``POST /api/v1/hr/events``: one joiner, mover, leaver or rehire."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    idempotency_key: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    kind: EventKind
    effective_at: dt.datetime | dt.date | None = None
    """When it takes effect (default: now; a joiner or rehire: ``provisioning.joiner_lead_days``
    before the start date, default now). A date means local midnight (provisioning.timezone); a
    date-time must carry its UTC offset."""
    person: PersonIn

    @field_validator("effective_at")
    @classmethod
    def _aware(cls, value: dt.datetime | dt.date | None) -> dt.datetime | dt.date | None:
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            raise ValueError("a date-time needs a UTC offset, e.g. 2026-12-01T08:00:00+01:00")
        return value

    @model_validator(mode="after")
    def _complete(self) -> EventIn:
        if self.kind in (EventKind.JOINER, EventKind.REHIRE):
            missing = [f for f in REQUIRED_FOR_NEW if getattr(self.person, f) is None]
            if missing:
                raise ValueError(f"a {self.kind} needs person.{', person.'.join(missing)}")
        return self

    def effective(self, timezone: str, *, joiner_lead_days: int | None = None) -> dt.datetime:
        """When the event is applied. A joiner or rehire without ``effective_at`` is applied at
        once (its account created disabled, enabled at the start date), or ``joiner_lead_days``
        days before the start date when that is set."""
        from iam import clock

        value = self.effective_at
        if value is None:
            new = self.kind in (EventKind.JOINER, EventKind.REHIRE)
            if not (new and self.person.start_date and joiner_lead_days is not None):
                return clock.now()
            value = self.person.start_date - dt.timedelta(days=joiner_lead_days)
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC)
        return local_midnight(value, timezone)

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def digest(self) -> str:
        body = self.canonical()
        body.pop("idempotency_key", None)
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()


def local_midnight(day: dt.date, timezone: str) -> dt.datetime:
    zone = zoneinfo.ZoneInfo(timezone)
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def errors_of(exc: ValidationError) -> list[str]:
    """Precise, readable messages: ``person.start_date: Input should be a valid date``."""
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "event"
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {msg}")
    return out


def parse_event(data: Any) -> EventIn:
    """Validate one event; raise :class:`ValidationFailed` with every problem listed."""
    if not isinstance(data, dict):
        raise ValidationFailed(N_("The event must be a JSON object."))
    try:
        return EventIn.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("; ".join(errors_of(exc))) from None
