"""private_key_jwt with keys the client publishes at a ``jwks_uri`` (served here by a real
local HTTP server): accepted with its key, refused with a stranger's, a rotated key is fetched
again; the registration refuses a jwks_uri without private_key_jwt or together with keys."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc.jwk import ECKey

from iam.errors import ValidationFailed
from sso import clients as client_service
from sso.clients import keys as client_keys
from tests.sso.test_clients_and_tokens import _assert_login, _assertion, _refused, cc_client


class KeyServer:
    def __init__(self) -> None:
        self.keys: dict[str, Any] = {"keys": []}
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.keys).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def publish(self, *keys: ECKey) -> None:
        self.keys = {"keys": [k.as_dict(private=False) for k in keys]}


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    ks = KeyServer()
    client_keys._remote.clear()
    yield ks
    ks.server.shutdown()
    ks.server.server_close()
    client_keys._remote.clear()


def _key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


def test_private_key_jwt_with_jwks_uri(services: Any, client: Any, key_server: KeyServer) -> None:
    first = _key("k1")
    key_server.publish(first)
    cid, secret = cc_client(services, token_endpoint_auth_method="private_key_jwt", jwks_uri=key_server.url)
    assert secret is None
    ok = _assert_login(client, _assertion(cid, first, "ES256"))
    assert ok.status_code == 200, ok.get_json()
    assert _refused(_assert_login(client, _assertion(cid, _key("k1"), "ES256")))  # a stranger's key
    # the client rotates: a kid we do not know makes us fetch the set again (within the cache's
    # lifetime, but not more often than JWKS_URI_REFETCH)
    fetched = time.monotonic() - client_keys.JWKS_URI_REFETCH - 1
    client_keys._remote[key_server.url] = (fetched, client_keys._remote[key_server.url][1])
    hits = key_server.hits
    second = _key("k2")
    key_server.publish(second)
    assert _assert_login(client, _assertion(cid, second, "ES256")).status_code == 200
    assert key_server.hits == hits + 1


def test_jwks_uri_registration_rules(services: Any) -> None:
    with pytest.raises(ValidationFailed, match="only used with private_key_jwt"):
        cc_client(services, jwks_uri="https://keys.example/jwks.json")
    jwks = {"keys": [_key("x").as_dict(private=False)]}
    with pytest.raises(ValidationFailed, match="not both"):
        cc_client(
            services, token_endpoint_auth_method="private_key_jwt", jwks=jwks, jwks_uri="https://k.example/j"
        )
    with pytest.raises(ValidationFailed, match="JWKS URI"):
        client_service.validate_spec(
            client_service.ClientSpec(
                name="x",
                grant_types=["client_credentials"],
                token_endpoint_auth_method="private_key_jwt",
                jwks_uri="http://keys.example/jwks.json",
            ),
            allow_http=False,
        )
