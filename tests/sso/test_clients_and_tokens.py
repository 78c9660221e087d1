"""Machine-to-machine: client authentication methods, audiences, networks, introspection,
revocation, hostile tokens (R-SSO-3, R-SSO-4, R-SSO-5)."""

from __future__ import annotations

import secrets
import time

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from iam.models.audit import AuditEvent
from sso import clients as client_service
from tests.sso.helpers import basic, database_down, exchange, make_client, make_user, sign_in_and_get_code

ISSUER = "http://localhost"


def cc_client(services, **kw):
    kw.setdefault("grant_types", ["client_credentials"])
    kw.setdefault("redirect_uris", [])
    kw.setdefault("scopes", ["api.read", "api.write"])
    kw.setdefault("audiences", ["https://api.example"])
    return make_client(services, **kw)


def cc(client, cid, secret, **data):
    return client.post(
        "/token", data={"grant_type": "client_credentials", **data}, headers=basic(cid, secret)
    )


def test_client_credentials_jwt_access_token_audited(services, client):
    cid, secret = cc_client(services, agency_code="AG-7")
    resp = cc(client, cid, secret, scope="api.read")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "refresh_token" not in body and "id_token" not in body
    keys = KeySet.import_key_set(client.get("/jwks").get_json())
    tok = jwt.decode(body["access_token"], keys, algorithms=["ES256"])
    assert tok.header["typ"] == "at+jwt"
    assert tok.claims["aud"] == "https://api.example"
    assert tok.claims["scope"] == "api.read"
    assert tok.claims["agency_code"] == "AG-7"
    assert tok.claims["sub"] == cid
    # two tokens in the same second never collide (random jti)
    second = cc(client, cid, secret, scope="api.read").get_json()
    assert jwt.decode(second["access_token"], keys).claims["jti"] != tok.claims["jti"]
    with services.transaction() as s:
        issued = s.scalars(select(AuditEvent).where(AuditEvent.event == "token.issued")).all()
    assert len(issued) == 2 and issued[0].client_id == cid


def test_scope_and_audience_outside_registration_refused(services, client):
    cid, secret = cc_client(services)
    assert cc(client, cid, secret, scope="admin").get_json()["error"] == "invalid_scope"
    assert cc(client, cid, secret, resource="https://other.example").get_json()["error"] == "invalid_scope"
    ok = cc(client, cid, secret, resource="https://api.example")
    assert ok.status_code == 200


def test_wrong_secret_unknown_client_and_disabled_client(services, client):
    cid, secret = cc_client(services)
    wrong = cc(client, cid, secret + "x")
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    assert cc(client, "nobody", secret).status_code == 401
    with services.transaction() as s:
        client_service.set_disabled(s, cid, True, actor="test")
    assert cc(client, cid, secret).status_code == 401
    body = cc(client, cid, secret).get_data(as_text=True)
    assert "SELECT" not in body and "Traceback" not in body


def test_secret_stored_hashed(services):
    cid, secret = cc_client(services)
    with services.transaction() as s:
        row = client_service.get_client(s, cid)
        assert secret not in (row.secret_hash or "")
        assert row.secret_encrypted is None


def test_client_secret_post(services, client):
    cid, secret = cc_client(services, token_endpoint_auth_method="client_secret_post")
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    )
    assert resp.status_code == 200, resp.get_json()
    # basic is not accepted for a client registered for client_secret_post
    assert cc(client, cid, secret).status_code == 401


def _assertion(cid: str, key, alg: str, **over) -> str:
    now = int(time.time())
    claims = {
        "iss": cid,
        "sub": cid,
        "aud": f"{ISSUER}/token",
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(8),
        **over,
    }
    header = {"alg": alg}
    if getattr(key, "kid", None):
        header["kid"] = key.kid
    return jwt.encode(header, claims, key, algorithms=[alg])


def _assert_login(client, assertion: str):
    return client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def _refused(resp) -> bool:
    return resp.status_code in (400, 401) and resp.get_json()["error"] == "invalid_client"


def test_client_secret_jwt_hmac(services, client):
    cid, secret = cc_client(services, token_endpoint_auth_method="client_secret_jwt")
    key = OctKey.import_key(secret)
    a = _assertion(cid, key, "HS256")
    assert _assert_login(client, a).status_code == 200
    assert _refused(_assert_login(client, a))  # jti replay refused
    assert _refused(_assert_login(client, _assertion(cid, OctKey.import_key("wrong" * 8), "HS256")))
    assert _refused(_assert_login(client, _assertion(cid, key, "HS256", aud="https://elsewhere")))
    expired = _assertion(cid, key, "HS256", exp=int(time.time()) - 600)
    assert _refused(_assert_login(client, expired))


