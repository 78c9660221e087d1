"""Active Directory over LDAPS (or LDAP + StartTLS) with ldap3.

Connections
    Searches and administrative writes use the service account (``directory.bind_dn``). Up to
    ``pool_size`` bound service connections are kept open and shared between threads (one
    thread at a time per connection); a burst beyond that opens extra connections that are
    closed after use, so callers never wait for each other (and a caller that iterates
    :meth:`ActiveDirectory.search_users` while calling other methods cannot dead-lock). A
    pooled connection the server has dropped (idle timeout, restart) is replaced
    transparently: an operation that fails on a *reused* connection with a socket error is
    retried once on a fresh one. Timeouts never retry. After an outage the very next
    operation connects again (ldap3's own "address unavailable" memory is forgotten once every
    address of the directory has failed).

    Verifying a password at sign-in is a simple bind as the user on a second set of pooled
    connections kept for binds only (never searched or written on); a user's own password change
    opens a short-lived connection bound as that user.
    ``receive_timeout`` is applied in whole seconds (rounded up; ldap3 sets SO_RCVTIMEO so).

Searches
    Every subtree search is paged (Simple Paged Results, 500 per page; ``search_users`` uses the
    caller's ``page_size`` and yields page by page, keeping one connection checked out because
    AD ties the paging cookie to the connection). ``user_groups`` / ``group_members`` use
    ``member`` / ``memberOf`` equality filters, or LDAP_MATCHING_RULE_IN_CHAIN when ``nested``,
    so ``member`` is never read from a group (no ranged ``member;range=`` retrieval needed).
    The primary group (``Domain Users``) is not a ``member``/``memberOf`` link and so is never
    listed.

Identifiers
    ``DirectoryUser.id`` is the ``objectGUID`` as a lowercase UUID string (the binary
    attribute is little-endian in its first three fields, i.e. ``uuid.UUID(bytes_le=...)``, which
    is the same text Windows tools show).

Creating users
    AD (Windows) refuses to enable an account that has no password, and :class:`NewUser` carries
    none. :meth:`ActiveDirectory.create_user` therefore always adds the entry disabled
    (``userAccountControl`` 514); when ``new.enabled`` is true it then sets a long random password
    that nobody ever learns, with "must change at next logon", and only then enables the account.
    Such an account is enabled but unusable until :meth:`~ActiveDirectory.set_password` gives it
    a real password. Callers that want a usable account call ``set_password`` (and ``enable``).

Changing passwords
    :meth:`ActiveDirectory.change_password` is the user's own change (``unicodePwd`` delete
    old value + add new value in one modify): AD checks the old password, the history and the
    minimum age. It binds as the user first; when that bind says the password is right but must
    be changed (773) or has expired (532) the user cannot bind, so the same delete/add modify is
    sent over the service account's connection: AD treats it as a user change all the same
    (it verifies the old password and applies history and minimum age; every principal has the
    "Change Password" right).

    Note: after a change *or reset*, the previous password still passes a simple bind for the
    DC's "old password allowed period" (Samba ``old password allowed period``, default 60
    minutes; Windows ``OldPasswordAllowedPeriod``), so :meth:`~ActiveDirectory.authenticate`
    accepts it during that time. Set the period to 0 on the DCs if that is not acceptable.
"""

from iam.directory.ad.writes import ADWrites

__all__ = ["ActiveDirectory"]


class ActiveDirectory(ADWrites):
    """The :class:`~iam.directory.base.Directory` protocol on Active Directory (or Samba AD).

    One class built in layers, each a module of this package: connections (pool, searches,
    entries) → reads (and sign-in binds) → passwords (and policies) → writes."""
