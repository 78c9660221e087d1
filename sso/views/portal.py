"""The portal (``/``): the applications a signed-in person may open, and "my access" — what
they hold and why (issue 13). The applications are the registered clients with a launch URL,
filtered by the same "who may use it" check ``/authorize`` enforces."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import access, audit, clock
from iam.directory import errors as dir_errors
from iam.entitlements import Origin
from iam.models.identity import Identity
from iam.pages import NavLink, error_page, register_nav
from iam.passwords import service as passwords
from iam.services import Services
from iam.web import CSP_IMG_SOURCES, db, services
from sso import clients as client_service
from sso import service
from sso.mfa.models import TotpCredential
from sso.models import Client, SsoSession
from sso.views.common import _error_page, bp, current_sso
from sso.views.policy import pending_for_current
from sso.x509.models import CardBinding

ORIGINS = {
    Origin.BIRTHRIGHT: _l("Birthright (your position)"),
    Origin.HR_EVENT: _l("Kept after an HR change"),
    Origin.PIM_DECISION: _l("Privileged access (PIM)"),
    Origin.UNKNOWN: _l("Found in the directory"),
}


def _signed_in() -> bool:
    return current_sso() is not None


def register_navigation(app: Flask) -> None:
    register_nav(
        app,
        NavLink("sso.index", _l("Applications"), _signed_in, order=5),
        NavLink("sso.my_access", _l("My access"), _signed_in, order=15),
    )


def _unavailable() -> Any:
    return _error_page(
        _("Your applications cannot be shown right now"),
        _("The directory could not be asked which groups you belong to. Please try again in a few minutes."),
        503,
    )


def portal_apps(session: Session, groups: list[str]) -> list[Client]:
    """Enabled clients with a launch URL that a member of ``groups`` may use, by name."""
    rows = session.scalars(
        select(Client).where(Client.disabled.is_(False), Client.launch_uri.is_not(None)).order_by(Client.name)
    )
    return [c for c in rows if c.launch_uri and client_service.may_use(c, groups)]


@bp.get("/")
def index() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    if pending_for_current():
        return redirect(url_for("sso.acknowledge"))
    try:
        groups = services().directory.user_groups(sso.sub)
    except dir_errors.DirectoryError:
        return _unavailable()
    identity = db().get(Identity, sso.sub)
    g.setdefault(CSP_IMG_SOURCES, ("https:",))  # application logos may live on the applications' sites
    return render_template("sso/portal.html", apps=portal_apps(db(), groups), identity=identity)


@bp.get("/my-access")
def my_access() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    if pending_for_current():
        return redirect(url_for("sso.acknowledge"))
    svc = services()
    try:
        groups = access.groups(svc, db(), sso.sub)
        user = svc.directory.get_user(sso.sub)
    except dir_errors.DirectoryError:
        return _unavailable()
    expiry = passwords.effective_expiry(svc.password_profile, user, clock.now()) if user else None
    return render_template(
        "sso/my_access.html",
        identity=db().get(Identity, sso.sub),
        groups=groups,
        origins=ORIGINS,
        expiry=expiry,
        sections=access.sections(svc, db(), sso.sub),
    )


@access.section("sso.devices", order=40)
def _devices(services: Services, session: Session, sub: str) -> access.Section:
    rows: list[list[Any]] = []
    for t in session.scalars(
        select(TotpCredential)
        .where(TotpCredential.sub == sub, TotpCredential.confirmed_at.is_not(None))
        .order_by(TotpCredential.created_at)
    ):
        rows.append([_("Authenticator app"), t.label, t.confirmed_at, t.last_used_at])
    for c in session.scalars(
        select(CardBinding)
        .where(CardBinding.sub == sub, CardBinding.revoked_at.is_(None))
        .order_by(CardBinding.created_at)
    ):
        rows.append([_("Smart card"), c.subject, c.created_at, c.last_used_at])
    return access.Section(
        title=_l("Security devices"),
        columns=[_l("Kind"), _l("Name"), _l("Added"), _l("Last used")],
        rows=rows,
        empty=_l("You have no second factor or card yet."),
    )


@access.section("sso.sessions", order=50)
def _sessions(services: Services, session: Session, sub: str) -> access.Section:
    return access.Section(
        title=_l("Sessions"),
        columns=[_l("Started"), _l("Last active"), _l("Address"), _l("Browser")],
        rows=[
            [s.created_at, s.last_seen_at, s.ip, (s.user_agent or "")[:60]]
            for s in service.user_sessions(session, sub)
        ],
        empty=_l("No sessions."),
    )


def require_assignment(row: Client, sso: SsoSession, prompt: set[str], fail: Any) -> Any:
    """The client's "who may use it" (issue 13): a person outside its groups is refused after
    signing in. ``prompt=none`` gets ``access_denied`` at the redirect URI (no page may be
    shown); otherwise our refusal page says why, and its link returns ``access_denied`` to the
    application (RFC 6749 4.1.2.1), so the application learns the outcome too."""
    if not row.allowed_groups:
        return None
    try:
        groups = services().directory.user_groups(sso.sub)
    except dir_errors.DirectoryError:
        return _error_page(
            _("Sign-in is unavailable right now. Please try again in a few minutes."),
            _("The directory could not be asked which groups you belong to."),
            503,
        )
    if client_service.may_use(row, groups):
        return None
    audit.record_refusal(
        db(),
        "authorize.not_assigned",
        actor=sso.sub,
        subject=sso.sub,
        client_id=row.client_id,
        ip=g.client_ip,
        user_agent=g.user_agent,
        details={"allowed_groups": list(row.allowed_groups)},
    )
    denied = fail("access_denied", "You are not assigned to this application.")
    if "none" in prompt:
        return denied
    return error_page(
        403,
        title=_("You may not use %(app)s", app=row.name),
        message=_(
            "You are signed in, but this application is open only to members of certain groups, "
            "and you are not one of them. If you need it for your work, ask your manager or the "
            "help desk to assign it to you."
        ),
        next_href=denied.location,
        next_label=_("Return to %(app)s", app=row.name),
    )
