"""Domain exceptions of the core. Messages are safe to show: they never carry secrets."""

from __future__ import annotations


class IamError(Exception):
    """Base of every domain error; ``str(exc)`` is one clear sentence."""


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
