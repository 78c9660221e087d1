"""Second-factor pages: choose a method, enter a code (placeholder, completed below)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, url_for

bp = Blueprint("mfa", __name__, url_prefix="/mfa")


@bp.get("/")
def choose() -> Any:
    return redirect(url_for("sso.login"))
