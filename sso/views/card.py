"""Card sign-in pages (``/card/…``) and the administrators' JSON API (``/api/v1/x509/…``).

Where the certificate comes from:
- gunicorn terminating TLS itself (``iam serve --certfile … --ca-certs … --client-certs
  optional``): the peer certificate of ``environ["gunicorn.socket"]``;
- nginx in front: the URL-escaped PEM in ``x509.client_cert_header`` (and nginx's verdict in
  ``x509.client_verify_header``), believed only when the request comes from an address in
  ``server.trusted_proxies``; from anyone else — and on a connection gunicorn terminates
  itself — the header is ignored and the attempt audited.
Either way the chain, dates, usages and revocation are checked here again (``sso.x509``).
"""

from __future__ import annotations

import ssl
from typing import Any

from cryptography import x509
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from iam import audit, lockout, web
from iam.directory import errors as dir_errors
from iam.errors import IamError, NotFound
from iam.i18n import message_of
from iam.models.identity import Identity
from iam.web import db, services
from sso.mfa import hooks
from sso.views import signin
from sso.views.common import _error_page, _record, _settings, current_sso
from sso.x509 import service as cards
from sso.x509.certs import CardFacts, CertificateRefused, from_escaped_pem

bp = Blueprint("card", __name__)


class CardForm(FlaskForm):  # type: ignore[misc]
    action = HiddenField()


class BindForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(_l("Your password"), validators=[DataRequired(), Length(max=512)])


# -- reading the presented certificate ---------------------------------------------------------
def presented_certificates() -> list[x509.Certificate]:
    """The client's certificate (and any chain the proxy forwarded), or []."""
    name = _settings().x509.client_cert_header
    header = request.headers.get(name, "")
    remote = request.remote_addr or ""
    sock = request.environ.get("gunicorn.socket")
    if isinstance(sock, ssl.SSLSocket):
        if header:  # no proxy in front: whoever sent it is the client itself
            _forged_header_ignored(name, remote, tls_terminated=True)
        der = sock.getpeercert(binary_form=True)
        return [x509.load_der_x509_certificate(der)] if der else []
    if not header:
        return []
    proxies = _settings().server.trusted_proxies
    if not (proxies and web._in(remote, proxies)):
        _forged_header_ignored(name, remote, tls_terminated=False)
        return []
    try:
        return from_escaped_pem(header)
    except CertificateRefused:
        return []


def _forged_header_ignored(name: str, remote: str, *, tls_terminated: bool) -> None:
    if not g.get("card_forged_recorded"):
        g.card_forged_recorded = True
        _record(
            "card.untrusted_header_ignored",
            severity=audit.Severity.SIGNIFICANT,
            outcome="failure",
            details={"header": name, "peer": remote, "tls_terminated_here": tls_terminated},
        )


def proxy_verdict() -> str | None:
    """nginx's own verification result (``$ssl_client_verify``: ``SUCCESS``, ``FAILED:reason``,
    ``NONE``), from the trusted proxy only; kept in the audit event, never decisive."""
    if isinstance(request.environ.get("gunicorn.socket"), ssl.SSLSocket):
        return None
    value = request.headers.get(_settings().x509.client_verify_header, "")
    proxies = _settings().server.trusted_proxies
    if not value or not (proxies and web._in(request.remote_addr or "", proxies)):
        return None
    return value[:200]


def _enabled() -> None:
    if not _settings().x509.enabled:
        abort(404)


def _facts(certs: list[x509.Certificate]) -> CardFacts | None:
    return CardFacts.of(certs[0]) if certs else None


