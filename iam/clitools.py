"""What every package's ``cli.py`` shares: the invocation context, ``--json`` and its output,
and failing with one sentence.

The house rules for commands (checked for the whole command tree by tests/iam/test_cli.py):

- every command accepts ``--json`` (:func:`json_option`) and prints its result with :func:`emit`:
  JSON for scripts, a sentence or a table for people; ``--json`` is the only spelling;
- a problem is one sentence on stderr and exit code 1 (:func:`fail`, or raise an
  :class:`iam.errors.IamError`, which the ``iam`` group turns into the same);
- an unknown name, or a command that finds nothing to do, is such a problem (:func:`nothing`);
- secrets are read from standard input, never from arguments (:func:`read_secret`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from iam.i18n import N_

if TYPE_CHECKING:
    from iam.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    """Lazily built settings and services, shared by the commands of one invocation."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._services: Any = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from iam.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def services(self) -> Any:
        if self._services is None:
            from iam.services import Services

            self._services = Services(self.settings)
        return self._services


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def json_option(f: F) -> F:
    """``--json``: print the result as JSON (the parameter is ``as_json``)."""
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (for scripts).")(f)


def tr(message: str, **params: Any) -> str:
    """A sentence for the operator in the organisation's default language (the first of
    ``languages``) once this command has loaded the settings, else English; ``%(name)s``
    placeholders filled from ``params``. Text nobody translated stays as it is."""
    click_ctx = click.get_current_context(silent=True)
    obj = click_ctx.find_object(Ctx) if click_ctx is not None else None
    settings = obj._settings if obj is not None else None
    if settings is None:
        return message % params if params else message
    from iam import i18n

    return i18n.translator(settings).gettext(message, **params)


def emit(as_json: bool, data: Any, text: str | Iterable[str] | None = None) -> None:
    """Print DATA as JSON with ``--json`` (never translated), else TEXT (a sentence, or lines;
    None prints nothing), translated where a catalogue knows it (:func:`tr`)."""
    if as_json:
        echo_json(data)
    elif isinstance(text, str):
        click.echo(tr(text))
    elif text is not None:
        for line in text:
            click.echo(tr(line))


def fail(sentence: str, **params: Any) -> NoReturn:
    """Stop the command: ``Error: SENTENCE`` on stderr (translated, :func:`tr`), exit code 1."""
    raise click.ClickException(tr(sentence, **params))


def nothing(sentence: str, as_json: bool = False, data: Any = None, **params: Any) -> NoReturn:
    """Nothing matched or nothing was to be done: with ``--json`` DATA (e.g. ``[]``) is still
    printed on stdout for scripts; the sentence goes to stderr and the exit code is 1."""
    if as_json and data is not None:
        echo_json(data)
    fail(sentence, **params)


def _interactive() -> bool:
    return sys.stdin.isatty()


def read_secret(what: str = "password") -> str:
    """One line from standard input (asked for, hidden, when it is a terminal); refuse an empty one."""
    if _interactive():
        value = str(click.prompt(what.capitalize(), hide_input=True, default="", show_default=False))
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail(N_("Give the %(what)s on standard input."), what=what)
    return value