def test_private_key_jwt_rsa_and_ec(services, client):
    rsa = RSAKey.generate_key(2048, private=True)
    ec = ECKey.generate_key("P-256", private=True)
    jwks = {
        "keys": [
            {**rsa.as_dict(private=False), "kid": "r1"},
            {**ec.as_dict(private=False), "kid": "e1"},
        ]
    }
    cid, secret = cc_client(services, token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    assert secret is None
    rsa_k = RSAKey.import_key(rsa.as_dict(private=True), {"kid": "r1"})
    ec_k = ECKey.import_key(ec.as_dict(private=True), {"kid": "e1"})
    ok = _assert_login(client, _assertion(cid, rsa_k, "RS256"))
    assert ok.status_code == 200, ok.get_json()
    assert _assert_login(client, _assertion(cid, ec_k, "ES256")).status_code == 200
    stranger = RSAKey.generate_key(2048, private=True, parameters={"kid": "r1"})
    assert _refused(_assert_login(client, _assertion(cid, stranger, "RS256")))
    # HMAC "signed" with the public key as secret (algorithm confusion) is refused
    import base64
    import hashlib
    import hmac
    import json

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    now = int(time.time())
    head = b64(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
    body = b64(
        json.dumps({"iss": cid, "sub": cid, "aud": f"{ISSUER}/token", "exp": now + 60, "jti": "c1"}).encode()
    )
    sig = hmac.new(rsa.as_pem(private=False), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert _refused(_assert_login(client, f"{head}.{body}.{b64(sig)}"))


def test_allowed_networks(services, client):
    cid, secret = cc_client(services, allowed_networks=["192.0.2.0/24"])
    outside = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(cid, secret),
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert outside.status_code == 403
    inside = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(cid, secret),
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert inside.status_code == 200
    intro = client.post(
        "/introspect",
        data={"token": "x"},
        headers=basic(cid, secret),
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert intro.status_code == 403


def test_allowed_networks_hold_for_every_auth_method(services, client):
    """The network check applies to the client that authenticated, not to a claimed id."""
    cid, secret = cc_client(
        services, token_endpoint_auth_method="client_secret_post", allowed_networks=["192.0.2.0/24"]
    )
    outside = {"REMOTE_ADDR": "198.51.100.7"}
    decoy = basic("nobody", "")
    r = client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
        headers=decoy,
        environ_base=outside,
    )
    assert r.status_code == 403 and "access_token" not in r.get_json()
    r = client.post(
        "/introspect",
        data={"token": "x", "client_id": cid, "client_secret": secret},
        headers=decoy,
        environ_base=outside,
    )
    assert r.status_code == 403


def test_introspection_only_for_the_tokens_audience(services, client):
    cid, secret = cc_client(services)
    rs, rs_secret = cc_client(services, name="resource server", audiences=["https://api.example"])
    other, other_secret = cc_client(services, name="other", audiences=["https://other.example"])
    token = cc(client, cid, secret).get_json()["access_token"]
    ok = client.post("/introspect", data={"token": token}, headers=basic(rs, rs_secret)).get_json()
    assert ok["active"] is True and ok["client_id"] == cid and ok["scope"] == ""
    assert client.post(
        "/introspect", data={"token": token}, headers=basic(other, other_secret)
    ).get_json() == {"active": False}
    assert client.post("/introspect", data={"token": token}).status_code == 401
    # revoke, then it is inactive everywhere
    assert client.post("/revoke", data={"token": token}, headers=basic(cid, secret)).status_code == 200
    assert client.post("/introspect", data={"token": token}, headers=basic(rs, rs_secret)).get_json() == {
        "active": False
    }


def test_hostile_tokens_refused(services, client):
    user = make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    good = exchange(client, params["code"], flow, secret).get_json()["access_token"]
    claims = jwt.decode(good, KeySet.import_key_set(client.get("/jwks").get_json())).claims
    # alg none
    import base64
    import json

    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    none_tok = b64({"alg": "none", "typ": "at+jwt"}) + "." + b64(claims) + "."
    wrong_key = jwt.encode(
        {
            "alg": "ES256",
            "kid": jwt.decode(good, KeySet.import_key_set(client.get("/jwks").get_json())).header["kid"],
            "typ": "at+jwt",
        },
        claims,
        ECKey.generate_key("P-256", private=True),
        algorithms=["ES256"],
    )
    tampered = good.rsplit(".", 1)[0][:-2] + "AA." + good.rsplit(".", 1)[1]
    for bad in (none_tok, wrong_key, tampered, "garbage"):
        r = client.get("/userinfo", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
        assert client.post("/introspect", data={"token": bad}, headers=basic(cid, secret)).get_json() == {
            "active": False
        }
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {good}"}).get_json()["sub"] == user.id


def test_refresh_token_revocation_and_introspection(services, client):
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    rt = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    info = client.post("/introspect", data={"token": rt}, headers=basic(cid, secret)).get_json()
    assert info["active"] and info["token_type"] == "refresh_token"
    assert client.post("/revoke", data={"token": rt}, headers=basic(cid, secret)).status_code == 200
    assert client.post("/introspect", data={"token": rt}, headers=basic(cid, secret)).get_json() == {
        "active": False
    }
    r = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": rt},
        headers=basic(cid, secret),
    )
    assert r.get_json()["error"] == "invalid_grant"


def test_client_validation_refuses_bad_registrations(services):
    import pytest

    from iam.errors import ValidationFailed

    bad = [
        dict(redirect_uris=["ftp://x"]),
        dict(redirect_uris=["https://x/cb#frag"]),
        dict(grant_types=["password"]),
        dict(token_endpoint_auth_method="none", grant_types=["client_credentials"], redirect_uris=[]),
        dict(token_endpoint_auth_method="private_key_jwt"),
        dict(allowed_networks=["not-a-net"]),
        dict(redirect_uris=[]),
    ]
    for kw in bad:
        with pytest.raises(ValidationFailed):
            make_client(services, **kw)
    with services.transaction() as s:
        assert client_service.list_clients(s) == []
    spec = client_service.ClientSpec(name="x", redirect_uris=["http://rp.example/cb"])
    with services.transaction() as s, pytest.raises(ValidationFailed):
        client_service.create_client(s, services.cipher, spec, actor="t", allow_http=False)


def test_tokens_of_a_disabled_client_stop_working(services, client):
    cid, secret = cc_client(services)
    rs, rs_secret = cc_client(services, name="resource server")
    token = cc(client, cid, secret).get_json()["access_token"]
    assert client.post("/introspect", data={"token": token}, headers=basic(rs, rs_secret)).get_json()[
        "active"
    ]
    with services.transaction() as s:
        client_service.set_disabled(s, cid, True, actor="test")
    assert client.post("/introspect", data={"token": token}, headers=basic(rs, rs_secret)).get_json() == {
        "active": False
    }


def test_token_endpoint_answers_503_with_retry_after_while_the_database_is_down(services, client, caplog):
    """Issue 17 (drills): a database outage is 503 + Retry-After (OAuth
    ``temporarily_unavailable``), logged once when it begins and once when it ends — not a
    500 with a traceback per request."""
    cid, secret = make_client(services, grant_types=["client_credentials"], redirect_uris=[], scopes=["api"])
    form = {"grant_type": "client_credentials"}
    assert client.post("/token", data=form, headers=basic(cid, secret)).status_code == 200
    caplog.clear()
    with database_down(services):
        for _ in range(5):
            resp = client.post("/token", data=form, headers=basic(cid, secret))
            assert resp.status_code == 503
            assert resp.headers["Retry-After"] == str(services.settings.server.retry_after)
            assert resp.headers["Cache-Control"] == "no-store"
            assert resp.get_json()["error"] == "temporarily_unavailable"
            assert "Traceback" not in resp.get_data(as_text=True)
    errors = [r for r in caplog.records if r.name == "iam.web" and r.levelname == "ERROR"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None and "database unavailable" in errors[0].getMessage()
    assert "refused" in errors[0].getMessage()

    resp = client.post("/token", data=form, headers=basic(cid, secret))
    assert resp.status_code == 200 and resp.get_json()["access_token"]
    back = [r.getMessage() for r in caplog.records if r.name == "iam.web" and r.levelname == "WARNING"]
    assert len(back) == 1 and "5 request(s) were answered 503" in back[0]


def test_connection_lost_at_commit_is_503(services, client):
    """Issue 17 (drills): the database going away between the work and the commit is an outage
    too (503 + Retry-After), not a 500."""
    cid, secret = make_client(services, grant_types=["client_credentials"], redirect_uris=[], scopes=["api"])
    dbapi = services.engine.dialect.dbapi

    def lost(conn):
        raise OperationalError("COMMIT", None, dbapi.OperationalError("server closed the connection"))

    event.listen(services.engine, "commit", lost)
    try:
        resp = client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(cid, secret))
    finally:
        event.remove(services.engine, "commit", lost)
        services.engine.dispose()  # the connection whose commit "failed" is not reused
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == str(services.settings.server.retry_after)
    assert resp.get_json()["error"] == "temporarily_unavailable"
