"""Time-boxed privileged elevation (PIM): eligible roles, approval, activation on a separate
admin account, expiry that cannot be missed, break-glass and detection of changes made outside
PIM (R-PIM-1..8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from iam.app import csrf
    from pim import jobs, roles, tokens, views  # noqa: F401 — jobs register handlers

    roles.file_roles(services)  # invalid role files stop the start, naming file and key
    tokens.register()
    app.register_blueprint(views.bp)
    csrf.exempt(views.api)
    app.register_blueprint(views.api)
    from pim.openapi import paths

    app.extensions.setdefault("iam.openapi_paths", []).append(paths)


def register(cli: click.Group) -> None:
    from pim import jobs  # noqa: F401
    from pim.cli import pim_group

    cli.add_command(pim_group)
