"""What every HTML page shares: the header's organisation and navigation, times in the
organisation's time zone, the page language, and our own error pages.

Navigation is a registry: each feature contributes its pages with the check that its own view
applies (``register_nav``); the core shows a link only when that check passes for the person
asking, and never when it fails or raises (deny by default). The core names no feature page."""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from babel.numbers import format_decimal
from flask import Flask, current_app, g, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from iam.i18n import format_moment

log = logging.getLogger("iam.pages")

NAV = "iam.nav"
"""``app.extensions`` key of the list of :class:`NavLink` the features contribute."""


@dataclass(frozen=True)
class NavLink:
    """One page in the header's navigation.

    ``allowed`` answers, for the current request, whether the page's own authorisation would
    let this person in: it is the same check the view applies (or a stricter one), so a link
    never leads to a refusal. ``order`` sorts the links (lower first)."""

    endpoint: str
    label: Any
    allowed: Callable[[], bool]
    order: int = 100
    link_id: str = ""


def register_nav(app: Flask, *links: NavLink) -> None:
    """A feature adds its pages to the navigation (see :class:`NavLink`)."""
    app.extensions.setdefault(NAV, []).extend(links)


def nav_links() -> list[dict[str, Any]]:
    """The links the person asking may follow, computed once per request."""
    if "iam_nav" in g:
        return g.iam_nav  # type: ignore[no-any-return]
    out: list[dict[str, Any]] = []
    links: list[NavLink] = sorted(current_app.extensions.get(NAV, []), key=lambda n: n.order)
    for link in links:
        try:
            allowed = bool(link.allowed())
        except Exception:  # noqa: BLE001 — a failing check hides the link (deny by default)
            log.warning("navigation check for %s failed; link hidden", link.endpoint, exc_info=True)
            allowed = False
        if allowed:
            out.append(
                {
                    "href": url_for(link.endpoint),
                    "label": str(link.label),
                    "id": link.link_id or "nav-" + link.endpoint.replace(".", "-"),
                    "current": request.endpoint == link.endpoint,
                }
            )
    g.iam_nav = out
    return out


# -- time ------------------------------------------------------------------------------------------
FORMATS = {"datetime": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "date": "%Y-%m-%d"}


def organisation_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(current_app.extensions["iam.settings"].timezone)


def _babel_locale() -> str | None:
    """The page's Babel locale when it is not English (English pages keep ISO 8601 times)."""
    locale = get_locale()
    if locale is None or locale.language == "en":
        return None
    return str(locale)


def localtime(value: Any, style: str = "datetime") -> str:
    """Jinja filter ``localtime``: a stored (UTC) time in the organisation's time zone, with
    the zone's abbreviation. English pages write ISO 8601 (``2026-03-01 14:05 CET``); the other
    languages write it the way their locale does, through Babel (``1. 3. 2026. 14:05 CET``,
    ``1.03.2026, 14:05 CET``). Accepts datetimes (naive ones are UTC), dates and ISO 8601
    strings; anything else is shown as it is, nothing as "—"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        text: str = value
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            return text
    babel_locale = _babel_locale()
    if isinstance(value, dt.datetime):
        if babel_locale is not None:
            return format_moment(value, organisation_zone(), babel_locale, style)
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        local = moment.astimezone(organisation_zone())
        if style == "date":
            return local.strftime(FORMATS["date"])
        return f"{local.strftime(FORMATS.get(style, FORMATS['datetime']))} {local.tzname()}"
    if isinstance(value, dt.date):
        if babel_locale is not None:
            return format_date(value, format="medium", locale=babel_locale)
        return value.strftime(FORMATS["date"])
    return str(value)


def number(value: Any) -> str:
    """Jinja filter ``number``: an integer or decimal written the page's way (``1 234,5``)."""
    locale = get_locale()
    try:
        return format_decimal(value, locale=str(locale) if locale is not None else "en")
    except (TypeError, ValueError, ArithmeticError):
        return str(value)


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def display(value: Any) -> str:
    """Jinja filter ``display``: any stored value in words — times (also ISO strings in JSON
    results) in the organisation's time zone, yes/no, lists and mappings flattened, nothing
    as "—". Never a raw ``+00:00`` or ``{}``."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    if isinstance(value, dt.date):
        return localtime(value)
    if isinstance(value, str):
        text: str = value
        return localtime(text) if _ISO_TIME.match(text) else text
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {display(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return ", ".join(display(v) for v in value)
    return str(value)


def page_language() -> str:
    """The page's language as a BCP 47 tag for ``<html lang>`` (``sr-Latn``, not ``sr_Latn``)."""
    locale = get_locale()
    if locale is None:
        return "en"
    parts = (locale.language, locale.script, locale.territory, locale.variant)
    return "-".join(p for p in parts if p)


# -- error pages -----------------------------------------------------------------------------------
ERRORS: dict[int, tuple[Any, Any]] = {
    400: (
        _l("The request could not be understood"),
        _l("Something in the request was missing or not valid. Go back and try again."),
    ),
    401: (_l("Sign-in needed"), _l("Sign in to see this page.")),
    403: (_l("Not allowed"), _l("You are signed in, but this page is not open to you.")),
    404: (
        _l("Page not found"),
        _l("There is no page at this address. Check the address, or start again."),
    ),
    405: (
        _l("Not possible here"),
        _l("This page cannot be used this way. Start again from the page before."),
    ),
    413: (_l("Too much data"), _l("What was sent is too large.")),
    429: (_l("Too many requests"), _l("Please wait a moment and try again.")),
    500: (_l("Something went wrong"), _l("An internal error occurred. Please try again.")),
    503: (
        _l("Temporarily unavailable"),
        _l("A service we depend on is unavailable. Try again in a few minutes."),
    ),
}


def _own_description(exc: HTTPException) -> str | None:
    """A message the application wrote itself (``abort(404, "…")``), not Werkzeug's stock one."""
    stock = type(exc).description
    if exc.description and exc.description != stock:
        return str(exc.description)
    return None


def error_page(
    status: int,
    *,
    title: str | None = None,
    message: str | None = None,
    next_href: str | None = None,
    next_label: str | None = None,
) -> tuple[str, int]:
    """Our error page, in the page layout, with a next step (default: the start page)."""
    default_title, default_message = ERRORS.get(status, ERRORS[500 if status >= 500 else 400])
    try:
        return render_template(
            "iam/error.html",
            status=status,
            title=title or str(default_title),
            message=message or str(default_message),
            next_href=next_href,
            next_label=next_label,
        ), status
    except Exception:  # noqa: BLE001 — the error page itself must never fail
        log.exception("the error page for %s could not be rendered", status)
        return f"<!doctype html><title>{status}</title><p>{_('An internal error occurred.')}</p>", status


def http_error_page(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    message = _own_description(exc)
    if status == 400 and type(exc).__name__ == "CSRFError":
        message = _("The form expired or was sent from elsewhere. Go back, reload the page and try again.")
    return error_page(status, message=message)


def init_app(app: Flask) -> None:
    app.add_template_filter(localtime, "localtime")
    app.add_template_filter(display, "display")
    app.add_template_filter(number, "number")

    @app.context_processor
    def _page_context() -> dict[str, Any]:
        return {
            "nav_links": nav_links,
            "organisation": current_app.extensions["iam.settings"].organisation,
            "page_language": page_language,
        }
