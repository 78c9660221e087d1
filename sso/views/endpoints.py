"""The protocol endpoints: discovery, JWKS, token, userinfo, introspection, revocation."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from authlib.oauth2 import OAuth2Error
from flask import (
    Response,
    current_app,
    g,
    jsonify,
    request,
)

from iam import clock
from iam.web import db, reader, services
from sso import service
from sso.claims import SCOPE_CLAIMS, user_claims
from sso.mfa import levels
from sso.models import AuthMethod, Client
from sso.server import load_client
from sso.tokens import TokenInvalid
from sso.views.common import _record, _settings, bp, server


@bp.get("/.well-known/openid-configuration")
def discovery() -> Any:
    iss = _settings().issuer
    auth_methods = [m.value for m in AuthMethod if m != AuthMethod.NONE]
    doc = {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "end_session_endpoint": f"{iss}/logout",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint": f"{iss}/introspect",
        "scopes_supported": server().standard_scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": sorted(
            {c for cs in SCOPE_CLAIMS.values() for c in cs}
            | {"iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "sid", "agency_code"}
        ),
        "acr_values_supported": levels.names(_settings().mfa),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "ui_locales_supported": _settings().languages,
    }
    resp = jsonify(doc)
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/jwks")
def jwks() -> Any:
    resp = jsonify(current_app.extensions["sso.keyring"].jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


# -- authorization ----------------------------------------------------------------------------
def _authenticate_client(endpoint: str) -> Client:
    srv = server()
    req = srv.create_oauth2_request(None)
    methods = [m.value for m in AuthMethod if m != AuthMethod.NONE]
    if endpoint == "revocation":
        methods.append("none")
    oc = srv.authenticate_client(req, methods, endpoint)
    return oc.row  # type: ignore[no-any-return]


def _claimed_client_id() -> str | None:
    """The client id the caller claims (for the refusal's audit row only; never trusted)."""
    auth = request.authorization
    if auth and auth.type == "basic" and auth.username:
        return unquote(auth.username)[:128]
    return (request.form.get("client_id") or "")[:128] or None


@bp.post("/token")
def token() -> Any:
    resp = server().create_token_response()
    if resp.status_code != 200 and not g.get("iam_network_refused"):
        body = resp.get_json(silent=True) or {}
        _record(
            "token.refused",
            outcome="failure",
            client_id=g.get("iam_authenticated_client"),
            details={
                "error": body.get("error"),
                "grant_type": request.form.get("grant_type"),
                "claimed_client_id": _claimed_client_id(),
            },
        )
    return resp


def _bearer_claims() -> dict[str, Any] | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    return _bearer_claims_from(auth[7:].strip())


def _bearer_error(description: str) -> Response:
    resp = jsonify(error="invalid_token", error_description=description)
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{description}"'
    return resp


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Any:
    claims = _bearer_claims()
    if claims is None or "openid" not in str(claims.get("scope", "")).split():
        return _bearer_error("The access token is invalid, expired or revoked.")
    sub = str(claims["sub"])
    if not server().user_is_active(sub):
        return _bearer_error("The account can no longer sign in.")
    directory = services().directory
    user = directory.get_user(sub)
    if user is None:
        return _bearer_error("The account no longer exists.")
    scopes = set(str(claims.get("scope", "")).split())
    groups = directory.user_groups(sub) if "groups" in scopes else []
    return jsonify(user_claims(user, groups, scopes))


@bp.post("/introspect")
def introspect() -> Any:
    try:
        caller = _authenticate_client("introspection")
    except OAuth2Error as err:
        return server().handle_error_response(None, err)
    value = request.form.get("token", "")
    inactive = jsonify(active=False)
    if not value:
        return inactive
    result: dict[str, Any] | None = None
    if value.startswith(service.REFRESH_PREFIX):
        rt = service.find_refresh_token(db(), value)
        if (
            rt is not None
            and rt.client_id == caller.client_id
            and rt.revoked_at is None
            and rt.used_at is None
            and rt.expires_at > clock.now()
            and server().user_is_active(rt.sub)
        ):
            result = {
                "active": True,
                "token_type": "refresh_token",
                "client_id": rt.client_id,
                "sub": rt.sub,
                "scope": rt.scope,
                "exp": int(rt.expires_at.timestamp()),
                "iat": int(rt.created_at.timestamp()),
                "iss": _settings().issuer,
            }
    else:
        claims = _bearer_claims_from(value)
        if claims is not None:
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            allowed = {caller.client_id, *caller.audiences}
            user_ok = claims.get("sub") == claims.get("client_id") or server().user_is_active(
                str(claims.get("sub"))
            )
            if (claims.get("client_id") == caller.client_id or allowed & set(audiences)) and user_ok:
                result = {"active": True, "token_type": "access_token", **claims}
    _record(
        "token.introspected",
        actor=caller.client_id,
        client_id=caller.client_id,
        details={"active": bool(result)},
    )
    return jsonify(result) if result else inactive


def _bearer_claims_from(value: str) -> dict[str, Any] | None:
    try:
        claims = current_app.extensions["sso.signer"].verify(value, typ="at+jwt")
    except TokenInvalid:
        return None
    if service.access_token_revoked(reader(), str(claims.get("jti"))):
        return None
    issuer_client = load_client(str(claims.get("client_id")))
    if issuer_client is None or issuer_client.disabled:  # the client's tokens die with it
        return None
    return dict(claims)


def verify_bearer(value: str) -> dict[str, Any] | None:
    """An access token of ours, checked fully (signature, expiry, revocation, client enabled)."""
    return _bearer_claims_from(value)


@bp.post("/revoke")
def revoke() -> Any:
    try:
        caller = _authenticate_client("revocation")
    except OAuth2Error as err:
        return server().handle_error_response(None, err)
    value = request.form.get("token", "")
    revoked = False
    if value.startswith(service.REFRESH_PREFIX):
        rt = service.find_refresh_token(db(), value)
        if rt is not None and rt.client_id == caller.client_id:
            service.revoke_family(db(), rt.family_id)
            revoked = True
    elif value:
        claims = _bearer_claims_from(value)
        if claims is not None and claims.get("client_id") == caller.client_id:
            service.revoke_access_token(db(), str(claims["jti"]), int(claims["exp"]))
            revoked = True
    if revoked:
        _record(
            "token.revoked",
            actor=caller.client_id,
            client_id=caller.client_id,
        )
    return Response("", status=200)


# -- logout -----------------------------------------------------------------------------------
