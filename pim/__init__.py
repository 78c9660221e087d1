"""Time-boxed privileged elevation (PIM): eligible roles, approval, activation on a separate
admin account, expiry that cannot be missed, break-glass and detection of changes made outside
PIM (R-PIM-1..8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from iam.app import csrf
    from pim import jobs, privileged, roles, tokens, views  # noqa: F401 — jobs register handlers
    from pim.views import person_panel  # noqa: F401 — elevations on the console's person page

    roles.file_roles(services)  # invalid role files stop the start, naming file and key
    check_levels(services)
    tokens.register()
    privileged.register()  # the help desk cannot reset admin/shared accounts, officers
    app.register_blueprint(views.bp)
    views.register_navigation(app)
    from pim.views import admin

    admin.init_app(app)  # the console's PIM administration pages (iam.admin)
    csrf.exempt(views.api)
    app.register_blueprint(views.api)
    from pim.openapi import paths

    app.extensions.setdefault("iam.openapi_paths", []).append(paths())


def register(cli: click.Group) -> None:
    from pim import jobs, privileged  # noqa: F401
    from pim.cli import pim_group

    privileged.register()

    cli.add_command(pim_group)


def seed_demo(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    """``iam demo``: eligibility for the shipped roles and an approver among the demo users."""
    from pim.demo import seed

    return seed(services, demo=demo)


def check_levels(services: Services) -> None:
    """``pim.levels`` must name the sign-in levels the provider issues: when the settings define
    ``mfa.levels`` (the sso MFA package), the same names in the same order."""
    from iam.errors import ConfigError

    mfa = getattr(services.settings, "mfa", None)
    issued = [getattr(level, "name", None) for level in getattr(mfa, "levels", None) or []]
    if issued and issued != list(services.settings.pim.levels):
        raise ConfigError(
            f"pim.levels {services.settings.pim.levels} must equal the names of mfa.levels {issued} "
            "(lowest first)."
        )
