"""The console's Operations pages of the provider (registered by ``sso`` into ``iam.admin``):
token-signing keys (list, rotate) and the trust anchors of card sign-in (list, upload a CA,
stop trusting an uploaded one). Role: IT administrator (the auditor reads). Every change asks
for a reason and is audited with the administrator as actor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from iam import clock
from iam.admin import AdminPage, Role, Section, admin_actor, register_admin_page, require_admin
from iam.admin.forms import ReasonForm
from iam.errors import NotFound, ValidationFailed
from iam.web import db, reader, services
from sso import keys as key_service
from sso.models import SigningKey
from sso.x509 import service as cards

bp = Blueprint("admin_keys", __name__, url_prefix="/admin/operations")
IT = frozenset({Role.IT_ADMIN})
MAX_CA_BYTES = 256 * 1024


@bp.get("/keys")
@require_admin(Role.IT_ADMIN)
def keys() -> Any:
    rows = list(reader().scalars(select(SigningKey).order_by(SigningKey.created_at.desc())))
    return render_template(
        "sso/admin/keys.html",
        keys=rows,
        form=ReasonForm(),
        grace=key_service.rotation_grace(services().settings),
        reload_seconds=int(key_service.RELOAD_SECONDS),
        algorithms=key_service.ALGORITHMS,
    )


@bp.post("/keys/rotate")
@require_admin(Role.IT_ADMIN)
def rotate_keys() -> Any:
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("admin_keys.keys"))
    algs = (
        tuple(a for a in request.form.getlist("alg") if a in key_service.ALGORITHMS) or key_service.ALGORITHMS
    )
    grace = key_service.rotation_grace(services().settings)
    promoted = key_service.rotate(
        db(),
        services().cipher,
        grace=grace,
        actor=admin_actor(),
        algs=algs,
        reason=(form.reason.data or "").strip(),
        ip=g.get("client_ip"),
    )
    until = clock.now() + dt.timedelta(seconds=int(key_service.RELOAD_SECONDS))
    flash(
        _(
            "Rotated %(algs)s. Every node signs with the new keys within %(s)s seconds (by %(until)s UTC); "
            "the previous keys stay published until their tokens have expired.",
            algs=", ".join(promoted),
            s=int(key_service.RELOAD_SECONDS),
            until=until.strftime("%H:%M:%S"),
        )
    )
    return redirect(url_for("admin_keys.keys"))


@bp.get("/trust-anchors")
@require_admin(Role.IT_ADMIN)
def anchors() -> Any:
    svc = services()
    validator = cards.validator_for(svc)
    rows = cards.list_anchors(reader(), validator.trust.anchors())
    return render_template(
        "sso/admin/anchors.html",
        rows=rows,
        form=ReasonForm(),
        folder=cards.trust_dir(svc.settings),
        enabled=svc.settings.x509.enabled,
        reload_interval=svc.settings.x509.reload_interval,
    )


@bp.post("/trust-anchors/upload")
@require_admin(Role.IT_ADMIN)
def upload_anchor() -> Any:
    form = ReasonForm()
    upload = request.files.get("certificate")
    if not form.validate_on_submit():
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("admin_keys.anchors"))
    data = upload.read(MAX_CA_BYTES + 1) if upload else b""
    if not data or len(data) > MAX_CA_BYTES:
        flash(_("Nothing was changed: choose a CA certificate file (PEM or DER, at most 256 KiB)."))
        return redirect(url_for("admin_keys.anchors"))
    try:
        added = cards.add_ca(
            db(), data, actor=admin_actor(), ip=g.get("client_ip"), reason=(form.reason.data or "").strip()
        )
    except ValidationFailed as exc:
        db().rollback()
        flash(_("Nothing was changed: %(why)s", why=str(exc)))
        return redirect(url_for("admin_keys.anchors"))
    cards.validator_for(services()).trust.reload()
    if added:
        flash(_("Trusted from now on: %(subjects)s.", subjects="; ".join(r.subject for r in added)))
    else:
        flash(_("Already trusted; nothing added."))
    return redirect(url_for("admin_keys.anchors"))


@bp.post("/trust-anchors/<sha256>/remove")
@require_admin(Role.IT_ADMIN)
def remove_anchor(sha256: str) -> Any:
    form = ReasonForm()
    if not form.validate_on_submit():
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("admin_keys.anchors"))
    try:
        cards.remove_ca(
            db(), sha256, actor=admin_actor(), ip=g.get("client_ip"), reason=(form.reason.data or "").strip()
        )
    except NotFound:
        db().rollback()
        abort(404)
    flash(
        _(
            "The CA is no longer trusted (every node within %(s)s seconds).",
            s=services().settings.x509.reload_interval,
        )
    )
    return redirect(url_for("admin_keys.anchors"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage("admin_keys.keys", _l("Signing keys"), Section.OPERATIONS, roles=IT, order=20),
        AdminPage("admin_keys.anchors", _l("Card trust anchors"), Section.OPERATIONS, roles=IT, order=30),
    )
