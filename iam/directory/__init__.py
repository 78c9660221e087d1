"""Directories behind one protocol: Active Directory (``ad``) and the built-in one (``local``)."""

from iam.directory.base import Directory, DirectoryGroup, DirectoryUser, NewUser
from iam.directory.errors import (
    AccountDisabled,
    AccountExpired,
    AccountLocked,
    DirectoryError,
    DirectoryUnavailable,
    EntryExists,
    InvalidCredentials,
    LogonNotPermitted,
    MustChangePassword,
    NoSuchEntry,
    PasswordExpired,
    PasswordRejected,
)

__all__ = [
    "AccountDisabled",
    "AccountExpired",
    "AccountLocked",
    "Directory",
    "DirectoryError",
    "DirectoryGroup",
    "DirectoryUnavailable",
    "DirectoryUser",
    "EntryExists",
    "InvalidCredentials",
    "LogonNotPermitted",
    "MustChangePassword",
    "NewUser",
    "NoSuchEntry",
    "PasswordExpired",
    "PasswordRejected",
]
