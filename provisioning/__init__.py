"""HR-driven lifecycle: joiners, movers and leavers from SCIM, the event API and batch files;
naming and birthright policies; reconciliation against the directory; the register of
authorised persons."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from iam.app import csrf
    from provisioning import (
        jobs,  # noqa: F401 — registers job handlers
        views,
    )

    app.register_blueprint(views.bp)
    views.register_navigation(app)
    app.register_blueprint(views.api)
    csrf.exempt(views.api)
    app.extensions.setdefault("iam.openapi_paths", []).append(views.openapi_paths())


def register(cli: click.Group) -> None:
    from provisioning import jobs  # noqa: F401
    from provisioning.cli import hr_group

    cli.add_command(hr_group)
