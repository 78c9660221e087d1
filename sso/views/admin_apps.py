"""The console's Applications pages (registered by ``sso`` into ``iam.admin``): the list, a
wizard that registers an application with every setting ``iam client add`` has, editing,
disabling, removing, rotating the secret (shown once, never stored in clear nor logged), the
public keys for ``private_key_jwt``, and each application's recent activity (audit log).

Validation is :func:`sso.clients.validate_spec` — the same as the CLI's; its message is shown
next to the setting at fault. Role: IT administrator (the auditor reads)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms.fields.choices import SelectChoice  # type: ignore[attr-defined]  # wtforms >= 3.3

from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.admin.forms import ReasonForm
from iam.errors import NotFound, ValidationFailed
from iam.web import db, reader, services
from sso import clients as client_service
from sso.forms import KINDS, ApplicationForm
from sso.mfa import levels
from sso.models import AuthMethod, Client

bp = Blueprint("admin_apps", __name__, url_prefix="/admin/applications")
IT = frozenset({Role.IT_ADMIN})


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _form(kind: str | None = None, client: Client | None = None) -> ApplicationForm:
    form = ApplicationForm()
    form.require_acr.choices = [SelectChoice("", str(_l("No minimum (any sign-in)")))] + [
        SelectChoice(name, name) for name in levels.names(services().settings.mfa)
    ]
    if request.method == "GET":
        if client is not None:
            spec = client_service.spec_of(client)
            form.name.data = spec.name
            form.client_id.data = spec.client_id
            form.grant_types.data = spec.grant_types
            form.redirect_uris.data = "\n".join(spec.redirect_uris)
            form.post_logout_redirect_uris.data = "\n".join(spec.post_logout_redirect_uris)
            form.backchannel_logout_uri.data = spec.backchannel_logout_uri or ""
            form.jwks_uri.data = spec.jwks_uri or ""
            form.token_endpoint_auth_method.data = spec.token_endpoint_auth_method
            form.scopes.data = " ".join(spec.scopes)
            form.audiences.data = "\n".join(spec.audiences)
            form.allowed_networks.data = "\n".join(spec.allowed_networks)
            form.agency_code.data = spec.agency_code or ""
            form.require_acr.data = spec.require_acr or ""
            form.id_token_alg.data = spec.id_token_alg or ""
            form.require_consent.data = spec.require_consent
            form.description.data = spec.description or ""
            form.launch_uri.data = spec.launch_uri or ""
            form.logo_uri.data = spec.logo_uri or ""
            form.allowed_groups.data = "\n".join(spec.allowed_groups)
        else:
            defaults = KINDS.get(kind or "custom", KINDS["custom"])
            form.kind.data = kind
            form.grant_types.data = list(defaults["grant_types"])  # type: ignore[call-overload]
            form.token_endpoint_auth_method.data = defaults["token_endpoint_auth_method"]
            form.scopes.data = " ".join(client_service.ClientSpec(name="").scopes)
            if kind == "service":
                form.scopes.data = ""
    return form


def _spec(form: ApplicationForm, existing: Client | None) -> client_service.ClientSpec:
    """The registration the form describes (:class:`sso.clients.InvalidClient` if unreadable)."""
    method = form.token_endpoint_auth_method.data or AuthMethod.CLIENT_SECRET_BASIC
    jwks: dict[str, Any] | None = None
    jwks_uri = (form.jwks_uri.data or "").strip() or None
    if method == AuthMethod.PRIVATE_KEY_JWT and not jwks_uri:
        if (form.jwks.data or "").strip():
            jwks = client_service.parse_public_keys(form.jwks.data or "")
        elif existing is not None and existing.jwks:
            jwks = dict(existing.jwks)  # blank while editing: keep the registered keys
    return client_service.ClientSpec(
        name=form.name.data or "",
        client_id=(form.client_id.data or "").strip() or None,
        redirect_uris=_lines(form.redirect_uris.data),
        post_logout_redirect_uris=_lines(form.post_logout_redirect_uris.data),
        grant_types=list(form.grant_types.data or []),
        scopes=(form.scopes.data or "").split(),
        audiences=_lines(form.audiences.data),
        token_endpoint_auth_method=method,
        backchannel_logout_uri=(form.backchannel_logout_uri.data or "").strip() or None,
        allowed_networks=_lines(form.allowed_networks.data),
        agency_code=(form.agency_code.data or "").strip() or None,
        require_consent=bool(form.require_consent.data),
        jwks=jwks,
        jwks_uri=jwks_uri,
        id_token_alg=form.id_token_alg.data or None,
        require_acr=form.require_acr.data or None,
        description=(form.description.data or "").strip() or None,
        launch_uri=(form.launch_uri.data or "").strip() or None,
        logo_uri=(form.logo_uri.data or "").strip() or None,
        allowed_groups=_lines(form.allowed_groups.data),
    )


def _forget_private_key(form: ApplicationForm) -> None:
    """A private key pasted by mistake is never sent back to the browser."""
    if "PRIVATE KEY" in (form.jwks.data or "") or '"d"' in (form.jwks.data or ""):
        form.jwks.data = ""


def _field_errors(form: ApplicationForm) -> dict[str, str]:
    return {name: str(errors[0]) for name, errors in form.errors.items() if errors and name != "csrf_token"}


def _check(form: ApplicationForm, existing: Client | None) -> tuple[dict[str, str], str]:
    """Every refusal of a submitted form at once (the form's fields, the registration rules,
    the reason), and the reason. Nothing is stored here."""
    if form.csrf_token.errors or not form.is_submitted():
        abort(400)
    form.validate()
    errors = _field_errors(form)
    reason = (form.reason.data or "").strip()
    if len(reason) < 3:
        errors["reason"] = _("Say why: the audit log keeps the reason.")
    if not set(errors) - {"reason"}:
        try:
            spec = _spec(form, existing)
            client_service.validate_spec(spec, allow_http=services().settings.dev_mode)
        except client_service.InvalidClient as exc:
            errors[exc.field or "form"] = str(exc)
    if errors:
        _forget_private_key(form)
    return errors, reason


def _secret_page(client: Client, secret: str, *, created: bool) -> Response:
    """The only time the secret is shown: this response, never cached, never in a URL,
    a flash message, a log or the audit log."""
    resp = make_response(
        render_template("sso/admin/secret.html", client=client, secret=secret, created=created)
    )
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Pragma"] = "no-cache"
    return resp


# -- list -----------------------------------------------------------------------------------------
@bp.get("/")
@require_admin(Role.IT_ADMIN)
def index() -> Any:
    rows = client_service.list_clients(reader())
    return render_template("sso/admin/applications.html", clients=rows)


# -- the wizard -----------------------------------------------------------------------------------
@bp.route("/new", methods=["GET", "POST"])
@require_admin(Role.IT_ADMIN)
def new() -> Any:
    kind = request.args.get("kind") or request.form.get("kind") or None
    if kind is not None and kind not in KINDS:
        kind = None
    if kind is None:
        return render_template("sso/admin/new_kind.html", kinds=KINDS)
    form = _form(kind)
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors, reason = _check(form, None)
        if not errors:
            try:
                row, secret = client_service.create_client(
                    db(),
                    services().cipher,
                    _spec(form, None),
                    actor=admin_actor(),
                    allow_http=services().settings.dev_mode,
                    reason=reason,
                    ip=g.get("client_ip"),
                )
            except client_service.InvalidClient as exc:
                db().rollback()
                errors[exc.field or "form"] = str(exc)
            except ValidationFailed as exc:  # a client id taken, …
                db().rollback()
                errors["form"] = str(exc)
            else:
                if secret:
                    return _secret_page(row, secret, created=True)
                flash(_("The application %(name)s is registered.", name=row.name))
                return redirect(url_for("admin_apps.detail", client_id=row.client_id))
    status = 422 if errors else 200
    return render_template(
        "sso/admin/application_form.html",
        form=form,
        errors=errors,
        kind=kind,
        kind_label=KINDS[kind]["label"],
        client=None,
    ), status


# -- one application ------------------------------------------------------------------------------
def _client(client_id: str, session: Any = None) -> Client:
    try:
        return client_service.get_client(session or reader(), client_id)
    except NotFound:
        abort(404)


@bp.get("/<client_id>")
@require_admin(Role.IT_ADMIN)
def detail(client_id: str) -> Any:
    session = reader()
    client = _client(client_id, session)
    return render_template(
        "sso/admin/application.html",
        client=client,
        activity=client_service.recent_activity(session, client_id),
        reason_form=ReasonForm(),
        secret_based=client.token_endpoint_auth_method in client_service.SECRET_METHODS,
    )


@bp.route("/<client_id>/edit", methods=["GET", "POST"])
@require_admin(Role.IT_ADMIN)
def edit(client_id: str) -> Any:
    client = _client(client_id, db())
    form = _form(client=client)
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors, reason = _check(form, client)
        if not errors:
            try:
                spec = _spec(form, client)
                spec.client_id = client_id
                row, secret = client_service.update_client(
                    db(),
                    services().cipher,
                    client_id,
                    spec,
                    actor=admin_actor(),
                    allow_http=services().settings.dev_mode,
                    reason=reason,
                    ip=g.get("client_ip"),
                )
            except client_service.InvalidClient as exc:
                db().rollback()
                errors[exc.field or "form"] = str(exc)
            except ValidationFailed as exc:
                db().rollback()
                errors["form"] = str(exc)
            else:
                if secret:
                    return _secret_page(row, secret, created=False)
                flash(_("The changes to %(name)s are saved.", name=row.name))
                return redirect(url_for("admin_apps.detail", client_id=client_id))
    return render_template(
        "sso/admin/application_form.html",
        form=form,
        errors=errors,
        kind=None,
        kind_label=None,
        client=client,
    ), (422 if errors else 200)


def _reason() -> str | None:
    form = ReasonForm()
    if not form.validate_on_submit():
        return None
    return (form.reason.data or "").strip()


@bp.post("/<client_id>/disable")
@require_admin(Role.IT_ADMIN)
def disable(client_id: str) -> Any:
    return _set_disabled(client_id, True)


@bp.post("/<client_id>/enable")
@require_admin(Role.IT_ADMIN)
def enable(client_id: str) -> Any:
    return _set_disabled(client_id, False)


def _set_disabled(client_id: str, disabled: bool) -> Any:
    _client(client_id, db())
    reason = _reason()
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
    else:
        row = client_service.set_disabled(
            db(), client_id, disabled, actor=admin_actor(), reason=reason, ip=g.get("client_ip")
        )
        flash(
            _("%(name)s is disabled: every request of it is refused.", name=row.name)
            if disabled
            else _("%(name)s is enabled again.", name=row.name)
        )
    return redirect(url_for("admin_apps.detail", client_id=client_id))


@bp.post("/<client_id>/remove")
@require_admin(Role.IT_ADMIN)
def remove(client_id: str) -> Any:
    client = _client(client_id, db())
    reason = _reason()
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("admin_apps.detail", client_id=client_id))
    name = client.name
    client_service.remove_client(db(), client_id, actor=admin_actor(), reason=reason, ip=g.get("client_ip"))
    flash(_("%(name)s is removed; its codes and refresh tokens went with it.", name=name))
    return redirect(url_for("admin_apps.index"))


@bp.post("/<client_id>/rotate-secret")
@require_admin(Role.IT_ADMIN)
def rotate_secret(client_id: str) -> Any:
    _client(client_id, db())
    reason = _reason()
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("admin_apps.detail", client_id=client_id))
    try:
        secret = client_service.rotate_secret(
            db(), services().cipher, client_id, actor=admin_actor(), reason=reason, ip=g.get("client_ip")
        )
    except ValidationFailed as exc:
        db().rollback()
        flash(_("Nothing was changed: %(why)s", why=str(exc)))
        return redirect(url_for("admin_apps.detail", client_id=client_id))
    return _secret_page(client_service.get_client(db(), client_id), secret, created=False)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage("admin_apps.index", _l("Applications"), Section.APPLICATIONS, roles=IT, order=10),
    )
