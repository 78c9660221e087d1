"""Blueprints of provisioning: the HR event API, SCIM 2.0 and the operators' pages."""

from __future__ import annotations

from typing import Any

from provisioning.views import api as _api
from provisioning.views import pages as _pages
from provisioning.views import scim as _scim  # noqa: F401 — registers its routes on ``api``

api = _api.api
bp = _pages.bp
register_navigation = _pages.register_navigation


def openapi_paths() -> dict[str, Any]:
    return _api.openapi_paths()
