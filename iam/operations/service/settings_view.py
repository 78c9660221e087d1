"""The settings in effect, for reading: every field with its docstring, each secret masked."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from iam.config import Settings

MASK = "••••••"
"""What the settings page shows instead of a secret's value."""

_SECRET_WORDS = ("password", "secret", "token", "key", "credential", "private")
_NOT_SECRET = {"key_rotation_grace", "api_resource", "cookie_name", "token_endpoint_auth_method"}


@dataclass(frozen=True)
class SettingRow:
    section: str
    key: str
    value: str
    secret: bool
    doc: str


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """A URL with any password replaced by the mask (``postgresql://iam:••••••@db/iam``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _shown(name: str, value: Any) -> tuple[str, bool]:
    if isinstance(value, SecretStr):
        return (MASK if value.get_secret_value() else ""), True
    if _looks_secret(name):
        return (MASK if value not in (None, "", [], {}) else ""), True
    if isinstance(value, str) and "://" in value:
        masked = mask_url(value)
        return masked, masked != value
    if isinstance(value, BaseModel):
        return ", ".join(f"{k}={_shown(k, v)[0]}" for k, v in value), False
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(str(k), v)[0]}" for k, v in value.items()), False
    if isinstance(value, list | tuple):
        return ", ".join(_shown(name, v)[0] for v in value), False
    if value is None:
        return "", False
    return str(value), False


def _walk(model: BaseModel, section: str) -> Iterator[SettingRow]:
    docs = field_docs(type(model))
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _walk(value, f"{section}.{name}" if section else name)
            continue
        shown, secret = _shown(name, value)
        yield SettingRow(
            section=section or "(top level)",
            key=name,
            value=shown,
            secret=secret,
            doc=(info.description or docs.get(name, "")).strip(),
        )


def effective_settings(settings: Settings) -> list[SettingRow]:
    """Every setting in effect, by section, each secret masked (a ``SecretStr``, a name that
    says password/secret/key/token, a password inside a URL)."""
    return list(_walk(settings, ""))


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of a settings class (and its bases)."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ in ("builtins",) or klass.__module__.startswith("pydantic"):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, following in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                out[stmt.target.id] = " ".join(following.value.value.split())
    return out
