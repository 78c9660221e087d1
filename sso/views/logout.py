"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0)."""

from __future__ import annotations

from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import current_app, g, make_response, redirect, render_template, request, session
from flask_babel import gettext as _

from iam.web import db
from sso import service
from sso.forms import ConfirmForm
from sso.models import Client
from sso.tokens import TokenInvalid
from sso.views.common import _clear_session_cookie, _error_page, _settings, bp, current_sso


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
    # the button's own value decides, wherever it stands among the form's fields
    confirmed = (
        request.method == "POST" and form.validate_on_submit() and "logout" in request.form.getlist("action")
    )
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
    g.sso_session = None  # the page that follows shows a signed-out person
    session.clear()
    if target:
        state = args.get("state")
        resp = make_response(redirect(add_params_to_uri(target, [("state", state)] if state else [])))
    else:
        resp = make_response(render_template("sso/signed_out.html", client=client))
    _clear_session_cookie(resp)
    return resp


# -- the user's own account -------------------------------------------------------------------
