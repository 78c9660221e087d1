"""A small demo application (dev mode only) that signs in through the provider like any
relying party would — code flow with PKCE, state and nonce — and shows the resulting claims."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, current_app, redirect, render_template, request, session
from sqlalchemy.exc import IntegrityError

from sso import clients as client_service
from sso.models import Client
from sso.tokens import TokenInvalid

if TYPE_CHECKING:
    from iam.services import Services

bp = Blueprint("demo", __name__, url_prefix="/demo")
DEMO_CLIENT_ID = "demo-app"


def seed(services: Services) -> dict[str, Any]:
    """The demo application (idempotent)."""
    issuer = services.settings.issuer
    spec = client_service.ClientSpec(
        name="Demo application",
        client_id=DEMO_CLIENT_ID,
        redirect_uris=[f"{issuer}/demo/callback"],
        post_logout_redirect_uris=[f"{issuer}/demo/"],
        token_endpoint_auth_method="none",  # noqa: S106 — a public client
        agency_code="DEMO-001",
        description="An application signing in through the provider (OpenID Connect, code + PKCE).",
        launch_uri=f"{issuer}/demo/",
    )
    try:
        with services.transaction() as session:
            if session.get(Client, DEMO_CLIENT_ID) is None:
                client_service.create_client(session, services.cipher, spec, actor="demo", allow_http=True)
    except IntegrityError:
        pass  # created concurrently
    return {
        "client_id": DEMO_CLIENT_ID,
        "url": f"{issuer}/demo/",
        "lines": [
            f"  Open      {issuer}/demo/  (an application signing in through the provider)",
            f"  Portal    {issuer}/  (the applications a person may open, and 'my access')",
        ],
    }


def _issuer() -> str:
    return str(current_app.extensions["iam.settings"].issuer)


@bp.get("/")
def home() -> Any:
    return render_template(
        "sso/demo.html", claims=session.get("demo_claims"), userinfo=session.get("demo_userinfo")
    )


@bp.get("/login")
def login() -> Any:
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    session["demo_rp"] = {"verifier": verifier, "state": state, "nonce": nonce}
    params = {
        "response_type": "code",
        "client_id": DEMO_CLIENT_ID,
        "redirect_uri": f"{_issuer()}/demo/callback",
        "scope": "openid profile email groups",
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return redirect(f"{_issuer()}/authorize?{urlencode(params)}")


@bp.get("/callback")
def callback() -> Any:
    rp = session.pop("demo_rp", None)
    if not rp or request.args.get("state") != rp["state"]:
        return render_template("sso/demo.html", error="State mismatch: start again."), 400
    if "error" in request.args:
        return render_template("sso/demo.html", error=request.args["error"]), 400
    resp = httpx.post(
        f"{_issuer()}/token",
        data={
            "grant_type": "authorization_code",
            "code": request.args.get("code", ""),
            "redirect_uri": f"{_issuer()}/demo/callback",
            "client_id": DEMO_CLIENT_ID,
            "code_verifier": rp["verifier"],
        },
        timeout=10,
    )
    if resp.status_code != 200:
        return render_template("sso/demo.html", error=f"token endpoint: {resp.json().get('error')}"), 400
    tokens = resp.json()
    try:
        claims = current_app.extensions["sso.signer"].verify(tokens["id_token"])
    except TokenInvalid as exc:
        return render_template("sso/demo.html", error=f"ID token invalid: {exc}"), 400
    if claims.get("nonce") != rp["nonce"] or claims.get("aud") != DEMO_CLIENT_ID:
        return render_template("sso/demo.html", error="ID token nonce/audience mismatch."), 400
    info = httpx.get(
        f"{_issuer()}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    session["demo_claims"] = claims
    session["demo_userinfo"] = info.json() if info.status_code == 200 else None
    session["demo_id_token"] = tokens["id_token"]
    return redirect(f"{_issuer()}/demo/")


@bp.get("/logout")
def logout() -> Any:
    hint = session.pop("demo_id_token", None)
    session.pop("demo_claims", None)
    session.pop("demo_userinfo", None)
    params = {"post_logout_redirect_uri": f"{_issuer()}/demo/", "client_id": DEMO_CLIENT_ID}
    if hint:
        params["id_token_hint"] = hint
    return redirect(f"{_issuer()}/logout?{urlencode(params)}")
