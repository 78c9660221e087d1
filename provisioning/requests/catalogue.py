"""The catalogue of requestable rights as data (``policies/requestable.toml``), validated once per
process at start (an invalid file stops the start naming the key). Each item is an AD group — an
application assignment is the client's "who may use it" group named here — with its title and
description per language, owner, approval chain, maximum duration, who may ask, the lesser items
an approver may give instead, and its separation-of-duties conflicts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from iam.errors import ConfigError, NotFound
from provisioning.reviews.definitions import NAME

if TYPE_CHECKING:
    from iam.services import Services

Step = Literal["manager", "owner", "security_officer"]
DEFAULT_CHAIN: tuple[Step, ...] = ("manager", "owner", "security_officer")


class Who(BaseModel):
    """Who may ask (any of the lists matching is enough; all empty: everyone)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    departments: list[str] = Field(default_factory=list)
    """HR departments (case-insensitive)."""
    titles: list[str] = Field(default_factory=list)
    """HR positions (job titles)."""
    groups: list[str] = Field(default_factory=list)
    """Members of these AD groups (nested membership counts)."""

    @property
    def everyone(self) -> bool:
        return not (self.departments or self.titles or self.groups)


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    kind: Literal["group", "application"] = "group"
    """``group``: an AD group; ``application``: the AD group that assigns an application."""
    group: str = Field(min_length=1, max_length=256)
    title: dict[str, str] = Field(min_length=1)
    """By language tag (``en``, ``sr-Latn``, ``pl`` …); the first is used when the page's is missing."""
    description: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    """Username of the resource owner (the ``owner`` step; default ``reviews.owners``)."""
    chain: list[Step] = Field(default_factory=lambda: list(DEFAULT_CHAIN), min_length=1, max_length=3)
    """Approval steps in order; the security officer gives the opinion (PABIANICE §3)."""
    max_days: int | None = Field(default=None, ge=1, le=3650)
    """Longest a grant may last (days); ends by itself. None: until taken away."""
    who: Who = Field(default_factory=Who)
    reduced: list[str] = Field(default_factory=list)
    """Lesser items an approver may grant instead (``grant reduced``)."""
    conflicts: list[str] = Field(default_factory=list)
    """Rights (group names) this one must not be held with, besides the rules of ``sod.toml``."""
    sod: Literal["block", "exception"] = "block"
    """A separation-of-duties conflict blocks the request, or allows it as a recorded
    exception (then the security officer's opinion is always part of the chain)."""

    @model_validator(mode="after")
    def _steps(self) -> Item:
        if len(set(self.chain)) != len(self.chain):
            raise ValueError("a step appears twice in chain")
        if self.name in self.reduced:
            raise ValueError("an item cannot be its own reduced grant")
        return self

    def text(self, field: dict[str, str], language: str) -> str:
        """The text in ``language`` (``sr-Latn`` also matches ``sr``), else the first given."""
        if not field:
            return ""
        lang = language.replace("_", "-")
        for tag in (lang, lang.split("-")[0]):
            for key, value in field.items():
                if key.casefold() == tag.casefold():
                    return value
        return next(iter(field.values()))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(file)"
    return f"key {key}: {err['msg']}"


def load(path: Path) -> dict[str, Item]:
    """Read and check the catalogue file (missing file: an empty catalogue)."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Invalid catalogue of requestable rights {path}: {exc}.") from None
    items: dict[str, Item] = {}
    raw: Any = data.get("item", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"Invalid catalogue of requestable rights {path}: key item: a table of items.")
    for name, body in raw.items():
        try:
            items[name] = Item.model_validate({"name": name, **body})
        except (ValidationError, TypeError) as exc:
            msg = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(
                f"Invalid catalogue of requestable rights {path}: item {name}: {msg}."
            ) from None
    for item in items.values():
        for lesser in item.reduced:
            if lesser not in items:
                raise ConfigError(
                    f"Invalid catalogue of requestable rights {path}: item {item.name}: "
                    f"key reduced: no item named {lesser!r}."
                )
    return items


def catalogue(services: Services) -> dict[str, Item]:
    """The validated catalogue (read once per process)."""
    cached = services.extensions.get("requests.catalogue")
    if cached is None:
        cached = load(services.settings.requests.catalogue_file)
        services.extensions["requests.catalogue"] = cached
    return dict(cached)


def get(services: Services, name: str) -> Item:
    found = catalogue(services).get(name)
    if found is None:
        raise NotFound(f"There is no requestable right named {name!r}.")
    return found


def validate(services: Services) -> list[dict[str, str]]:
    """Problems with the catalogue against the directory: groups that do not exist (also the
    groups that decide who may ask). Empty: everything is there."""
    problems: list[dict[str, str]] = []
    for item in catalogue(services).values():
        if services.directory.get_group(item.group) is None:
            problems.append({"item": item.name, "problem": f"AD group {item.group!r} does not exist"})
        for group in item.who.groups:
            if services.directory.get_group(group) is None:
                problems.append(
                    {"item": item.name, "problem": f"who.groups: AD group {group!r} does not exist"}
                )
        if item.owner and services.directory.find_user(username=item.owner) is None:
            problems.append({"item": item.name, "problem": f"owner {item.owner!r} is not a directory user"})
    return problems
