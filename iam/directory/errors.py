"""Exceptions raised by every :class:`~iam.directory.base.Directory` implementation.

The sign-in flow turns them into pages; they never carry the password or a bind DN's secret.
"""

from __future__ import annotations

from iam.errors import IamError


class DirectoryError(IamError):
    """Base class of directory errors."""


class DirectoryUnavailable(DirectoryError):
    """The directory cannot be reached or refused the service account; retry later."""


class InvalidCredentials(DirectoryError):
    """Unknown user or wrong password (AD 52e / 525). Never says which."""


class LogonNotPermitted(DirectoryError):
    """Sign-in is not allowed at this time or from this workstation (AD 530 / 531)."""


class PasswordExpired(DirectoryError):
    """The password is correct but expired (AD 532); the user must choose a new one."""


class AccountDisabled(DirectoryError):
    """The account is disabled (AD 533)."""


class AccountExpired(DirectoryError):
    """The account has passed its expiry date (AD 701)."""


class MustChangePassword(DirectoryError):
    """The password is correct but must be changed at next logon (AD 773)."""


class AccountLocked(DirectoryError):
    """The account is locked out (AD 775)."""


class PasswordRejected(DirectoryError):
    """The directory refused a new password; ``str(exc)`` explains why in plain words."""


class EntryExists(DirectoryError):
    """An entry with this name or identifier already exists."""


class NoSuchEntry(DirectoryError):
    """The user or group does not exist in the directory."""
