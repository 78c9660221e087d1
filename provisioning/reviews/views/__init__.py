"""Access review pages (``pages``) and JSON API (``api``)."""

from provisioning.reviews.views.api import api, openapi_paths
from provisioning.reviews.views.pages import bp, register_navigation

__all__ = ["api", "bp", "openapi_paths", "register_navigation"]
