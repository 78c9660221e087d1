"""The provider's HTTP surface: OIDC endpoints and the sign-in pages. Thin: the rules live in
``sso.service``, ``sso.clients`` and the directory; this module maps them to HTTP."""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import unquote

from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import OAuth2Error
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from iam import audit, clock
from iam.directory import errors as dir_errors
from iam.directory.base import DirectoryUser
from iam.identities import upsert_identity
from iam.models.identity import Identity
from iam.passwords import service as passwords
from iam.web import db, reader, services
from sso import service
from sso.claims import SCOPE_CLAIMS, user_claims
from sso.forms import ChangePasswordForm, ConfirmForm, LoginForm
from sso.models import AuthMethod, Client, Consent, SsoSession
from sso.server import IamAuthorizationServer, OAuthClient, OAuthUser, load_client
from sso.tokens import TokenInvalid

log = logging.getLogger("sso.views")
bp = Blueprint("sso", __name__)

ACR_PASSWORD = "password"  # noqa: S105 — the name of an assurance level
CLIENT_ENDPOINTS = ("sso.token", "sso.introspect", "sso.revoke")


def server() -> IamAuthorizationServer:
    return current_app.extensions["sso.server"]  # type: ignore[no-any-return]


def _settings() -> Any:
    return services().settings


def _cookie_name() -> str:
    return str(_settings().session.cookie_name)


def current_sso() -> SsoSession | None:
    if "sso_session" not in g:
        row = service.load_sso_session(db(), _settings(), request.cookies.get(_cookie_name()))
        if row is not None and not server().user_is_active(row.sub):
            service.end_sso_session(db(), row, reason="account_inactive", actor="system")
            row = None
        g.sso_session = row
    return g.sso_session  # type: ignore[no-any-return]


def _set_session_cookie(response: Response, value: str) -> None:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    response.set_cookie(_cookie_name(), value, httponly=True, secure=secure, samesite="Lax", path="/")


def _clear_session_cookie(response: Response) -> None:
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    response.delete_cookie(_cookie_name(), path="/", secure=secure, httponly=True, samesite="Lax")


def _record(event: str, **kw: Any) -> int:
    """An audit event of this request: caller's address and user agent filled in (R-AUD-1)."""
    kw.setdefault("ip", g.client_ip)
    kw.setdefault("user_agent", g.user_agent)
    return audit.record(db(), event, **kw)


def _error_page(title: str, message: str, status: int = 400) -> Any:
    return render_template("sso/error.html", title=title, message=message), status


