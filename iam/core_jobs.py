"""The core's job handlers: directory writes and notifications, retried until they succeed."""

from __future__ import annotations

import logging
import smtplib
from email.header import Header
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from iam import audit, i18n
from iam.directory.errors import DirectoryUnavailable, NoSuchEntry
from iam.jobs import RetryLater, handler, periodic
from iam.models.audit import AuditEvent
from iam.siem import jobs as _siem_jobs  # noqa: F401 — registers the SIEM stream

if TYPE_CHECKING:
    from iam.services import Services

log = logging.getLogger("iam.jobs")


@handler("iam.directory.disable")
def _disable(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        services.directory.disable(str(payload["user_id"]))
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc
    except NoSuchEntry:
        log.warning("disable: user %s no longer exists in the directory", payload["user_id"])


@handler("iam.directory.enable")
def _enable(services: Services, session: Session, payload: dict[str, Any]) -> None:
    try:
        services.directory.enable(str(payload["user_id"]))
    except DirectoryUnavailable as exc:
        raise RetryLater(str(exc)) from exc


class _MailPolicy(EmailPolicy):
    """The standard policy, but a non-ASCII subject is folded by the classic RFC 2047 encoder:
    Python 3.11's folder drops the space where it splits a long one between two encoded words
    (``… đã`` + ``được …`` arrives as ``đãđược``), which the translated subjects reach easily."""

    def _subject(self, name: str, value: Any) -> str | None:
        text = str(value)
        if name.lower() != "subject" or text.isascii():
            return None
        return f"{name}: {Header(text, 'utf-8', header_name=name).encode(linesep=self.linesep)}{self.linesep}"

    def fold(self, name: str, value: Any) -> str:
        return self._subject(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = self._subject(name, value)
        return folded.encode("ascii") if folded else super().fold_binary(name, value)


MAIL_POLICY = _MailPolicy()


def send_mail(services: Services, *, to: str, subject: str, body: str, html: str | None = None) -> None:
    """Send a mail (plain text, with an HTML alternative when given) through the configured
    relay (raises on failure: jobs retry)."""
    m = services.settings.mail
    if not m.host:
        log.warning("mail not configured; not sending %r to %s", subject, to)
        return
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = m.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    with smtplib.SMTP(m.host, m.port, timeout=10) as smtp:
        if m.starttls:
            smtp.starttls()
        if m.username:
            smtp.login(m.username, m.password.get_secret_value())
        smtp.send_message(msg)


@handler("iam.notify_critical")
def _notify_critical(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """R-AUD-2: critical events notify the security officer automatically."""
    to = services.settings.audit.security_officer_email
    ev = session.get(AuditEvent, int(payload["event_id"]))
    if not to or ev is None:
        return
    t = i18n.for_recipient(services.settings, session, email=to)
    rows = [
        (t.gettext("Event"), ev.event),
        (t.gettext("Outcome"), ev.outcome),
        (t.gettext("Time"), f"{ev.at:%Y-%m-%d %H:%M:%S} UTC"),
        (t.gettext("Actor"), ev.actor or "-"),
        (t.gettext("Subject"), ev.subject or "-"),
        (t.gettext("Address"), ev.ip or "-"),
        (t.gettext("Audit event id"), str(ev.id)),
    ]
    body = (
        t.gettext("A critical security event was recorded.")
        + "\n\n"
        + "".join(f"{label + ':':<16}{value}\n" for label, value in rows)
    )
    send_mail(services, to=to, subject=f"[IAM critical] {ev.event}", body=body)


@handler("iam.mail")
def _mail(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """A mail rendered when it was queued (e.g. a password-expiry reminder)."""
    send_mail(
        services,
        to=str(payload["to"]),
        subject=str(payload["subject"]),
        body=str(payload["text"]),
        html=payload.get("html"),
    )


@periodic("iam.passwords.reminders", lambda settings: float(settings.passwords.reminder_interval))
def password_reminders(services: Services) -> None:
    from iam.passwords.reminders import send_due_reminders

    send_due_reminders(services)


@periodic("iam.audit.seal", 1.0)
def seal_audit(services: Services) -> None:
    """Link new audit rows into the hash chain (R-AUD-3)."""
    with services.transaction() as session:
        audit.seal(session)


from iam.backup import jobs as _backup_jobs  # noqa: E402, F401 — registers the drill check


@periodic("iam.audit.archive", lambda settings: float(settings.audit_archive.interval))
def archive_audit(services: Services) -> None:
    """The weekly signed archive of the audit log; a missed week is a critical alert (R-AUD-3)."""
    from iam import audit_archive

    audit_archive.run(services)


@periodic("iam.audit.review_reminders", lambda settings: float(settings.audit_review.interval))
def review_reminders(services: Services) -> None:
    """Remind the security officer of an overdue monthly audit review (Čačak Član 30)."""
    from iam.audit_report.review import remind_overdue

    remind_overdue(services)


@periodic("iam.audit.verify", 60.0)
def verify_audit(services: Services) -> None:
    """Verify the whole chain every ``admin.audit_verify_interval`` seconds (the time of the last
    verification is kept in the database); the console shows the latest result (R-AUD-3)."""
    from iam.admin.service.audit_search import verify_if_due

    verify_if_due(services, float(services.settings.admin.audit_verify_interval))


@handler("iam.audit.verify")
def _verify_requested(services: Services, session: Session, payload: dict[str, Any]) -> None:
    """A verification a security officer asked for in the console."""
    from iam.admin.service.audit_search import verify_and_record

    verify_and_record(services, actor=str(payload.get("actor") or "system"))
