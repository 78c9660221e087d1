"""Drive the provider through Flask's test client like a browser and a relying party would."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy import event

from iam.directory.base import DirectoryUser, NewUser
from iam.services import Services
from sso import clients as client_service

PASSWORD = "Corr3ct-Horse-Battery"


@contextmanager
def database_down(services: Services) -> Iterator[None]:
    """The database is unreachable: pooled connections are gone and every new connection is
    refused by the driver (as when PostgreSQL is stopped), until the block ends."""
    engine = services.engine
    dbapi: Any = engine.dialect.dbapi

    def refuse(*_: Any) -> Any:
        raise dbapi.OperationalError("connection refused (the test stopped the database)")

    event.listen(engine, "do_connect", refuse)
    engine.dispose()
    try:
        yield
    finally:
        event.remove(engine, "do_connect", refuse)


REDIRECT = "https://rp.example/cb"
API_RESOURCE = "http://localhost/api"
"""The provider's own API identifier in tests (issuer http://localhost): API tokens ask for it
with ``resource=`` (RFC 8707), else every bearer API refuses them."""


def make_user(services: Services, username: str = "alice", **kw: Any) -> DirectoryUser:
    d = services.directory
    user = d.create_user(
        NewUser(
            username=username,
            given_name=kw.get("given_name", "Alice"),
            family_name=kw.get("family_name", "Anđelković"),
            email=f"{username}@example.test",
            enabled=False,
        )
    )
    d.set_password(user.id, kw.get("password", PASSWORD), must_change=kw.get("must_change", False))
    d.enable(user.id)
    for g in kw.get("groups", []):
        if d.get_group(g) is None:
            d.create_group(g)
        d.add_member(g, user.id)
    return d.get_user(user.id) or user


def make_client(services: Services, **kw: Any) -> tuple[str, str | None]:
    spec = client_service.ClientSpec(
        name=kw.pop("name", "RP"),
        redirect_uris=kw.pop("redirect_uris", [REDIRECT]),
        **kw,
    )
    with services.transaction() as s:
        row, secret = client_service.create_client(s, services.cipher, spec, actor="test", allow_http=True)
        return row.client_id, secret


def service_token(services: Services, client: Any, scope: str, *, name: str = "RP") -> str:
    """An access token for our APIs (``API_RESOURCE``) with SCOPE, from the token endpoint by
    client credentials: a registered client of its own, as a script or a tool holds one."""
    cid, secret = make_client(
        services, grant_types=["client_credentials"], redirect_uris=[], scopes=[scope], name=name
    )
    assert secret is not None
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": API_RESOURCE},
        headers=basic(cid, secret),
    )
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["access_token"])


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert m, "no CSRF token in page"
    return m.group(1)


@dataclass
class Flow:
    client_id: str
    verifier: str
    state: str
    nonce: str
    redirect_uri: str = REDIRECT


def authorize_url(
    client_id: str,
    *,
    redirect_uri: str = REDIRECT,
    scope: str = "openid profile email groups",
    challenge: str | None = None,
    **extra: str,
) -> tuple[str, Flow]:
    verifier, ch = pkce()
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge or ch,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/authorize?" + urlencode(params), Flow(client_id, verifier, state, nonce, redirect_uri)


def refusal(response: Any) -> tuple[int, str]:
    """Status and page of a refused sign-in, without what differs by design: the CSRF token and
    the username echoed into its field. Two refusals that must not be told apart compare equal."""
    body = response.get_data(as_text=True)
    body = re.sub(r'(name="csrf_token" type="hidden" value=")[^"]+', r"\1", body)
    body = re.sub(r'(name="username"[^>]*value=")[^"]*', r"\1", body)
    return int(response.status_code), body


def login(client: Any, username: str, password: str) -> Any:
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )


def follow_to_code(client: Any, resp: Any, redirect_uri: str = REDIRECT) -> dict[str, str]:
    """Follow redirects inside the provider until the client's redirect URI; return its query."""
    for _ in range(10):
        assert resp.status_code in (302, 303), (resp.status_code, resp.get_data(as_text=True)[:500])
        loc = resp.headers["Location"]
        if loc.startswith(redirect_uri):
            return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}
        parts = urlsplit(loc)
        resp = client.get(parts.path + ("?" + parts.query if parts.query else ""))
    raise AssertionError("too many redirects")


def sign_in_and_get_code(
    client: Any, client_id: str, username: str = "alice", password: str = PASSWORD, **kw: Any
) -> tuple[dict[str, str], Flow]:
    url, flow = authorize_url(client_id, **kw)
    resp = client.get(url)
    if resp.headers.get("Location", "").endswith("/login"):
        resp = login(client, username, password)
    return follow_to_code(client, resp, flow.redirect_uri), flow


def exchange(client: Any, code: str, flow: Flow, secret: str | None, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
        **extra,
    }
    headers = basic(flow.client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = flow.client_id
    return client.post("/token", data=data, headers=headers)
