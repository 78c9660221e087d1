"""Detection and immediate alerts (R-AUD-2), changes made in Active Directory outside the
provider (Cluj), and per-agency statistics (R-AUD-4, LGSP). Everything is computed by worker
tasks from cursors on the audit log and on the directory; pages and the API read the results."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click
    from flask import Flask

    from iam.services import Services


def init_app(app: Flask, services: Services) -> None:
    from detect import jobs, rules  # noqa: F401 — jobs registers the worker tasks
    from detect.views import api, pages

    rules.load(services.settings.detect.rules_file)  # an invalid rules file stops the start
    app.register_blueprint(pages.bp)
    pages.register_navigation(app)
    app.register_blueprint(api.bp)
    app.extensions.setdefault("iam.openapi_paths", []).append(api.openapi_paths())
    api.register_metrics(app, services)


def register(cli: click.Group) -> None:
    from detect import jobs  # noqa: F401
    from detect.cli import detect_group

    cli.add_command(detect_group)
