"""The OpenID Connect provider and every way of signing in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from iam.app import csrf
    from sso import (
        jobs,  # noqa: F401 — registers job handlers
        keys,
        views,
    )
    from sso.server import IamAuthorizationServer
    from sso.tokens import Signer

    if services.settings.policy.required:  # R-SSO-6: no start without a policy text to show
        from sso.policy import service as policy

        policy.version_of(services.settings.policy.dir)
    ring = keys.keyring_for(services)
    signer = Signer(ring, services.settings.issuer, services.settings.tokens.signing_alg)
    app.extensions["sso.keyring"] = ring
    app.extensions["sso.signer"] = signer
    app.extensions["sso.server"] = IamAuthorizationServer(app, services, signer)
    app.register_blueprint(views.bp)
    app.register_blueprint(views.mfa.bp)  # second factors and step-up (/mfa/…)
    views.account.register_navigation(app)
    from sso.views import admin_auth, admin_people

    admin_auth.init_app(app)  # the console (iam.admin) asks us who is signed in
    admin_people.init_app(app)  # sessions, second factors and cards on a person's console page
    from sso.views import admin_apps, admin_keys

    admin_apps.init_app(app)  # the console's Applications pages
    admin_keys.init_app(app)  # the console's signing keys and card trust anchors
    views.portal.register_navigation(app)
    views.policy.register_navigation(app)
    from sso.mfa import openapi as mfa_openapi

    app.extensions.setdefault("iam.openapi_paths", []).append(mfa_openapi.paths())
    from sso import clients_api  # /api/v1/clients (portal fields, who may use an application)

    app.register_blueprint(clients_api.bp)
    app.extensions["iam.openapi_paths"].append(clients_api.paths())
    views.exempt_from_csrf(csrf)
    from iam.web import BEARER_VERIFIER
    from sso.views.endpoints import verify_bearer

    app.extensions[BEARER_VERIFIER] = verify_bearer  # the core's JSON APIs accept our access tokens
    from iam.web import register_signed_in
    from sso.views.common import signed_in_person

    register_signed_in(app, signed_in_person)  # who asks: core pages, page language, the console
    from sso.views import (
        card,  # smart-card sign-in (/card/…)
        card_api,  # noqa: F401 — adds /api/v1/x509/… to card.bp before it is registered
    )

    card.init_app(app, csrf)
    if services.settings.dev_mode:
        from sso import demo

        app.register_blueprint(demo.bp)
        csrf.exempt(demo.bp)


def register(cli: click.Group) -> None:
    from sso import jobs  # noqa: F401
    from sso.cli import client_group, keys_group

    cli.add_command(client_group)
    cli.add_command(keys_group)
    from sso.policy import cli as policy_cli

    policy_cli.register(cli)
    from sso.mfa.cli import mfa_group

    cli.add_command(mfa_group)
    from sso.x509.cli import ca_group, card_group

    cli.add_command(ca_group)
    cli.add_command(card_group)


def seed_demo(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    """``iam demo``: the demo application (a public client signing in with code + PKCE)."""
    from sso.demo import seed

    return seed(services)


def on_upgrade(services: Services) -> None:
    """After migrations: make sure signing keys exist."""
    from sso import keys

    with services.transaction() as session:
        keys.ensure_keys(session, services.cipher)
