"""The core's console pages: people and the audit search (routes on the shell's blueprint)."""

from __future__ import annotations

from iam.admin.views import audit, people  # noqa: F401 — importing registers the routes

__all__ = ["audit", "people"]
