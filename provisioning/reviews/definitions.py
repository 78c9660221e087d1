"""Campaign definitions as data: ``policies/reviews/*.toml``, validated once per process at start
(an invalid file stops the start naming the file and the key), like the PIM roles."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iam.errors import ConfigError, NotFound
from provisioning.reviews.models import Outcome

if TYPE_CHECKING:
    from iam.services import Services

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
Kind = Literal["group", "pim_eligibility", "pim_permanent", "shared_account"]
KINDS: tuple[Kind, ...] = ("group", "pim_eligibility", "pim_permanent", "shared_account")
EVENTS = ("mover", "rehire", "break_glass", "out_of_band")


class Scope(BaseModel):
    """Whose access is reviewed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["everyone", "department", "ou", "privileged", "groups"] = "everyone"
    """``everyone`` under the directory base; people of some ``departments`` (HR record); accounts
    under an ``ou``; only ``privileged`` rights (PIM, protected groups); members of ``groups``."""
    departments: list[str] = Field(default_factory=list)
    ou: str = ""
    groups: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> Scope:
        need = {"department": self.departments, "ou": self.ou, "groups": self.groups}
        if self.kind in need and not need[self.kind]:
            field = {"department": "departments", "ou": "ou", "groups": "groups"}[self.kind]
            raise ValueError(f"scope kind {self.kind!r} needs {field}")
        return self


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reviewer: Literal["manager", "owner", "security_officer", "self", "named"]
    """``manager`` from the HR record; ``owner`` of the resource; a ``security_officer``; the
    person ``self`` (a first stage, confirmed by someone else after); ``named`` users."""
    users: list[str] = Field(default_factory=list)
    """For ``named``: who reviews (the first who is not the person themself)."""

    @model_validator(mode="after")
    def _named(self) -> Stage:
        if self.reviewer == "named" and not self.users:
            raise ValueError("a 'named' stage needs users")
        return self


class Definition(BaseModel):
    """One kind of campaign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    title: str
    description: str = ""
    scope: Scope = Field(default_factory=Scope)
    entitlements: list[Kind] = Field(default_factory=lambda: list(KINDS))
    nested: bool = True
    """Also list memberships reached through nested groups (with their path)."""
    birthright: Literal["position", "review"] = "position"
    """``position``: memberships the position gives (birthright rules) are certified by the
    position and not listed; ``review``: listed like any other right."""
    stages: list[Stage] = Field(
        default_factory=lambda: [Stage(reviewer="manager")], min_length=1, max_length=3
    )
    fallback: list[str] = Field(default_factory=list)
    """Who decides when a stage's reviewer is missing, has left or is the person themself
    (default: ``reviews.fallback_reviewers``, then the security officers)."""
    recurrence_months: int = Field(default=12, ge=0, le=60)
    """Start again this many months after the last start (0: only by hand or by an event)."""
    events: list[Literal["mover", "rehire", "break_glass", "out_of_band"]] = Field(default_factory=list)
    """Start a campaign for one person when one of these happens (R-JML-4, R-PIM-8)."""
    duration_days: int = Field(default=14, ge=1, le=365)
    """Days each stage is open."""
    reminder_days: list[int] = Field(default_factory=lambda: [7, 2])
    """Remind reviewers with open items this many days before the stage's deadline."""
    escalate_after_days: int | None = Field(default=None, ge=1)
    """Open items go to the fallback reviewer this many days after the stage started."""
    default_outcome: Outcome = Outcome.KEEP
    """What an item nobody decided by the deadline becomes (R-REV-3)."""
    acknowledge_revoke: bool = False
    """Must be true when ``default_outcome = "revoke"``: unanswered items lose access."""
    auto_apply: bool = True
    """Carry revocations into the directory at once when a stage closes (else on ``apply``)."""

    @model_validator(mode="after")
    def _consistent(self) -> Definition:
        if self.default_outcome is Outcome.REVOKE and not self.acknowledge_revoke:
            raise ValueError(
                'default_outcome "revoke" takes access from everyone nobody answered for: '
                "set acknowledge_revoke = true to confirm"
            )
        if self.escalate_after_days is not None and self.escalate_after_days >= self.duration_days:
            raise ValueError("escalate_after_days must be shorter than duration_days")
        if self.stages[-1].reviewer == "self":
            raise ValueError("the last stage cannot be 'self': someone else confirms")
        return self

    @property
    def revoke_warning(self) -> bool:
        return self.default_outcome is Outcome.REVOKE


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(file)"
    return f"key {key}: {err['msg']}"


def parse(data: dict[str, Any], *, where: str) -> Definition:
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"Invalid review definition {where}: {_first_error(exc)}.") from None


def load_dir(directory: Path) -> dict[str, Definition]:
    found: dict[str, Definition] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Invalid review definition file {path}: {exc}.") from None
        data.setdefault("name", path.stem)
        definition = parse(data, where=f"file {path}")
        if definition.name in found:
            raise ConfigError(f"Invalid review definition file {path}: key name: {definition.name!r} twice.")
        found[definition.name] = definition
    return found


def definitions(services: Services) -> dict[str, Definition]:
    """The validated definitions (read once per process)."""
    cached = services.extensions.get("reviews.definitions")
    if cached is None:
        cached = load_dir(services.settings.reviews.definitions_dir)
        services.extensions["reviews.definitions"] = cached
    return dict(cached)


def get(services: Services, name: str) -> Definition:
    found = definitions(services).get(name)
    if found is None:
        raise NotFound(f"There is no review definition named {name!r}.")
    return found
