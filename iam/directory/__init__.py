"""Directories behind one protocol: Active Directory (``ad``) and the built-in one (``local``)."""

from iam.directory.base import Directory, DirectoryGroup, DirectoryUser, GroupNode, MembershipGraph, NewUser
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
    "GroupNode",
    "InvalidCredentials",
    "LogonNotPermitted",
    "MembershipGraph",
    "MustChangePassword",
    "NewUser",
    "NoSuchEntry",
    "PasswordExpired",
    "PasswordRejected",
]
