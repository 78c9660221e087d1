"""Policies as data: the username rule (``naming.toml``) and birthright access
(``birthright.toml``), loaded and validated once per process."""

from __future__ import annotations

import fnmatch
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anyascii import anyascii

from iam.errors import ConfigError

# The official Serbian Cyrillic → Latin correspondence (Vuk Karadžić / Gaj alphabets, one
# letter for one letter, three digraphs). anyascii alone would read Cyrillic as Russian
# (Ш → "Sh", Ж → "Zh", Ђ → "Dj"), so "Милош" and "Miloš" would give different usernames.
_SERBIAN_CYRILLIC = dict(
    zip(
        "АБВГДЂЕЖЗИЈКЛЉМНЊОПРСТЋУФХЦЧЏШ",
        "A B V G D Đ E Ž Z I J K L Lj M N Nj O P R S T Ć U F H C Č Dž Š".split(),
        strict=True,
    )
)
_SERBIAN_CYRILLIC |= {c.lower(): v.lower() for c, v in _SERBIAN_CYRILLIC.items()}
_SERBIAN_LETTERS = re.compile("[" + "".join(_SERBIAN_CYRILLIC) + "]")


def serbian_latin(text: str) -> str:
    """Serbian Cyrillic letters as the official Serbian Latin alphabet writes them (Милош
    Јовановић → Miloš Jovanović; Љиљана → Ljiljana, ЉИЉАНА → LJILJANA); anything else as is."""

    def one(match: re.Match[str]) -> str:
        letter = match.group()
        value = _SERBIAN_CYRILLIC[letter]
        if len(value) == 2 and letter.isupper():
            after = text[match.end() : match.end() + 1]
            if after.isupper():  # inside an all-capitals word: LJ, NJ, DŽ
                return value.upper()
        return value

    return _SERBIAN_LETTERS.sub(one, text)


def latin(text: str) -> str:
    """Transliterate to Latin letters: Serbian Cyrillic by the official Serbian mapping first
    (Милош → Miloš), then to ASCII: č→c, ł→l, ș→s, đ→d, Vietnamese tone marks dropped."""
    return anyascii(serbian_latin(text))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", latin(text))


@dataclass(frozen=True)
class NamingRule:
    name: str
    format: str
    collision: str
    lowercase: bool = True
    max_length: int = 20

    def _fields(self, *, given: str, family: str, employee_number: str, n: int | None) -> dict[str, Any]:
        g, f = _slug(given), _slug(family)
        number: Any = employee_number
        digits = re.sub(r"\D", "", employee_number)
        if digits and "{employee_number:" in (self.format + self.collision):
            number = int(digits)
        return {"given": g, "family": f, "g": g[:1], "employee_number": number, "n": n}

    def _render(self, template: str, fields: dict[str, Any]) -> str:
        """Render, shortening the family then the given name until it fits ``max_length``."""
        while True:
            value = template.format(**fields)
            if self.lowercase:
                value = value.lower()
            value = value.strip(".-_")
            if len(value) <= self.max_length:
                return value
            for key in ("family", "given"):
                if len(fields[key]) > 1 and "{" + key in template:
                    fields[key] = fields[key][:-1]
                    break
            else:
                return value[: self.max_length]

    def candidates(self, *, given: str, family: str, employee_number: str, limit: int = 99) -> list[str]:
        """The username and, in order, what the collision rule gives when it is taken."""
        out: list[str] = []
        templates: list[tuple[str, int | None]] = [(self.format, None)]
        if self.collision:
            templates += [(self.collision, n) for n in range(2, limit + 2)]
        for template, n in templates:
            fields = self._fields(given=given, family=family, employee_number=employee_number, n=n)
            value = self._render(template, fields)
            if value and value not in out:
                out.append(value)
        return out


