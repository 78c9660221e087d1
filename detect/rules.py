"""Detection rules as data (``detect.rules_file``, default ``policies/alerts.toml``): thresholds,
windows and quiet times per rule, working hours, alert recipients and the webhook. Read and
validated once per process; an invalid file stops the start with the rule and field named."""

from __future__ import annotations

import datetime as dt
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from iam.errors import ConfigError

KEYS = ("network", "ip", "actor", "subject", "client")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipients(_Strict):
    security_officer: list[str] = Field(default_factory=list)
    heads_of_service: list[str] = Field(default_factory=list)

    @property
    def all(self) -> list[str]:
        seen: dict[str, None] = {}
        for address in [*self.security_officer, *self.heads_of_service]:
            seen.setdefault(address.strip(), None)
        return [a for a in seen if a]


class Webhook(_Strict):
    url: str = ""

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value


class WorkingHours(_Strict):
    days: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    start: dt.time = dt.time(7, 0)
    end: dt.time = dt.time(19, 0)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 1 or d > 7 for d in value):
            raise ValueError("weekdays are 1 (Monday) to 7 (Sunday)")
        return value

    def inside(self, local: dt.datetime) -> bool:
        return local.isoweekday() in self.days and self.start <= local.time() < self.end


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    title: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    events: list[str] = Field(min_length=1)
    outcome: str | None = None
    where: dict[str, list[str]] = Field(default_factory=dict)
    key: Literal["network", "ip", "actor", "subject", "client"] = "actor"
    distinct: Literal["actor", "subject", "ip", "client"] | None = None
    threshold: int = Field(default=1, ge=1)
    max_per_value: int | None = Field(default=None, ge=1)
    window: int = Field(default=60, ge=1)
    quiet: int = Field(default=3600, ge=0)
    outside_hours: bool = False
    identity: Literal["inactive"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.max_per_value is not None and self.distinct is None:
            raise ValueError("max_per_value needs distinct")
        return self

    @property
    def counts(self) -> bool:
        """Needs hits kept in the database (a threshold above one event)."""
        return self.threshold > 1


class RuleSet(_Strict):
    recipients: Recipients = Field(default_factory=Recipients)
    webhook: Webhook = Field(default_factory=Webhook)
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    rule: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        ids = [r.id for r in self.rule]
        if len(set(ids)) != len(ids):
            raise ValueError("two rules have the same id")
        return self

    @property
    def active(self) -> list[Rule]:
        return [r for r in self.rule if r.enabled]

    def by_event(self) -> dict[str, list[Rule]]:
        out: dict[str, list[Rule]] = {}
        for rule in self.active:
            for event in rule.events:
                out.setdefault(event, []).append(rule)
        return out

    @property
    def longest_window(self) -> int:
        return max((r.window for r in self.active), default=0)


def parse(text: str, *, where: str = "the detection rules") -> RuleSet:
    try:
        return RuleSet.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = list(first["loc"])
        if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
            loc[1] = f"[{loc[1] + 1}]"
        field = ".".join(str(p) for p in loc).replace(".[", "[") or "file"
        raise ConfigError(f"{where}: {field}: {first['msg']}.") from None


@lru_cache(maxsize=8)
def _load(path: Path, mtime: float) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"The detection rules {path} cannot be read: {exc.strerror}.") from None
    return parse(text, where=str(path))


def load(path: Path) -> RuleSet:
    """The rules in ``path`` (re-read when the file changes)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise ConfigError(f"The detection rules file {path} does not exist.") from None
    return _load(path, mtime)
