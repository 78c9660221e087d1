"""The language of a page or a mail.

A page's language is, in this order (the first that names a configured language wins):

1. the application's ``ui_locales`` of the sign-in under way (remembered in the flow cookie
   when ``/authorize`` is asked; a language switch replaces it);
2. the person's saved choice: for a signed-in person their stored language (``identities.
   language``), for a visitor the ``iam_lang`` cookie the language switch sets;
3. the browser's ``Accept-Language``;
4. the organisation's default, the first of ``settings.languages``.

Mails go out in the recipient's saved language, else the organisation's default; they are
rendered outside any request (the worker), with :func:`translations`.

Who is signed in is a feature's business (``sso``): it registers one finder for the whole
core (:func:`iam.web.register_signed_in`), and the core imports no feature.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.support import NullTranslations, Translations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from iam.config import Settings

__all__ = [
    "COOKIE",
    "N_",
    "Nn_",
    "FLOW_KEY",
    "TRANSLATIONS_DIR",
    "match",
    "saved_language",
    "save_language",
    "select_tag",
    "translate",
    "translate_plural",
    "translations",
]

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
"""Where the catalogues live (``translations/<catalogue>/LC_MESSAGES/messages.po|.mo``)."""

COOKIE = "iam_lang"
"""The cookie that remembers a visitor's language choice (a BCP 47 tag, one year)."""

FLOW_KEY = "iam_ui_locale"
"""Flask-session key: the language the application asked for with ``ui_locales``."""

COOKIE_MAX_AGE = 365 * 24 * 3600


def current_person() -> str | None:
    """The ``sub`` of the signed-in person of this request, if a feature knows one
    (:func:`iam.web.signed_in`)."""
    from iam.web import signed_in

    who = signed_in()
    return who.sub if who is not None else None


def match(requested: Iterable[str], languages: list[str]) -> str | None:
    """The first configured language that a requested BCP 47 tag names: exactly (case does not
    matter), else by language and script (``sr-Cyrl-RS`` → ``sr-Cyrl``), else by language alone
    (``pl-PL`` → ``pl``, ``sr`` → the first ``sr-…``)."""
    by_lower = {tag.lower(): tag for tag in languages}
    for raw in requested:
        tag = raw.strip().replace("_", "-").lower()
        if not tag:
            continue
        if tag in by_lower:
            return by_lower[tag]
        parts = tag.split("-")
        if len(parts) > 1 and "-".join(parts[:2]) in by_lower:
            return by_lower["-".join(parts[:2])]
        for known_lower, known in by_lower.items():
            if known_lower.split("-")[0] == parts[0]:
                return known
    return None


def select_tag(
    settings: Settings,
    *,
    ui_locale: str | None,
    saved: str | None,
    cookie: str | None,
    accept: Callable[[list[str]], str | None],
) -> str:
    """The page's language tag from the sources in order (see the module's text)."""
    languages = settings.languages
    for candidate in (ui_locale, saved, cookie):
        if candidate:
            found = match([candidate], languages)
            if found:
                return found
    return accept(languages) or languages[0]


# -- marking and translating outside templates -----------------------------------------------------
def N_(message: str) -> str:  # noqa: N802 — the gettext convention for "mark, translate later"
    """Mark ``message`` for extraction; it is translated where it is shown (:func:`translate`)."""
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:  # noqa: N802 — as N_, with a plural
    """Mark a singular and plural pair for extraction (``%(num)d`` in both)."""
    return singular, plural


def translate(message: str, **params: Any) -> str:
    """``message`` in the page's language (the default language outside a request), with
    ``%(name)s`` placeholders filled from ``params``. Never fails on a bad translation."""
    from flask_babel import gettext

    try:
        return str(gettext(message, **params))
    except (KeyError, ValueError, TypeError):
        return message % params if params else message


def translate_plural(singular: str, plural: str, num: int, **params: Any) -> str:
    """The plural form of the page's language for ``num`` (``%(num)d`` in the texts)."""
    from flask_babel import ngettext

    try:
        return str(ngettext(singular, plural, num, **params))
    except (KeyError, ValueError, TypeError):
        return (singular if num == 1 else plural) % {"num": num, **params}


# -- stored choice ---------------------------------------------------------------------------------
def saved_language(session: Session, sub: str) -> str | None:
    """The language a person chose (a BCP 47 tag), if any."""
    from iam.models.identity import Identity

    row = session.get(Identity, sub)
    return row.language if row is not None else None


def save_language(session: Session, sub: str, tag: str) -> bool:
    """Remember a person's language; ``False`` when no identity row exists for ``sub``."""
    from iam.models.identity import Identity

    row = session.get(Identity, sub)
    if row is None:
        return False
    row.language = tag
    return True


def recipient_language(settings: Settings, session: Session | None, sub: str | None) -> str:
    """The language of a mail to ``sub``: their saved choice if configured, else the default."""
    if session is not None and sub:
        found = match([saved_language(session, sub) or ""], settings.languages)
        if found:
            return found
    return settings.languages[0]


# -- catalogues outside a request ------------------------------------------------------------------
@lru_cache(maxsize=32)
def translations(catalogue: str) -> NullTranslations:
    """The compiled catalogue ``catalogue`` (``sr_Latn``), or English (the source) when missing."""
    return Translations.load(str(TRANSLATIONS_DIR), [catalogue])


def catalogue_of(settings: Settings, tag: str) -> str:
    return settings.catalogues.get(tag) or settings.catalogues[settings.languages[0]]


def install(env: Any, settings: Settings, tag: str) -> None:
    """Give a Jinja environment (``jinja2.ext.i18n``) the catalogue of ``tag``."""
    env.install_gettext_translations(translations(catalogue_of(settings, tag)), newstyle=True)


