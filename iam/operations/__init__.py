"""The console's Operations pages (core): jobs, workers and dependency health, the settings
in effect. ``service`` holds the logic (no Flask), ``views`` the pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    from iam.operations import views

    views.init_app(app)
