"""Access request pages (``pages``: request, my requests, the inbox of things waiting for me)
and the JSON API (``api``: ``/api/v1/requests``)."""

from provisioning.requests.views.api import api, openapi_paths
from provisioning.requests.views.pages import bp, register_navigation

__all__ = ["api", "bp", "openapi_paths", "register_navigation"]
