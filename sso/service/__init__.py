"""The provider's domain operations: SSO sessions, codes, refresh tokens, logout.

Functions take a :class:`~sqlalchemy.orm.Session`, flush but never commit, and write their own
audit rows. Nothing here imports Flask: views pass actor, address and user agent in.

One module each: :mod:`~sso.service.context` (how a person signed in), :mod:`~sso.service.sessions`,
:mod:`~sso.service.codes`, :mod:`~sso.service.tokens`, :mod:`~sso.service.housekeeping`. Callers
use the names below through ``sso.service`` (tests replace some of them there to stage races).
"""

from sso.service.codes import (
    claim_code,
    find_code,
    save_code,
)
from sso.service.context import (
    CODE_PREFIX,
    REFRESH_PREFIX,
    SESSION_PREFIX,
    AuthContext,
)
from sso.service.housekeeping import (
    mint_refresh_tokens_for_benchmark,
    purge_expired,
)
from sso.service.sessions import (
    create_sso_session,
    end_all_sessions,
    end_sso_session,
    find_sso_session,
    link_client,
    load_sso_session,
    peek_sso_session,
    queue_backchannel_logout,
    sweep_inactive_accounts,
    user_sessions,
)
from sso.service.tokens import (
    SUPERSEDED,
    IssuedRefresh,
    access_token_revoked,
    claim_refresh_token,
    find_refresh_token,
    find_refresh_token_for,
    issue_refresh_token,
    new_family_id,
    new_refresh_value,
    remember_assertion,
    revoke_access_token,
    revoke_family,
    revoke_refresh_tokens,
)

__all__ = [
    "AuthContext",
    "CODE_PREFIX",
    "IssuedRefresh",
    "REFRESH_PREFIX",
    "SESSION_PREFIX",
    "SUPERSEDED",
    "access_token_revoked",
    "claim_code",
    "claim_refresh_token",
    "create_sso_session",
    "end_all_sessions",
    "end_sso_session",
    "find_code",
    "find_refresh_token",
    "find_refresh_token_for",
    "find_sso_session",
    "issue_refresh_token",
    "link_client",
    "load_sso_session",
    "mint_refresh_tokens_for_benchmark",
    "new_family_id",
    "new_refresh_value",
    "peek_sso_session",
    "purge_expired",
    "queue_backchannel_logout",
    "remember_assertion",
    "revoke_access_token",
    "revoke_family",
    "revoke_refresh_tokens",
    "save_code",
    "sweep_inactive_accounts",
    "user_sessions",
]