# -- discovery and keys -----------------------------------------------------------------------
@bp.get("/.well-known/openid-configuration")
def discovery() -> Any:
    iss = _settings().issuer
    auth_methods = [m.value for m in AuthMethod if m != AuthMethod.NONE]
    doc = {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/jwks",
        "end_session_endpoint": f"{iss}/logout",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint": f"{iss}/introspect",
        "scopes_supported": server().standard_scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["HS256", "RS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": sorted(
            {c for cs in SCOPE_CLAIMS.values() for c in cs}
            | {"iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "sid", "agency_code"}
        ),
        "acr_values_supported": [ACR_PASSWORD],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "ui_locales_supported": _settings().languages,
    }
    resp = jsonify(doc)
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/jwks")
def jwks() -> Any:
    resp = jsonify(current_app.extensions["sso.keyring"].jwks())
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


# -- authorization ----------------------------------------------------------------------------
def _flow_key() -> str:
    return hashlib.sha256(request.query_string).hexdigest()[:32]


@bp.get("/authorize")
def authorize() -> Any:
    srv = server()
    if not request.args.get("redirect_uri"):
        # OpenID Connect requires it; without it nothing can be checked or returned
        return _error_page(
            _("The application's sign-in request is invalid"), _("The request has no redirect_uri.")
        )
    try:
        grant = srv.get_consent_grant(end_user=None)
    except OAuth2Error as err:
        if getattr(err, "redirect_uri", None):
            return srv.handle_error_response(srv.create_oauth2_request(None), err)
        _record(
            "authorize.refused",
            outcome="failure",
            client_id=request.args.get("client_id"),
            details={"error": err.error, "reason": err.description or ""},
        )
        return _error_page(_("The application's sign-in request is invalid"), err.description or err.error)
    client: OAuthClient = grant.client
    redirect_uri = grant.redirect_uri

    def fail(error: str, description: str = "") -> Any:
        params = [("error", error)]
        if description:
            params.append(("error_description", description))
        if request.args.get("state"):
            params.append(("state", request.args["state"]))
        return redirect(add_params_to_uri(redirect_uri, params))

    prompt = set(request.args.get("prompt", "").split())
    if "none" in prompt and len(prompt) > 1:
        return fail("invalid_request", "prompt=none cannot be combined with other values")
    sso = current_sso()
    fresh = session.get("fresh_login") == _flow_key() and sso is not None
    needs_login = sso is None
    if sso is not None and not fresh:
        if "login" in prompt:
            needs_login = True
        max_age = request.args.get("max_age")
        if max_age is not None:
            try:
                age = int(max_age)
            except ValueError:
                return fail("invalid_request", "max_age must be a number of seconds")
            if (clock.now() - sso.auth_time).total_seconds() > age:
                needs_login = True
    if needs_login:
        if "none" in prompt:
            return fail("login_required")
        session["flow"] = {
            "query": request.query_string.decode(),
            "key": _flow_key(),
            "client": client.client_id,
        }
        session.pop("fresh_login", None)
        return redirect(url_for("sso.login"))
    assert sso is not None
    session.pop("fresh_login", None)
    row = client.row
    scope = grant.request.payload.scope or ""
    if row.require_consent:
        consent = db().get(Consent, (sso.sub, row.client_id))
        if consent is None or not set(scope.split()) <= set(consent.scope.split()) or "consent" in prompt:
            if "none" in prompt:
                return fail("consent_required")
            session["flow"] = {
                "query": request.query_string.decode(),
                "key": _flow_key(),
                "client": row.client_id,
            }
            return redirect(url_for("sso.consent"))
    service.link_client(db(), sso, row.client_id)
    ctx = service.AuthContext.of(sso)
    return srv.create_authorization_response(grant=grant, grant_user=OAuthUser(ctx))


def _resume() -> Any:
    flow = session.get("flow")
    if not flow:
        return redirect(url_for("sso.account"))
    session["fresh_login"] = flow["key"]
    session.pop("flow", None)
    return redirect(url_for("sso.authorize") + "?" + flow["query"])


def _flow_client_name() -> str | None:
    flow = session.get("flow")
    if not flow:
        return None
    row = db().get(Client, flow.get("client", ""))
    return row.name if row else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    error: str | None = None
    if form.validate_on_submit():
        username = str(form.username.data or "").strip()
        directory = services().directory
        try:
            user = directory.authenticate(username, str(form.password.data or ""))
        except (dir_errors.PasswordExpired, dir_errors.MustChangePassword) as exc:
            reason = "expired" if isinstance(exc, dir_errors.PasswordExpired) else "must_change"
            _record(
                "login.password_change_required",
                outcome="failure",
                actor=username,
                details={"reason": reason},
            )
            session["pwchange"] = {"username": username, "reason": reason}
            return redirect(url_for("sso.change_password"))
        except dir_errors.DirectoryError as exc:
            error, reason = _login_error(exc)
            _record(
                "login.failed",
                outcome="failure",
                actor=username,
                severity=audit.Severity.SIGNIFICANT
                if reason in ("locked", "disabled")
                else audit.Severity.NORMAL,
                details={"reason": reason},
            )
        else:
            return _complete_login(user, amr=["pwd"])
    elif request.method == "POST":
        error = _("Enter your username and password.")
    status = 401 if error and request.method == "POST" else 200
    return render_template("sso/login.html", form=form, error=error, client_name=_flow_client_name()), status


def _login_error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, dir_errors.AccountLocked):
        return _("Your account is locked. Try again later or contact the help desk."), "locked"
    if isinstance(exc, dir_errors.AccountDisabled):
        return _("Your account is disabled. Contact the help desk."), "disabled"
    if isinstance(exc, dir_errors.AccountExpired):
        return _("Your account has expired. Contact the help desk."), "account_expired"
    if isinstance(exc, dir_errors.LogonNotPermitted):
        return _("You may not sign in at this time or from this place."), "not_permitted"
    if isinstance(exc, dir_errors.DirectoryUnavailable):
        return _(
            "Sign-in is unavailable right now. Please try again in a few minutes."
        ), "directory_unavailable"
    return _("Wrong username or password."), "bad_credentials"


def _complete_login(user: Any, *, amr: list[str]) -> Any:
    s = db()
    identity = upsert_identity(s, user, kind=services().directory.kind)
    identity.last_login_at = clock.now()
    old = current_sso()
    if old is not None:
        service.end_sso_session(s, old, reason="new_login", actor=user.id)
    cookie, row = service.create_sso_session(
        s,
        _settings(),
        sub=user.id,
        acr=ACR_PASSWORD,
        amr=amr,
        ip=g.client_ip,
        user_agent=g.user_agent,
    )
    audit.record(
        s,
        "login.succeeded",
        actor=user.id,
        subject=user.id,
        ip=g.client_ip,
        user_agent=g.user_agent,
        details={"username": user.username, "amr": amr, "sid": row.sid},
    )
    g.sso_session = row
    resp = make_response(_resume())
    _set_session_cookie(resp, cookie)
    return resp


def _check_profile(username: str, current: str, new_password: str) -> None:
    """Raise PasswordRejected listing every rule of our profile the new password breaks."""
    violations = _profile_violations(username, current, new_password)
    if violations:
        raise dir_errors.PasswordRejected(" ".join(v.message for v in violations))


def _profile_violations(username: str, current: str, new_password: str) -> list[Any]:
    """Our profile's verdict on the new password, once the current one is proven (so the
    messages, which may mention personal data, are shown only to the account holder).
    Reads run outside the write lock: the directory write comes next."""
    directory = services().directory
    must_change = False
    user: DirectoryUser | None
    try:
        user = directory.authenticate(username, current)
    except (dir_errors.PasswordExpired, dir_errors.MustChangePassword):
        must_change = True
        user = directory.find_user(**({"upn": username} if "@" in username else {"username": username}))
    if user is None:
        return []
    facts = passwords.facts_for(user, must_change=must_change)
    return passwords.evaluate(
        reader(), services().password_profile, password=new_password, identity=facts, now=clock.now()
    )


@bp.route("/password/change", methods=["GET", "POST"])
def change_password() -> Any:
    pending = session.get("pwchange") or {}
    form = ChangePasswordForm()
    if request.method == "GET":
        form.username.data = pending.get("username") or ""
    error: str | None = None
    if form.validate_on_submit():
        username = str(form.username.data or "").strip()
        new_password = str(form.new_password.data or "")
        current = str(form.current_password.data or "")
        directory = services().directory
        try:
            _check_profile(username, current, new_password)
            directory.change_password(username, current, new_password)
        except dir_errors.PasswordRejected as exc:
            error = _("The new password was refused: %(reason)s", reason=str(exc))
            outcome = "rejected"
        except dir_errors.DirectoryError as exc:
            error, outcome = _login_error(exc)
        else:
            outcome = ""
        if error:
            _record(
                "password.change_failed",
                outcome="failure",
                actor=username,
                details={"reason": outcome},
            )
        else:
            session.pop("pwchange", None)
            try:
                user = directory.authenticate(username, new_password)
            except dir_errors.DirectoryError as exc:
                error, _reason = _login_error(exc)
            else:
                passwords.record_password_set(
                    db(),
                    user.id,
                    new_password,
                    by_admin=False,
                    actor=user.id,
                    profile=services().password_profile,
                    ip=g.client_ip,
                )
                _record(
                    "password.changed",
                    severity=audit.Severity.SIGNIFICANT,
                    actor=user.id,
                    subject=user.id,
                    details={"reason": pending.get("reason", "self_service")},
                )
                return _complete_login(user, amr=["pwd"])
    elif request.method == "POST":
        error = next(iter(form.errors.values()))[0] if form.errors else _("Fill in every field.")
    return render_template(
        "sso/change_password.html", form=form, error=error, reason=pending.get("reason")
    ), (400 if error else 200)


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Any:
    flow = session.get("flow")
    sso = current_sso()
    if not flow or sso is None:
        return redirect(url_for("sso.account"))
    row = db().get(Client, flow["client"])
    if row is None:
        abort(400)
    from urllib.parse import parse_qs

    scope = " ".join(parse_qs(flow["query"]).get("scope", [""])[0].split())
    form = ConfirmForm()
    if form.validate_on_submit():
        # the page the user saw must be the flow that is pending now (another tab may have
        # started a different authorization in between)
        if request.form.get("flow") != flow["key"] or request.form.get("client") != row.client_id:
            abort(400)
        if form.action.data == "allow":
            existing = db().get(Consent, (sso.sub, row.client_id))
            if existing is None:
                db().add(Consent(sub=sso.sub, client_id=row.client_id, scope=scope))
            else:
                existing.scope = " ".join(sorted(set(existing.scope.split()) | set(scope.split())))
                existing.granted_at = clock.now()
            _record(
                "consent.granted",
                actor=sso.sub,
                subject=sso.sub,
                client_id=row.client_id,
                details={"scope": scope},
            )
            return _resume()
        session.pop("flow", None)
        _record(
            "consent.denied",
            outcome="failure",
            actor=sso.sub,
            client_id=row.client_id,
        )
        redirect_uri = dict(pair.split("=", 1) for pair in flow["query"].split("&") if "=" in pair).get(
            "redirect_uri"
        )
        from urllib.parse import unquote

        uri = unquote(redirect_uri or "")
        if uri in row.redirect_uris:
            state = parse_qs(flow["query"]).get("state", [None])[0]
            params = [("error", "access_denied")] + ([("state", state)] if state else [])
            return redirect(add_params_to_uri(uri, params))
        return redirect(url_for("sso.account"))
    return render_template(
        "sso/consent.html", form=form, client=row, scopes=scope.split(), flow_key=flow["key"]
    )


# -- token, userinfo, introspection, revocation -----------------------------------------------
def _authenticate_client(endpoint: str) -> Client:
    srv = server()
    req = srv.create_oauth2_request(None)
    methods = [m.value for m in AuthMethod if m != AuthMethod.NONE]
    if endpoint == "revocation":
        methods.append("none")
    oc = srv.authenticate_client(req, methods, endpoint)
    return oc.row  # type: ignore[no-any-return]


def _claimed_client_id() -> str | None:
    """The client id the caller claims (for the refusal's audit row only; never trusted)."""
    auth = request.authorization
    if auth and auth.type == "basic" and auth.username:
        return unquote(auth.username)[:128]
    return (request.form.get("client_id") or "")[:128] or None


@bp.post("/token")
def token() -> Any:
    resp = server().create_token_response()
    if resp.status_code != 200 and not g.get("iam_network_refused"):
        body = resp.get_json(silent=True) or {}
        _record(
            "token.refused",
            outcome="failure",
            client_id=g.get("iam_authenticated_client"),
            details={
                "error": body.get("error"),
                "grant_type": request.form.get("grant_type"),
                "claimed_client_id": _claimed_client_id(),
            },
        )
    return resp


def _bearer_claims() -> dict[str, Any] | None:
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    return _bearer_claims_from(auth[7:].strip())


def _bearer_error(description: str) -> Response:
    resp = jsonify(error="invalid_token", error_description=description)
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{description}"'
    return resp


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Any:
    claims = _bearer_claims()
    if claims is None or "openid" not in str(claims.get("scope", "")).split():
        return _bearer_error("The access token is invalid, expired or revoked.")
    sub = str(claims["sub"])
    if not server().user_is_active(sub):
        return _bearer_error("The account can no longer sign in.")
    directory = services().directory
    user = directory.get_user(sub)
    if user is None:
        return _bearer_error("The account no longer exists.")
    scopes = set(str(claims.get("scope", "")).split())
    groups = directory.user_groups(sub) if "groups" in scopes else []
    return jsonify(user_claims(user, groups, scopes))


@bp.post("/introspect")
def introspect() -> Any:
    try:
        caller = _authenticate_client("introspection")
    except OAuth2Error as err:
        return server().handle_error_response(None, err)
    value = request.form.get("token", "")
    inactive = jsonify(active=False)
    if not value:
        return inactive
    result: dict[str, Any] | None = None
    if value.startswith(service.REFRESH_PREFIX):
        rt = service.find_refresh_token(db(), value)
        if (
            rt is not None
            and rt.client_id == caller.client_id
            and rt.revoked_at is None
            and rt.used_at is None
            and rt.expires_at > clock.now()
            and server().user_is_active(rt.sub)
        ):
            result = {
                "active": True,
                "token_type": "refresh_token",
                "client_id": rt.client_id,
                "sub": rt.sub,
                "scope": rt.scope,
                "exp": int(rt.expires_at.timestamp()),
                "iat": int(rt.created_at.timestamp()),
                "iss": _settings().issuer,
            }
    else:
        claims = _bearer_claims_from(value)
        if claims is not None:
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            allowed = {caller.client_id, *caller.audiences}
            user_ok = claims.get("sub") == claims.get("client_id") or server().user_is_active(
                str(claims.get("sub"))
            )
            if (claims.get("client_id") == caller.client_id or allowed & set(audiences)) and user_ok:
                result = {"active": True, "token_type": "access_token", **claims}
    _record(
        "token.introspected",
        actor=caller.client_id,
        client_id=caller.client_id,
        details={"active": bool(result)},
    )
    return jsonify(result) if result else inactive


def _bearer_claims_from(value: str) -> dict[str, Any] | None:
    try:
        claims = current_app.extensions["sso.signer"].verify(value, typ="at+jwt")
    except TokenInvalid:
        return None
    if service.access_token_revoked(db(), str(claims.get("jti"))):
        return None
    issuer_client = load_client(str(claims.get("client_id")))
    if issuer_client is None or issuer_client.disabled:  # the client's tokens die with it
        return None
    return dict(claims)


@bp.post("/revoke")
def revoke() -> Any:
    try:
        caller = _authenticate_client("revocation")
    except OAuth2Error as err:
        return server().handle_error_response(None, err)
    value = request.form.get("token", "")
    revoked = False
    if value.startswith(service.REFRESH_PREFIX):
        rt = service.find_refresh_token(db(), value)
        if rt is not None and rt.client_id == caller.client_id:
            service.revoke_family(db(), rt.family_id)
            revoked = True
    elif value:
        claims = _bearer_claims_from(value)
        if claims is not None and claims.get("client_id") == caller.client_id:
            service.revoke_access_token(db(), str(claims["jti"]), int(claims["exp"]))
            revoked = True
    if revoked:
        _record(
            "token.revoked",
            actor=caller.client_id,
            client_id=caller.client_id,
        )
    return Response("", status=200)


# -- logout -----------------------------------------------------------------------------------
@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    """RP-initiated logout: exact post-logout URI match; a confirmation unless the hint matches."""
    args = request.values
    hint = args.get("id_token_hint")
    client: Client | None = None
    hint_sub: str | None = None
    if hint:
        try:
            # an ID token of ours (not an access or logout token); expired ones are fine for a
            # while (OIDC RP-Initiated Logout §2), up to the longest a session can live
            claims = current_app.extensions["sso.signer"].verify(
                hint, typ="JWT", leeway=_settings().session.absolute_timeout
            )
        except TokenInvalid:
            return _error_page(_("Sign-out failed"), _("The sign-out request is invalid."))
        aud = claims.get("aud")
        client = db().get(Client, aud if isinstance(aud, str) else (aud or [None])[0])
        if client is None:
            return _error_page(_("Sign-out failed"), _("The sign-out request is invalid."))
        hint_sub = str(claims.get("sub"))
    if args.get("client_id"):
        by_id = db().get(Client, args["client_id"])
        if client is not None and by_id is not None and by_id.client_id != client.client_id:
            return _error_page(_("Sign-out failed"), _("The sign-out request is invalid."))
        client = client or by_id
    target = args.get("post_logout_redirect_uri")
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return _error_page(
            _("Sign-out failed"), _("The address to return to after sign-out is not registered.")
        )
    sso = current_sso()
    form = ConfirmForm()
    confirmed = request.method == "POST" and form.validate_on_submit() and form.action.data == "logout"
    if sso is not None and not confirmed and not (hint_sub and hint_sub == sso.sub):
        return render_template("sso/logout_confirm.html", form=form, client=client, params=args.to_dict())
    if sso is not None:
        service.end_sso_session(
            db(),
            sso,
            reason="logout",
            actor=sso.sub,
            ip=g.client_ip,
            user_agent=g.user_agent,
            skip_client=None,
        )
    session.clear()
    if target:
        state = args.get("state")
        resp = make_response(redirect(add_params_to_uri(target, [("state", state)] if state else [])))
    else:
        resp = make_response(render_template("sso/signed_out.html", client=client))
    _clear_session_cookie(resp)
    return resp


# -- the user's own account -------------------------------------------------------------------
@bp.get("/")
def index() -> Any:
    return redirect(url_for("sso.account"))


@bp.route("/account", methods=["GET"])
def account() -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    identity = db().get(Identity, sso.sub)
    sessions = service.user_sessions(db(), sso.sub)
    return render_template(
        "sso/account.html", identity=identity, sessions=sessions, current=sso, form=ConfirmForm()
    )


@bp.post("/account/sessions/<sid>/end")
def end_session(sid: str) -> Any:
    sso = current_sso()
    if sso is None:
        return redirect(url_for("sso.login"))
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    target = next((s for s in service.user_sessions(db(), sso.sub) if s.sid == sid), None)
    if target is None:
        abort(404)
    service.end_sso_session(
        db(), target, reason="ended_by_user", actor=sso.sub, ip=g.client_ip, user_agent=g.user_agent
    )
    if target.id == sso.id:
        resp = make_response(redirect(url_for("sso.login")))
        _clear_session_cookie(resp)
        return resp
    flash(_("The session was ended."))
    return redirect(url_for("sso.account"))


def exempt_from_csrf(csrf: Any) -> None:
    """Client-authenticated endpoints carry no browser session; /logout validates its own form."""
    for view in (token, introspect, revoke, userinfo, logout):
        csrf.exempt(view)
