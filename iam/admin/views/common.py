"""Shared by the console's pages: which actions the person may see, the reason form, errors."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, url_for
from flask_babel import gettext as _

from iam.admin import admin_roles, allowed_roles
from iam.admin.forms import ReasonForm
from iam.admin.hooks import Action
from iam.web import db


def may(action: Action) -> bool:
    """Whether this person's roles let them take ``action`` (its view checks again)."""
    return bool(admin_roles() & allowed_roles(action.roles, "POST"))


def reason_or_back(back: str) -> tuple[str | None, Any]:
    """The submitted reason, or (None, a redirect back with the form's error)."""
    form = ReasonForm()
    if form.validate_on_submit():
        return str(form.reason.data).strip(), None
    errors = form.reason.errors or [_("Say why: the audit log keeps the reason.")]
    flash(str(errors[0]))
    return None, redirect(back, code=303)


def client_ip() -> str | None:
    return g.get("client_ip")  # type: ignore[no-any-return]


def refused(message: str, back: str) -> Any:
    """Nothing half-written (refusals already recorded stay); the message on the page."""
    db().rollback()
    flash(message)
    return redirect(back, code=303)


def person_path(user_id: str) -> str:
    return url_for("admin.person", user_id=user_id)


def before_directory_write() -> None:
    """Commit what this request wrote so far (the sign-in session's touch): the directory and
    the password history write next in transactions of their own, and SQLite has one writer."""
    db().commit()
