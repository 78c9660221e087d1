"""Password-expiry reminders (issue "Password rules…" item 7): the worker scans the directory,
and mails each account holder whose password expires within one of ``passwords.reminder_days``,
once per expiry date and reminder day. The mail goes out through the job table, so a relay
outage delays it but loses nothing."""

from __future__ import annotations

import datetime as dt
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from iam import audit, clock, i18n, jobs
from iam.db import insert_if_absent
from iam.directory.base import DirectoryUser
from iam.models.passwords import PasswordReminder
from iam.passwords.service import effective_expiry

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.passwords")

TEMPLATE = "password_expiry"


@lru_cache(maxsize=32)
def _environment(folder: Path, catalogue: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(catalogue), newstyle=True)  # type: ignore[attr-defined]
    return env


def render(folder: Path, template: str, *, catalogue: str = "en", **values: object) -> tuple[str, str, str]:
    """Subject, plain text and HTML of the mail ``template`` from ``folder``, in the language of
    ``catalogue`` (``sr_Latn``; the templates mark their text with ``_()``/``ngettext``)."""
    env = _environment(folder, catalogue)
    subject = env.get_template(f"{template}.subject.txt").render(**values).strip()
    return (
        subject,
        env.get_template(f"{template}.txt").render(**values),
        env.get_template(f"{template}.html").render(**values),
    )


def due_bucket(reminder_days: list[int], left: dt.timedelta) -> int | None:
    """The smallest reminder day that ``left`` has reached (one mail even after an outage)."""
    due = [d for d in reminder_days if left <= dt.timedelta(days=d)]
    return min(due) if due else None


def send_due_reminders(services: Services) -> int:
    """Queue the reminders that are due now; returns how many were queued."""
    settings = services.settings
    days = settings.passwords.reminder_days
    if not days:
        return 0
    profile = services.password_profile
    now = clock.now()
    queued = 0
    for user in services.directory.search_users():
        if not user.enabled or not user.email:
            continue
        state = effective_expiry(profile, user, now)
        if state.expires_at is None or state.expired:
            continue
        bucket = due_bucket(days, state.expires_at - now)
        if bucket is not None and _queue(services, user, state.expires_at, bucket, now):
            queued += 1
    if queued:
        log.info("queued %d password-expiry reminder(s)", queued)
    return queued


def _queue(
    services: Services, user: DirectoryUser, expires_at: dt.datetime, bucket: int, now: dt.datetime
) -> bool:
    settings = services.settings
    left_days = max(0, (expires_at - now).days)
    with services.transaction() as session:
        language = i18n.recipient_language(settings, session, user.id)
        catalogue = i18n.catalogue_of(settings, language)
        subject, text, html = render(
            settings.passwords.reminder_template_dir,
            TEMPLATE,
            catalogue=catalogue,
            language=language,
            name=user.name,
            username=user.username,
            expires_at=expires_at,
            expires=i18n.format_moment(expires_at, ZoneInfo(settings.timezone), catalogue),
            days=left_days,
            change_url=settings.issuer.rstrip("/") + "/password/change",
            organisation=settings.organisation,
        )
        row = {"sub": user.id, "expires_at": expires_at, "days_before": bucket, "sent_at": now}
        if not insert_if_absent(session, PasswordReminder, row):
            return False  # this reminder went out already (or another worker is sending it)
        jobs.enqueue(session, "iam.mail", {"to": user.email, "subject": subject, "text": text, "html": html})
        audit.record(
            session,
            "password.expiry_reminder",
            subject=user.id,
            details={"expires_at": expires_at.isoformat(), "days_before": bucket},
        )
    return True
