"""The language switch on every page, and remembering an application's ``ui_locales``.

``POST /language`` (a plain form in ``base.html``, CSRF-protected, no JavaScript needed) sets the
``iam_lang`` cookie and, for a signed-in person, stores their choice (audited); it replaces the
``ui_locales`` of a sign-in under way. ``ui_locales`` on any request (``/authorize``) is kept in
the flow cookie for the pages of that sign-in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, redirect, request, session
from flask_babel import refresh

from iam import audit, i18n
from iam.config import Settings
from iam.pages import error_page

bp = Blueprint("i18n", __name__)


def _settings() -> Settings:
    return current_app.extensions["iam.settings"]  # type: ignore[no-any-return]


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme): deny by default."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@bp.post("/language")
def choose() -> Any:
    """Switch the page language; back to the page the form was on."""
    from flask_babel import gettext as _

    settings = _settings()
    tag = i18n.match([request.form.get("language", "")], settings.languages)
    if tag is None or request.form.get("language", "").lower() != tag.lower():
        return error_page(400, message=_("This language is not offered here."))
    session.pop(i18n.FLOW_KEY, None)
    sub = i18n.current_person()
    if sub:
        from iam.web import db

        if i18n.save_language(db(), sub, tag):
            audit.record(
                db(),
                "person.language_changed",
                actor=sub,
                subject=sub,
                ip=g.get("client_ip"),
                details={"language": tag},
            )
    response = redirect(_safe_next(request.form.get("next")), code=303)
    secure = bool(current_app.config.get("SESSION_COOKIE_SECURE"))
    response.set_cookie(
        i18n.COOKIE, tag, max_age=i18n.COOKIE_MAX_AGE, secure=secure, httponly=True, samesite="Lax", path="/"
    )
    g.pop("iam_language", None)
    refresh()
    return response


def _remember_ui_locales() -> None:
    requested = request.args.get("ui_locales")
    if requested and request.method == "GET":
        tag = i18n.match(requested.split(), _settings().languages)
        if tag is not None:
            session[i18n.FLOW_KEY] = tag
        else:
            session.pop(i18n.FLOW_KEY, None)


def language_choices() -> list[dict[str, Any]]:
    """The configured languages, each named in its own language (for the switch)."""
    from babel import Locale

    settings = _settings()
    current = i18n.page_language_tag()
    out = []
    for tag in settings.languages:
        locale = Locale.parse(settings.catalogues[tag])
        name = locale.get_display_name(locale) or tag  # "srpski (latinica)", "српски (ћирилица)"
        out.append({"tag": tag, "name": name[:1].upper() + name[1:], "current": tag == current})
    return out


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_remember_ui_locales)

    @app.context_processor
    def _languages() -> dict[str, Any]:
        return {"language_choices": language_choices}
