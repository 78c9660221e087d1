"""Evidence for the conformance report from the OpenID provider (R-SSO)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from iam.conformance.evidence import MET, NOT_CONFIGURED, NOT_MET, Context, Evidence, evidence
from sso.models import Client


def _clients(ctx: Context) -> list[Client]:
    with ctx.services.reader() as session:
        return list(session.scalars(select(Client).where(Client.disabled.is_(False))))


@evidence("sso.clients")
def clients(ctx: Context, p: dict[str, Any]) -> Evidence:
    """Only registered applications; each with exact redirect URIs; machine clients with an
    identifier code (LGSP Điều 7.1)."""
    rows = _clients(ctx)
    if not rows:
        return Evidence(
            "sso.clients", NOT_CONFIGURED, "No application is registered.", query="iam client list --json"
        )
    machine = [c for c in rows if "client_credentials" in c.grant_types]
    no_code = [f"{c.client_id} ({c.name})" for c in machine if not c.agency_code]
    wildcard = [f"{c.client_id}: {u}" for c in rows for u in c.redirect_uris if "*" in u]
    items = no_code + wildcard
    return Evidence(
        "sso.clients",
        NOT_MET if items else MET,
        f"{len(rows)} registered applications ({len(machine)} machine clients); redirect URIs matched exactly"
        + (f"; {len(no_code)} machine client(s) without an agency code" if no_code else ""),
        items=items,
        query="iam client list --json",
    )


@evidence("sso.client_auth")
def client_auth(ctx: Context, p: dict[str, Any]) -> Evidence:
    rows = _clients(ctx)
    methods = Counter(c.token_endpoint_auth_method for c in rows)
    return Evidence(
        "sso.client_auth",
        MET if rows else NOT_CONFIGURED,
        "Client authentication in use: "
        + (", ".join(f"{m} ×{n}" for m, n in sorted(methods.items())) or "none")
        + "; signed requests (client_secret_jwt, private_key_jwt) are offered",
        query="iam client list --json",
    )


@evidence("sso.networks")
def networks(ctx: Context, p: dict[str, Any]) -> Evidence:
    machine = [c for c in _clients(ctx) if "client_credentials" in c.grant_types]
    if not machine:
        return Evidence("sso.networks", NOT_CONFIGURED, "No machine client is registered.")
    open_ = [f"{c.client_id} ({c.name})" for c in machine if not c.allowed_networks]
    return Evidence(
        "sso.networks",
        NOT_MET if open_ else MET,
        f"{len(machine) - len(open_)} of {len(machine)} machine clients are restricted to allowed networks",
        items=open_,
        query="iam client list --json   # allowed_networks",
    )
