"""HR-driven lifecycle: joiners, movers and leavers from SCIM, the event API and batch files;
naming and birthright policies; reconciliation against the directory; the register of
authorised persons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from iam.app import csrf
    from provisioning import (
        jobs,  # noqa: F401 — registers job handlers
        persons,  # noqa: F401 — registers the HR links between a person's accounts
        views,
    )
    from provisioning.reviews import definitions
    from provisioning.views import person_panel  # noqa: F401 — HR record on the console's person page

    definitions.definitions(services)  # invalid definition files stop the start, naming file and key
    app.register_blueprint(views.bp)
    views.register_navigation(app)
    app.register_blueprint(views.api)
    csrf.exempt(views.api)
    app.extensions.setdefault("iam.openapi_paths", []).append(views.openapi_paths())
    from provisioning.reviews import views as review_views

    app.register_blueprint(review_views.bp)
    review_views.register_navigation(app)
    app.register_blueprint(review_views.api)
    app.extensions["iam.openapi_paths"].append(review_views.openapi_paths())
    from provisioning.requests import catalogue as request_catalogue
    from provisioning.requests import views as request_views
    from provisioning.requests.calendar import WorkingCalendar

    request_catalogue.catalogue(services)  # an invalid catalogue stops the start, naming the key
    WorkingCalendar.of(services.settings)  # so does a country the holidays library does not know
    app.register_blueprint(request_views.bp)
    request_views.register_navigation(app)
    app.register_blueprint(request_views.api)
    app.extensions["iam.openapi_paths"].append(request_views.openapi_paths())


def register(cli: click.Group) -> None:
    from provisioning import jobs, persons  # noqa: F401
    from provisioning.cli import hr_group
    from provisioning.requests.cli import access_group
    from provisioning.reviews.cli import review_group

    cli.add_command(hr_group)
    cli.add_command(review_group)
    cli.add_command(access_group)


def seed_demo(services: Services, *, demo: dict[str, Any]) -> dict[str, Any]:
    """``iam demo``: an HR operator, an HR system client and a few HR events."""
    from provisioning.demo import seed

    return seed(services, demo=demo)
