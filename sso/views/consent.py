"""The consent page, for clients registered with ``require_consent``."""

from __future__ import annotations

from typing import Any

from authlib.common.urls import add_params_to_uri
from flask import abort, redirect, render_template, request, session, url_for

from iam import clock
from iam.web import db
from sso.forms import ConfirmForm
from sso.models import Client, Consent
from sso.views.common import _record, bp, current_sso
from sso.views.signin import _resume


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
