"""Privileged roles as data: ``policies/pim/*.toml`` plus roles stored through the admin API.

Precedence: a role stored in the database (``pim_roles``, written by ``PUT /api/v1/pim/roles/<name>``
or ``iam pim roles put``) replaces the file role of the same name entirely; a database role with a
new name adds a role; ``enabled = false`` in a database role switches a file role off. Files are
read and validated once per process, at start: an invalid file stops the start with the file and
the key named.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam.errors import ConfigError, ValidationFailed
from pim.models import RoleOverride

if TYPE_CHECKING:
    from iam.config import PimSettings
    from iam.services import Services

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Role(BaseModel):
    """One privileged role. Durations are minutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    title: str = ""
    description: str = ""
    groups: list[str] = Field(min_length=1)
    """Directory groups the role grants (on the admin account, for the access window only)."""
    max_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    default_minutes: int = Field(default=60, ge=1)
    approval: bool = True
    """Whether someone must approve (R-PIM-3). Ignored for break-glass roles."""
    approvers: list[str] = Field(default_factory=list)
    """Usernames who may approve."""
    approver_group: str = ""
    """Members of this directory group may approve too."""
    approvals_required: int = Field(default=1, ge=1, le=10)
    justification_required: bool = True
    ticket_required: bool = False
    ticket_pattern: str = r"^[A-Za-z0-9][A-Za-z0-9_./#-]{0,63}$"
    min_level: str = "mfa"
    """Sign-in level needed to request (raised to ``pim.minimum_level`` if lower)."""
    eligible_users: list[str] = Field(default_factory=list)
    """Who may be made eligible (usernames); empty with no ``eligible_group`` = anyone a
    security officer names."""
    eligible_group: str = ""
    notify: list[str] = Field(default_factory=list)
    """Mail addresses told of every transition (besides requester and approvers)."""
    pending_minutes: int | None = Field(default=None, ge=1)
    """Minutes a request waits for approval (default ``pim.pending_lifetime``)."""
    break_glass: bool = False
    """Emergency role (R-PIM-8): no approval, justification required, the strongest sign-in
    level, fixed duration ``default_minutes``, security officers alerted at once, review due."""
    permanent_members: list[str] = Field(default_factory=list)
    """Accounts (sAMAccountName) explicitly allowed to stay in the groups (never reported)."""
    enabled: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Role:
        if self.default_minutes > self.max_minutes:
            raise ValueError("default_minutes is larger than max_minutes")
        if self.approval and not self.break_glass and not (self.approvers or self.approver_group):
            raise ValueError("approval is required but neither approvers nor approver_group is set")
        return self

    @field_validator("ticket_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    def needs_approval(self) -> bool:
        return self.approval and not self.break_glass


def check_levels(role: Role, settings: PimSettings, where: str) -> None:
    if role.min_level not in settings.levels:
        raise ConfigError(f"{where}: key min_level: {role.min_level!r} is not one of pim.levels.")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(file)"
    return f"key {key}: {err['msg']}"


def parse(data: dict[str, Any], *, where: str, settings: PimSettings) -> Role:
    try:
        role = Role.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"Invalid PIM role {where}: {_first_error(exc)}.") from None
    check_levels(role, settings, f"Invalid PIM role {where}")
    return role


def load_dir(directory: Path, settings: PimSettings) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    if not directory.is_dir():
        return roles
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Invalid PIM role file {path}: {exc}.") from None
        data.setdefault("name", path.stem)
        role = parse(data, where=f"file {path}", settings=settings)
        if role.name in roles:
            raise ConfigError(f"Invalid PIM role file {path}: key name: {role.name!r} is defined twice.")
        roles[role.name] = role
    return roles


def file_roles(services: Services) -> dict[str, Role]:
    """The validated role files (read once per process)."""
    cached = services.extensions.get("pim.file_roles")
    if cached is None:
        cached = load_dir(services.settings.pim.roles_dir, services.settings.pim)
        services.extensions["pim.file_roles"] = cached
    return dict(cached)


def all_roles(session: Session, services: Services, *, include_disabled: bool = False) -> dict[str, Role]:
    """Effective roles: files, overlaid by the database (see module docstring)."""
    roles = dict(file_roles(services))
    for row in session.scalars(select(RoleOverride)):
        try:
            roles[row.name] = Role.model_validate({**row.definition, "name": row.name})
        except ValidationError:  # stored by an older version: keep the file role
            continue
    if not include_disabled:
        roles = {k: v for k, v in roles.items() if v.enabled}
    return roles


def get_role(session: Session, services: Services, name: str) -> Role | None:
    return all_roles(session, services).get(name)


def validate_definition(name: str, data: dict[str, Any], settings: PimSettings) -> Role:
    """A role sent to the admin API: refused with a clear error, nothing stored."""
    if not NAME.match(name):
        raise ValidationFailed("A role name is 1-64 lower-case letters, digits, '.', '_' or '-'.")
    try:
        role = Role.model_validate({**data, "name": name})
    except ValidationError as exc:
        raise ValidationFailed(f"Invalid role: {_first_error(exc)}.") from None
    if role.min_level not in settings.levels:
        raise ValidationFailed(f"Invalid role: key min_level: {role.min_level!r} is not a known level.")
    return role


def field_errors(name: str, data: dict[str, Any], settings: PimSettings) -> dict[str, str]:
    """What :func:`validate_definition` refuses, per key (``name``, ``groups``, …; ``""`` for
    a rule across keys), so an editor can show each message next to its field."""
    errors: dict[str, str] = {}
    if not NAME.match(name):
        errors["name"] = "A role name is 1-64 lower-case letters, digits, '.', '_' or '-'."
    try:
        role = Role.model_validate({**data, "name": name})
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            message = str(err["msg"]).removeprefix("Value error, ")
            errors.setdefault(key, message)
        return errors
    if role.min_level not in settings.levels:
        errors["min_level"] = f"{role.min_level!r} is not a known level ({', '.join(settings.levels)})."
    return errors


def source(session: Session, services: Services, name: str) -> str:
    """``database``, ``file`` or ``none``: where the effective definition comes from."""
    if session.get(RoleOverride, name) is not None:
        return "database"
    return "file" if name in file_roles(services) else "none"
