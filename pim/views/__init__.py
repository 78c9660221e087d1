"""PIM blueprints: pages under ``/pim`` (SSO session + CSRF) and the JSON API under
``/api/v1/pim`` (Bearer access token with the ``pim.api_scope`` scope). Thin: every rule is in
:mod:`pim.service`."""

from pim.views.api import api
from pim.views.pages import bp, register_navigation

__all__ = ["api", "bp", "register_navigation"]