# -- sign-in -----------------------------------------------------------------------------------
@bp.route("/card/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with the certificate presented on this TLS connection."""
    _enabled()
    certs = presented_certificates()
    form = CardForm()
    if request.method == "POST" and form.validate_on_submit() and certs:
        try:
            user, checked = cards.sign_in(
                db(),
                cards.validator_for(services()),
                services().directory,
                certs,
                ip=g.client_ip,
                user_agent=g.user_agent,
                proxy_verify=proxy_verdict(),
            )
        except CertificateRefused as exc:
            offer = exc.reason == "no_account" and _settings().x509.registration
            return render_template(
                "sso/card_login.html",
                form=form,
                facts=_facts(certs),
                error=message_of(exc),
                reason=exc.reason,
                offer_request=offer,
                client_name=signin._flow_client_name(),
            ), 403
        except dir_errors.DirectoryUnavailable:
            return render_template(
                "sso/card_login.html",
                form=form,
                facts=_facts(certs),
                error=_("Sign-in is unavailable right now. Please try again in a few minutes."),
                reason="directory_unavailable",
                client_name=signin._flow_client_name(),
            ), 503
        return signin.complete_authentication(user, amr=checked.amr, method="card")
    error = None
    if request.method == "POST":
        error = _("No card certificate was presented.") if not certs else _("The form expired; try again.")
    return render_template(
        "sso/card_login.html",
        form=form,
        facts=_facts(certs),
        error=error,
        reason=None,
        client_name=signin._flow_client_name(),
    ), (400 if error else 200)


@bp.post("/card/request")
def request_account() -> Any:
    """A valid card without an account: ask an administrator for one (R-MFA-2)."""
    _enabled()
    if not _settings().x509.registration:
        abort(404)
    form = CardForm()
    certs = presented_certificates()
    if not form.validate_on_submit() or not certs:
        abort(400)
    try:
        checked = cards.validator_for(services()).validate(certs)
        row = cards.request_account(db(), checked, ip=g.client_ip, user_agent=g.user_agent)
    except CertificateRefused as exc:
        return _error_page(_("The request was not accepted"), message_of(exc), 403)
    except IamError as exc:
        return _error_page(_("The request was not accepted"), message_of(exc), 409)
    return render_template("sso/card_requested.html", request_row=row)


# -- binding a card to the signed-in account ---------------------------------------------------
def _password_ok(sub: str, password: str) -> bool:
    """The signed-in user's password, re-entered; wrong ones count towards the provider's
    lockout exactly as on the sign-in page (no guessing through this form)."""
    identity = db().get(Identity, sub)
    if identity is None:
        return False
    # counted inside this request's transaction: the signed-in session already holds it
    settings, s = services().settings.lockout, db()
    account = lockout.Account(identity.username, identity.sub)
    if lockout.begin_attempt(s, settings, account=account, ip=g.client_ip).locked:
        return False
    outcome = lockout.Outcome.OTHER
    try:
        services().directory.authenticate(identity.username, password)
        outcome = lockout.Outcome.SUCCESS
    except (dir_errors.PasswordExpired, dir_errors.MustChangePassword):
        outcome = lockout.Outcome.SUCCESS  # the password is right; its age is the sign-in's business
    except dir_errors.InvalidCredentials:
        outcome = lockout.Outcome.FAILURE
    except dir_errors.DirectoryError:  # locked or disabled in AD, unavailable
        pass
    finally:
        lockout.finish_attempt(
            s, settings, account=account, ip=g.client_ip, user_agent=g.user_agent, outcome=outcome
        )
    return outcome is lockout.Outcome.SUCCESS


@bp.route("/card/bind", methods=["GET", "POST"])
def bind() -> Any:
    """Bind the presented card to the signed-in account, after the password is re-entered."""
    _enabled()
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    certs = presented_certificates()
    form = BindForm()
    error: str | None = None
    if form.validate_on_submit():
        if not certs:
            error = _("No card certificate was presented.")
        elif not _password_ok(sso.sub, str(form.password.data or "")):
            error = _("Wrong password.")
            _record("card.bind_refused", outcome="failure", actor=sso.sub, details={"reason": "password"})
        else:
            try:
                checked = cards.validator_for(services()).validate(certs)
                cards.bind(
                    db(),
                    _settings(),
                    services().directory,
                    checked,
                    sub=sso.sub,
                    actor=sso.sub,
                    ip=g.client_ip,
                )
            except (CertificateRefused, IamError) as exc:
                error = message_of(exc)
                _record(
                    "card.bind_refused",
                    outcome="failure",
                    actor=sso.sub,
                    details={"reason": getattr(exc, "reason", "conflict")},
                )
            else:
                flash(_("The card was bound to your account. You can now sign in with it."))
                return redirect(url_for("card.bind"))
    elif request.method == "POST":
        error = _("Enter your password.")
    bindings = cards.list_bindings(db(), sub=sso.sub)
    return render_template(
        "sso/card_bind.html", form=form, facts=_facts(certs), error=error, bindings=bindings
    ), (400 if error else 200)


@bp.post("/card/bindings/<binding_id>/remove")
def remove_binding(binding_id: str) -> Any:
    """The account holder removes one of their cards (password re-entered)."""
    _enabled()
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    form = BindForm()
    if not form.validate_on_submit() or not _password_ok(sso.sub, str(form.password.data or "")):
        flash(_("Wrong password."))
        return redirect(url_for("card.bind"))
    try:
        cards.revoke_binding(
            db(),
            binding_id=binding_id,
            actor=sso.sub,
            reason="removed by the holder",
            ip=g.client_ip,
            owner=sso.sub,
        )
    except NotFound:
        abort(404)
    flash(_("The card was removed from your account."))
    return redirect(url_for("card.bind"))


# -- plug into the MFA pages -------------------------------------------------------------------
def _card_devices(s: Any, sub: str) -> list[hooks.Device]:
    return [
        hooks.Device(
            kind="card",
            label=str(_l("Smart card")),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            detail=row.subject,
            remove_endpoint="card.remove_binding",
            remove_args={"binding_id": row.id},
        )
        for row in cards.list_bindings(s, sub=sub)
    ]


def _card_available(s: Any, sub: str) -> bool:
    return bool(_settings().x509.enabled) and cards.has_card(s, sub)


def _register_with_the_mfa_pages() -> None:
    """The card on the step-up page and under "My security devices" (done per app, so a
    registry changed by someone else is put right at the next app start)."""
    hooks.register_method(
        hooks.SignInMethod(
            key="card",
            label=_l("Smart card"),
            endpoint="card.login",
            amr=("sc",),
            available=_card_available,
            order=10,
        )
    )
    hooks.register_device_source(_card_devices)


def init_app(app: Any, csrf: Any) -> None:
    """Register the pages and the API (Bearer-token POSTs carry no CSRF token). The API's routes
    are added to :data:`bp` by :mod:`sso.views.card_api`, which the caller imports first."""
    app.register_blueprint(bp)
    _register_with_the_mfa_pages()
    app.jinja_env.globals["card_sign_in"] = app.extensions["iam.settings"].x509.enabled
    from sso.x509 import openapi

    app.extensions.setdefault("iam.openapi_paths", []).append(openapi.paths())
