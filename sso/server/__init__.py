"""authlib wiring: a fresh AuthorizationServer per application, with our grants and storage.

authlib validates the protocol (client authentication, redirect URIs, PKCE, scopes); our
service functions store codes and tokens hashed and write the audit rows.

- :mod:`sso.server.clients` — the registration adapter, the per-process registration cache,
  client authentication by signed assertion;
- :mod:`sso.server.grants` — the code, refresh and client-credentials grants, PKCE, the ID token;
- :mod:`sso.server.authorization` — :class:`IamAuthorizationServer`, which puts them together.
"""

from sso.server.authorization import IamAuthorizationServer
from sso.server.clients import ClientCache, OAuthClient, load_client
from sso.server.grants import OAuthUser

__all__ = ["ClientCache", "IamAuthorizationServer", "OAuthClient", "OAuthUser", "load_client"]