@dataclass(frozen=True)
class BirthrightRule:
    groups: tuple[str, ...]
    department: tuple[str, ...] = ()
    title: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()

    def matches(self, *, department: str, title: str, kind: str) -> bool:
        def ok(patterns: tuple[str, ...], value: str) -> bool:
            return not patterns or any(fnmatch.fnmatchcase(value.casefold(), p.casefold()) for p in patterns)

        return ok(self.department, department) and ok(self.title, title) and ok(self.kind, kind)


@dataclass(frozen=True)
class Birthright:
    rules: tuple[BirthrightRule, ...]
    departments: dict[str, str] = field(default_factory=dict)

    def groups_for(self, *, department: str, title: str, kind: str) -> list[str]:
        found: list[str] = []
        for rule in self.rules:
            if rule.matches(department=department, title=title, kind=kind):
                found += [g for g in rule.groups if g not in found]
        return found

    def ou_for(self, department: str, base_ou: str) -> str:
        for name, rdn in self.departments.items():
            if name.casefold() == department.casefold():
                return f"{rdn},{base_ou}" if base_ou else rdn
        return base_ou


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"The policy file {path} cannot be read: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The policy file {path} is not valid TOML: {exc}.") from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a string or a list of strings.")


def load_naming(policy_dir: Path, rule: str = "") -> NamingRule:
    path = policy_dir / "naming.toml"
    data = _read(path)
    name = rule or str(data.get("rule", ""))
    rules = data.get("rules", {})
    spec = rules.get(name) if isinstance(rules, dict) else None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: there is no naming rule {name!r}.")
    unknown = set(spec) - {"format", "collision", "lowercase", "max_length"}
    if unknown:
        raise ConfigError(f"{path}: rule {name!r} has unknown keys {sorted(unknown)}.")
    result = NamingRule(
        name=name,
        format=str(spec.get("format", "")),
        collision=str(spec.get("collision", "")),
        lowercase=bool(spec.get("lowercase", True)),
        max_length=int(spec.get("max_length", 20)),
    )
    allowed = {"given", "family", "g", "employee_number", "n"}
    for template in (result.format, result.collision):
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        if used - allowed:
            raise ConfigError(f"{path}: rule {name!r} uses unknown fields {sorted(used - allowed)}.")
    if not result.format:
        raise ConfigError(f"{path}: rule {name!r} has no format.")
    if result.collision and "{n" not in result.collision:
        raise ConfigError(f"{path}: the collision format of {name!r} must use {{n}}.")
    return result


def load_birthright(policy_dir: Path) -> Birthright:
    path = policy_dir / "birthright.toml"
    data = _read(path)
    unknown = set(data) - {"rule", "departments"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}.")
    rules = []
    for i, raw in enumerate(data.get("rule", []), 1):
        where = f"{path}: rule {i}"
        if not isinstance(raw, dict) or set(raw) - {"groups", "department", "title", "kind"}:
            raise ConfigError(f"{where} has unknown keys.")
        groups = _strings(raw.get("groups"), f"{where}: groups")
        if not groups:
            raise ConfigError(f"{where} gives no groups.")
        rules.append(
            BirthrightRule(
                groups=groups,
                department=_strings(raw.get("department"), f"{where}: department"),
                title=_strings(raw.get("title"), f"{where}: title"),
                kind=_strings(raw.get("kind"), f"{where}: kind"),
            )
        )
    departments = data.get("departments", {})
    if not isinstance(departments, dict) or not all(isinstance(v, str) for v in departments.values()):
        raise ConfigError(f"{path}: [departments] maps names to OU strings.")
    return Birthright(tuple(rules), dict(departments))


def cached(services: Any, key: str, make: Callable[[], Any]) -> Any:
    ext: dict[str, Any] = services.extensions
    if key not in ext:
        ext[key] = make()
    return ext[key]


def naming(services: Any) -> NamingRule:
    p = services.settings.provisioning
    return cached(services, "provisioning.naming", lambda: load_naming(p.policy_dir, p.naming_rule))  # type: ignore[no-any-return]


def birthright(services: Any) -> Birthright:
    p = services.settings.provisioning
    return cached(services, "provisioning.birthright", lambda: load_birthright(p.policy_dir))  # type: ignore[no-any-return]
