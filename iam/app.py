"""``create_app(settings=None)``: the Flask application with every feature package."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context
from flask_babel import Babel
from flask_wtf.csrf import CSRFProtect

from iam import admin, core_jobs, i18n, i18n_views, operations, views, web  # noqa: F401 — core_jobs registers job handlers
from iam.config import Settings, load_settings
from iam.services import Services

#: Feature packages, loaded by name so the core never imports them statically.
FEATURES: tuple[str, ...] = ("sso", "pim", "provisioning", "detect")

ROOT = Path(__file__).resolve().parent.parent

csrf = CSRFProtect()


def load_features() -> list[Any]:
    return [importlib.import_module(name) for name in FEATURES]


def load_feature_jobs() -> None:
    """Import each feature's ``jobs`` module so its handlers and periodic tasks register."""
    for name in FEATURES:
        if importlib.util.find_spec(f"{name}.jobs") is not None:
            importlib.import_module(f"{name}.jobs")


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or (services.settings if services else load_settings())
    services = services or Services(settings)
    app = Flask(
        "iam",
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        static_url_path="/static",
    )
    secure = settings.issuer.startswith("https://") and settings.session.cookie_secure
    app.config.update(
        SECRET_KEY=services.secret_key,
        SESSION_COOKIE_NAME="iam_flow",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the flow cookie
        WTF_CSRF_SSL_STRICT=secure,
        PREFERRED_URL_SCHEME="https" if secure else "http",
        MAX_CONTENT_LENGTH=1024 * 1024,
        BABEL_DEFAULT_LOCALE=settings.catalogues[settings.languages[0]],
        IAM_ORGANISATION=settings.organisation,
        BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"),
    )
    app.extensions["iam.services"] = services
    app.extensions["iam.settings"] = settings
    csrf.init_app(app)

    catalogues = settings.catalogues  # BCP 47 tag → catalogue name, checked at start

    def _locale() -> str | None:
        if not has_request_context():  # mails, the worker, the CLI: the first language
            return catalogues[settings.languages[0]]
        return catalogues[i18n.page_language_tag()]

    Babel(app, locale_selector=_locale)
    web.init_app(app)
    views.init_metrics(app)
    app.register_blueprint(views.bp)
    i18n_views.init_app(app)
    from iam.audit_report import views as audit_views

    audit_views.init_app(app)  # audit reports and the monthly review (security officers, auditors)
    from iam.conformance import views as conformance_views

    conformance_views.init_app(app)  # the console's conformance report page
    admin.init_app(app)  # the console's shell; features add their pages (iam.admin)
    operations.init_app(app)  # the console's Operations pages (jobs, health, settings)
    for feature in load_features():
        feature.init_app(app, services)
    for view in app.view_functions.values():
        if getattr(view, "iam_bearer_api", False):
            csrf.exempt(view)  # bearer-token APIs carry no cookies to forge
    logging.getLogger("iam").setLevel(logging.INFO)
    return app
