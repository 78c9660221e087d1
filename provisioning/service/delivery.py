"""Delivering the initial password: a one-time activation link mailed to the manager, or a
"sealed envelope" PDF (fpdf2) printed by an operator. The password is kept AES-GCM encrypted
only until it is delivered, then erased; the link's token is stored hashed."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit, clock, jobs
from iam.crypto import random_token, token_hash
from iam.errors import NotFound
from provisioning.models import Activation, HrPerson, PersonStatus

if TYPE_CHECKING:
    from iam.services import Services

MAIL_JOB = "provisioning.mail_activation"
TOKEN_PREFIX = "hra_"  # noqa: S105 — a prefix, not a secret
ACTOR = "hr"


def _context(activation_id: str) -> bytes:
    return f"hr-activation:{activation_id}".encode()


def manager_email(session: Session, person: HrPerson) -> str | None:
    if person.manager_email:
        return person.manager_email
    if person.manager:
        manager = session.get(HrPerson, person.manager)
        if manager is not None and manager.email:
            return manager.email
    return None


def prepare(session: Session, services: Services, person: HrPerson, password: str) -> dict[str, Any]:
    """Keep the password for delivery (replacing an undelivered one) and queue the mail."""
    p = services.settings.provisioning
    for old in session.scalars(
        select(Activation).where(
            Activation.employee_number == person.employee_number, Activation.delivered_at.is_(None)
        )
    ):
        old.password_encrypted = None
        old.delivered_at = clock.now()
    method = p.password_delivery
    to = manager_email(session, person) if method == "activation_link" else None
    if method == "activation_link" and not to:
        method = "envelope"  # no manager to mail: print it
    row = Activation(
        employee_number=person.employee_number,
        username=person.username or "",
        method=method,
        expires_at=clock.now() + dt.timedelta(seconds=p.activation_lifetime),
    )
    session.add(row)
    session.flush()
    row.password_encrypted = services.cipher.encrypt(password.encode(), context=_context(row.id))
    if method == "activation_link":
        jobs.enqueue(session, MAIL_JOB, {"activation": row.id, "to": to}, dedup_key=f"hr-mail:{row.id}")
    return {"delivery": method, "activation": row.id}


def send_link(services: Services, session: Session, activation_id: str, to: str) -> None:
    """Job: a fresh one-time token (only its hash is kept), mailed to the manager."""
    from iam.core_jobs import send_mail

    row = session.get(Activation, activation_id)
    if row is None or row.delivered_at is not None or row.password_encrypted is None:
        return
    token = random_token(TOKEN_PREFIX)
    row.token_hash = token_hash(token)
    link = f"{services.settings.issuer}/hr/activate/{token}"
    body = (
        f"A new account was created for a member of your team: {row.username}.\n\n"
        f"Open this link once to see the initial password and hand it over in person:\n{link}\n\n"
        f"The link works once and expires {row.expires_at:%Y-%m-%d %H:%M} UTC. "
        "The password must be changed at the first sign-in.\n"
    )
    session.flush()
    send_mail(services, to=to, subject=f"New account {row.username}: initial password", body=body)


def _pending_by_token(session: Session, token: str) -> Activation | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(Activation).where(Activation.token_hash == token_hash(token)))
    if row is None or row.delivered_at is not None or row.password_encrypted is None:
        return None
    if row.expires_at <= clock.now():
        return None
    return row


def peek(session: Session, token: str) -> Activation | None:
    """The activation a link points to, if still usable (the page asks before revealing)."""
    return _pending_by_token(session, token)


def reveal(session: Session, services: Services, token: str, *, ip: str | None) -> tuple[str, str]:
    """Use the one-time link: returns (username, password) once, then erases the password."""
    row = _pending_by_token(session, token)
    if row is None:
        raise NotFound("This activation link is not valid, was already used or has expired.")
    assert row.password_encrypted is not None
    password = services.cipher.decrypt(row.password_encrypted, context=_context(row.id)).decode()
    row.password_encrypted = None
    row.delivered_at = clock.now()
    audit.record(
        session,
        "hr.password_delivered",
        severity=audit.Severity.SIGNIFICANT,
        actor="activation-link",
        ip=ip,
        details={"username": row.username, "method": "activation_link"},
    )
    return row.username, password


def withdraw(session: Session, employee_number: str, *, reason: str) -> int:
    """Erase the undelivered initial passwords of a person (a leaver): no envelope is printed
    and no link works for them any more. Audited; returns how many were withdrawn."""
    rows = list(
        session.scalars(
            select(Activation).where(
                Activation.employee_number == employee_number,
                Activation.delivered_at.is_(None),
                Activation.password_encrypted.is_not(None),
            )
        )
    )
    for row in rows:
        row.password_encrypted = None
        row.delivered_at = clock.now()
        audit.record(
            session,
            "hr.password_withdrawn",
            actor=ACTOR,
            details={"username": row.username, "method": row.method, "reason": reason},
        )
    return len(rows)


def envelopes(session: Session, services: Services, *, actor: str) -> list[tuple[str, str, str]]:
    """Undelivered envelope passwords of people who have not left: (employee_number, username,
    password), then erased. A leaver's are withdrawn instead of printed."""
    out = []
    for row in session.scalars(
        select(Activation)
        .where(Activation.method == "envelope", Activation.delivered_at.is_(None))
        .order_by(Activation.created_at)
    ):
        if row.password_encrypted is None:
            continue
        person = session.get(HrPerson, row.employee_number)
        if person is None or person.status == PersonStatus.LEFT:
            withdraw(session, row.employee_number, reason="the person has left")
            continue
        password = services.cipher.decrypt(row.password_encrypted, context=_context(row.id)).decode()
        row.password_encrypted = None
        row.delivered_at = clock.now()
        out.append((row.employee_number, row.username, password))
        audit.record(
            session,
            "hr.password_delivered",
            severity=audit.Severity.SIGNIFICANT,
            actor=actor,
            details={"username": row.username, "method": "envelope"},
        )
    return out


def envelope_pdf(items: list[tuple[str, str, str]], *, organisation: str, issuer: str) -> bytes:
    """One A5 "sealed envelope" sheet per person: username and initial password; the
    organisation's name as written (embedded Unicode font)."""
    from iam.pdf import FAMILY, document

    pdf = document(format=(148, 210))  # A5
    pdf.set_auto_page_break(auto=False)
    for employee_number, username, password in items:
        pdf.add_page()
        pdf.set_font(FAMILY, "B", 14)
        pdf.cell(0, 10, organisation, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FAMILY, "", 10)
        pdf.cell(0, 6, "Personal and confidential – open only in person", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
        pdf.set_font(FAMILY, "", 11)
        pdf.cell(0, 7, f"Employee number: {employee_number}", new_x="LMARGIN", new_y="NEXT")
        pdf.cell(0, 7, f"Username: {username}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Courier", "B", 14)  # generated passwords are ASCII; a fixed width reads best
        pdf.cell(0, 10, f"Initial password: {password}", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FAMILY, "", 9)
        pdf.ln(4)
        pdf.multi_cell(
            0,
            5,
            f"Sign in at {issuer} – you must choose a new password at the first sign-in. "
            "Destroy this sheet afterwards.",
        )
    return bytes(pdf.output())
