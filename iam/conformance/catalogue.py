"""The rulebooks as data: ``policies/conformance/<id>.toml``, one entry per article.

An article the software serves names our rule IDs (REQUIREMENTS.md) and the checks that give
live evidence (:mod:`iam.conformance.evidence`); every other article says why it is outside
the system (``physical``, ``organisational``, …), so a report lists the whole rulebook.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from iam.config import PROVISIONING_POLICY_DIR

CATALOGUE_DIR = PROVISIONING_POLICY_DIR / "conformance"


def base_language(tag: str) -> str:
    """The language of a tag, as ``plain`` and the report's words key it: ``sr-Cyrl`` → ``sr``."""
    return tag.replace("_", "-").split("-")[0].lower()


class Check(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    check: str
    """The evidence's name (``password.profile``); the other keys are its parameters."""

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Article(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str
    plain: dict[str, str] = Field(default_factory=dict)
    """The rule in plain words, per language (``en`` always)."""
    text: str = ""
    """The article's opening in the rulebook's own language (when ``plain`` has none)."""
    rules: list[str] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    outside: str | None = None
    """Why the software cannot serve it (physical, organisational, endpoint, contractual, scope…)."""

    @model_validator(mode="after")
    def _served_or_outside(self) -> Article:
        if bool(self.checks) == bool(self.outside):
            raise ValueError(
                f"{self.ref}: give either checks (served) or outside (why not), not both or neither"
            )
        return self

    def words(self, language: str) -> str:
        """The rule in ``language`` (a tag: ``pl``, ``sr-Latn``), else in English, else the text."""
        return self.plain.get(base_language(language)) or self.plain.get("en") or self.text


class Rulebook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    title_en: str = ""
    language: str = "en"
    articles: list[Article]


def load(rulebook: str, folder: Path | None = None) -> Rulebook:
    folder = folder or CATALOGUE_DIR
    path = folder / f"{rulebook}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.toml")))
        raise ValueError(f"There is no rulebook {rulebook!r} (known: {known}).")
    with path.open("rb") as fh:
        return Rulebook.model_validate(tomllib.load(fh))


def known(folder: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (folder or CATALOGUE_DIR).glob("*.toml"))