ISO_FORMATS = {"datetime": "%Y-%m-%d %H:%M", "seconds": "%Y-%m-%d %H:%M:%S", "date": "%Y-%m-%d"}
"""English keeps ISO 8601 (no US month-first dates in a European administration)."""


def format_moment(value: dt.datetime, zone: Any, catalogue: str, style: str = "datetime") -> str:
    """A UTC time in ``zone`` with the zone's abbreviation, written the way ``catalogue``'s
    locale writes it (Babel; English: ISO 8601): ``16. 1. 2026. 00:30 CET``,
    ``2026-01-16 00:30 CET``. ``style``: ``datetime``, ``seconds`` or ``date``."""
    from babel.dates import format_date, format_time

    moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    local = moment.astimezone(zone)
    if catalogue.split("_")[0] == "en":
        text = local.strftime(ISO_FORMATS.get(style, ISO_FORMATS["datetime"]))
        return text if style == "date" else f"{text} {local.tzname()}"
    day = format_date(local.date(), format="medium", locale=catalogue)
    if style == "date":
        return day
    clock_time = format_time(
        local.time(), format="medium" if style == "seconds" else "short", locale=catalogue
    )
    return f"{day} {clock_time} {local.tzname()}"


# -- the page's language ---------------------------------------------------------------------------
def page_language_tag() -> str:
    """The language of the page being answered (see the module's text), once per request."""
    from flask import current_app, g, request, session

    if "iam_language" in g:
        return str(g.iam_language)
    settings: Settings = current_app.extensions["iam.settings"]
    saved: str | None = None
    try:
        sub = current_person()
        if sub:
            from iam.web import reader

            saved = saved_language(reader(), sub)
    except Exception:  # noqa: BLE001 — no language is worth a failed page: fall back
        logging.getLogger("iam.i18n").warning("the saved language could not be read", exc_info=True)
    tag = select_tag(
        settings,
        ui_locale=session.get(FLOW_KEY),
        saved=saved,
        cookie=request.cookies.get(COOKIE),
        accept=lambda languages: request.accept_languages.best_match(languages),
    )
    g.iam_language = tag
    return tag


def message_of(exc: BaseException) -> str:
    """An error's sentence for a page, in the page's language (``IamError.localized``)."""
    from iam.errors import IamError

    return exc.localized() if isinstance(exc, IamError) else str(exc)


@dataclass(frozen=True)
class Msg:
    """A sentence to show later in the reader's language: a marked template, its named
    parameters (which may be :class:`Msg` themselves, or tuples of them for a list), and for a
    number a plural template (``%(num)d`` in both). ``str()`` is the English sentence."""

    template: str
    params: Mapping[str, Any] = field(default_factory=dict)
    plural: str | None = None

    def _render(self, localized: bool) -> str:
        values = {k: _value(v, localized) for k, v in self.params.items()}
        if self.plural is not None:
            num = int(values.pop("num"))
            if localized:
                return translate_plural(self.template, self.plural, num, **values)
            return (self.template if num == 1 else self.plural) % {"num": num, **values}
        if localized:
            return translate(self.template, **values)
        return self.template % values if values else self.template

    def localized(self) -> str:
        return self._render(True)

    def __str__(self) -> str:
        return self._render(False)


def _value(value: Any, localized: bool) -> Any:
    if isinstance(value, Msg):
        return value._render(localized)
    if isinstance(value, tuple):
        items = [str(_value(v, localized)) for v in value]
        if len(items) <= 1:
            return "".join(items)
        first, last = ", ".join(items[:-1]), items[-1]
        template = N_("%(first)s and %(last)s")
        return (
            translate(template, first=first, last=last)
            if localized
            else template % {"first": first, "last": last}
        )
    return value


# -- mails composed in code ------------------------------------------------------------------------
@dataclass(frozen=True)
class Translator:
    """``gettext``/``ngettext`` of one language, for a mail composed in code outside a request
    (``%(name)s`` placeholders filled from keyword arguments)."""

    tag: str
    catalogue: str

    def gettext(self, message: str, **params: Any) -> str:
        text = str(translations(self.catalogue).ugettext(message))
        try:
            return text % params if params else text
        except (KeyError, ValueError, TypeError):
            return message % params if params else message

    def ngettext(self, singular: str, plural: str, num: int, **params: Any) -> str:
        text = str(translations(self.catalogue).ungettext(singular, plural, num))
        values = {"num": num, **params}
        try:
            return text % values
        except (KeyError, ValueError, TypeError):
            return (singular if num == 1 else plural) % values

    def moment(self, value: dt.datetime, zone: Any) -> str:
        return format_moment(value, zone, self.catalogue)


def translator(settings: Settings, tag: str | None = None) -> Translator:
    """The translator of ``tag`` (a configured language; else the organisation's default)."""
    found = match([tag or ""], settings.languages) or settings.languages[0]
    return Translator(found, catalogue_of(settings, found))


def for_recipient(
    settings: Settings, session: Session | None, *, sub: str | None = None, email: str | None = None
) -> Translator:
    """The translator of a mail's recipient: their saved language (found by ``sub`` or by their
    e-mail address), else the organisation's default."""
    tag: str | None = None
    if session is not None:
        from sqlalchemy import func, select

        from iam.models.identity import Identity

        if sub:
            tag = saved_language(session, sub)
        elif email:
            tag = session.scalar(
                select(Identity.language)
                .where(func.lower(Identity.email) == email.lower(), Identity.language.is_not(None))
                .limit(1)
            )
    return translator(settings, tag)
