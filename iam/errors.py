"""Domain exceptions of the core. Messages are safe to show: they never carry secrets.

A message is a translatable text (marked with :func:`iam.i18n.N_` so the extraction finds it)
with named placeholders filled from keyword arguments::

    raise Conflict(N_("The request is already %(state)s."), state=req.state)

``str(exc)`` is the English sentence (logs, JSON APIs, ``--json``); a page shows
:meth:`IamError.localized`, the sentence in the reader's language."""

from __future__ import annotations

from typing import Any


class IamError(Exception):
    """Base of every domain error; ``str(exc)`` is one clear sentence."""

    def __init__(self, *args: Any, **params: Any) -> None:
        super().__init__(*args)
        self.params = params

    def __str__(self) -> str:
        text = super().__str__()
        if self.params and self.args and isinstance(self.args[0], str):
            try:
                return self.args[0] % self.params
            except (KeyError, ValueError, TypeError):
                return text
        return text

    def localized(self) -> str:
        """The message in the language of the page (or the default outside a request); a
        message nobody translated stays as it is."""
        if len(self.args) != 1 or not isinstance(self.args[0], str):
            return str(self)
        from iam.i18n import translate

        return translate(self.args[0], **self.params)


class ConfigError(IamError):
    """The configuration is invalid or incomplete."""


class NotFound(IamError):
    """The object does not exist."""


class Conflict(IamError):
    """The object already exists or the change conflicts with the current state."""


class ValidationFailed(IamError):
    """Input was refused; nothing was changed."""


class Forbidden(IamError):
    """The actor may not do this."""


class PrivilegedAccount(Forbidden):
    """A help-desk operation on a privileged account (PIM admin or shared account, security
    officer, member of a protected group): refused; only PIM changes those."""
