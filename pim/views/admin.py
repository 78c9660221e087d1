"""The console's PIM administration pages (registered by ``pim`` into ``iam.admin``): the role
editor (file roles read-only, database roles editable, each validation message next to its
field — :func:`pim.roles.field_errors`, the same model as the files and the API), eligibility
(list, add — the role's groups must exist, as ``iam pim eligible add`` checks —, remove) and
shared administrator accounts (list, register, rotate now). Role: security officer (the
auditor reads). Every change asks for a reason and is audited with the officer as actor."""

from __future__ import annotations

import types
import typing
from typing import Any

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from iam.admin import AdminPage, Role, Section, current_admin, register_admin_page, require_admin
from iam.admin.forms import ReasonForm
from iam.directory.errors import DirectoryUnavailable
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from iam.operations.service import field_docs
from iam.web import db, reader, services
from pim import roles as role_rules
from pim import service
from pim.models import Eligibility, SharedAccount
from pim.roles import Role as PimRole
from pim.service import Actor

bp = Blueprint("pim_admin", __name__, url_prefix="/admin/pim")
OFFICER = frozenset({Role.SECURITY_OFFICER})


def _actor() -> Actor:
    admin = current_admin()
    return Actor(
        sub=admin.viewer.sub,
        username=admin.viewer.username,
        level=admin.viewer.level,
        ip=g.get("client_ip"),
        user_agent=g.get("user_agent"),
        officer=Role.SECURITY_OFFICER in admin.roles,
    )


def _reason(form: ReasonForm) -> str | None:
    if not form.validate_on_submit():
        return None
    return (form.reason.data or "").strip()


# -- the role editor --------------------------------------------------------------------------
def _kind(annotation: Any) -> str:
    """How the editor shows a field of :class:`pim.roles.Role`: text, lines, number, flag."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)][0]
        return "number?" if inner is int else "text"
    if annotation is bool:
        return "flag"
    if annotation is int:
        return "number"
    if typing.get_origin(annotation) is list:
        return "lines"
    return "text"


FIELDS: list[tuple[str, str]] = [
    (name, _kind(info.annotation)) for name, info in PimRole.model_fields.items() if name != "name"
]


def _definition_from_form() -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, kind in FIELDS:
        raw = request.form.get(name, "")
        if kind == "flag":
            data[name] = name in request.form
        elif kind == "lines":
            data[name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif kind == "number?":
            data[name] = raw.strip() or None
        else:
            data[name] = raw.strip() if kind == "number" else raw
    return data


def _values(role: PimRole | None, data: dict[str, Any] | None) -> dict[str, Any]:
    source = (
        data if data is not None else (role.model_dump() if role else PimRole.model_construct().model_dump())
    )
    out: dict[str, Any] = {}
    for name, kind in FIELDS:
        value = source.get(name)
        if kind == "lines":
            out[name] = "\n".join(value or [])
        elif value is None:
            out[name] = ""
        else:
            out[name] = value
    return out


@bp.get("/roles")
@require_admin(Role.SECURITY_OFFICER)
def roles() -> Any:
    session = reader()
    svc = services()
    rows = role_rules.all_roles(session, svc, include_disabled=True)
    return render_template(
        "pim/admin/roles.html",
        roles=[
            (r, role_rules.source(session, svc, r.name)) for r in sorted(rows.values(), key=lambda r: r.name)
        ],
        files=set(role_rules.file_roles(svc)),
    )


def _editor(name: str | None, role: PimRole | None, editable: bool, errors: dict[str, str], data: Any) -> Any:
    svc = services()
    return render_template(
        "pim/admin/role.html",
        name=name,
        role=role,
        editable=editable,
        fields=FIELDS,
        values=_values(role, data),
        docs=field_docs(PimRole),
        errors=errors,
        form=ReasonForm(),
        source=role_rules.source(reader(), svc, name) if name else "none",
        in_file=bool(name and name in role_rules.file_roles(svc)),
        levels=list(svc.settings.pim.levels),
    ), (422 if errors else 200)


@bp.get("/roles/new")
@require_admin(Role.SECURITY_OFFICER)
def role_new() -> Any:
    return _editor(None, None, True, {}, None)


@bp.get("/roles/<name>")
@require_admin(Role.SECURITY_OFFICER)
def role(name: str) -> Any:
    session = reader()
    current = role_rules.all_roles(session, services(), include_disabled=True).get(name)
    if current is None:
        abort(404)
    in_db = role_rules.source(session, services(), name) == "database"
    return _editor(name, current, in_db or request.args.get("override") == "1", {}, None)


@bp.post("/roles/new")
@require_admin(Role.SECURITY_OFFICER)
def role_create() -> Any:
    return _save(request.form.get("name", "").strip(), creating=True)


@bp.post("/roles/<name>")
@require_admin(Role.SECURITY_OFFICER)
def role_save(name: str) -> Any:
    return _save(name, creating=False)


def _save(name: str, *, creating: bool) -> Any:
    form = ReasonForm()
    data = _definition_from_form()
    svc = services()
    errors = role_rules.field_errors(name, data, svc.settings.pim)
    if creating and not errors and role_rules.source(db(), svc, name) != "none":
        errors["name"] = _("A role of this name exists already; open it to change it.")
    reason = _reason(form)
    if reason is None:
        errors["reason"] = _("Say why: the audit log keeps the reason.")
    if errors:
        return _editor(name or None, None, True, errors, data)
    try:
        service.put_role(db(), svc, actor=_actor(), name=name, definition=data, reason=reason or "")
    except ValidationFailed as exc:  # the same rules: a message across fields
        db().rollback()
        return _editor(name, None, True, {"": str(exc)}, data)
    except Forbidden:
        db().rollback()
        abort(403)
    flash(_("The role %(name)s is saved in the database.", name=name))
    return redirect(url_for("pim_admin.role", name=name))


@bp.post("/roles/<name>/delete")
@require_admin(Role.SECURITY_OFFICER)
def role_delete(name: str) -> Any:
    reason = _reason(ReasonForm())
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("pim_admin.role", name=name))
    try:
        service.delete_role_override(db(), services(), actor=_actor(), name=name, reason=reason)
    except NotFound:
        db().rollback()
        abort(404)
    flash(_("The database definition of %(name)s is deleted.", name=name))
    return redirect(url_for("pim_admin.roles"))


# -- eligibility ------------------------------------------------------------------------------
def _eligibility_page(errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> Any:
    session = reader()
    rows = list(session.scalars(select(Eligibility).order_by(Eligibility.role, Eligibility.username)))
    return render_template(
        "pim/admin/eligibility.html",
        rows=rows,
        roles=sorted(role_rules.all_roles(session, services())),
        form=ReasonForm(),
        errors=errors or {},
        values=values or {},
    ), (422 if errors else 200)


@bp.get("/eligibility")
@require_admin(Role.SECURITY_OFFICER)
def eligibility() -> Any:
    return _eligibility_page()


@bp.post("/eligibility")
@require_admin(Role.SECURITY_OFFICER)
def eligibility_add() -> Any:
    role_name = request.form.get("role", "")
    username = request.form.get("username", "").strip()
    permanent = "permanent" in request.form
    values: dict[str, Any] = {"role": role_name, "username": username, "permanent": permanent}
    errors: dict[str, str] = {}
    reason = _reason(ReasonForm())
    if reason is None:
        errors["reason"] = _("Say why: the audit log keeps the reason.")
    if not username:
        errors["username"] = _("Name the person (their username).")
    if errors:
        return _eligibility_page(errors, values)
    try:
        service.add_eligibility(
            db(),
            services(),
            actor=_actor(),
            role=role_name,
            username=username,
            permanent=permanent,
            reason=reason or "",
        )
    except NotFound as exc:
        db().rollback()
        key = "role" if "role" in str(exc) else "username"
        return _eligibility_page({key: str(exc)}, values)
    except (ValidationFailed, Conflict, Forbidden) as exc:
        db().rollback()
        return _eligibility_page({"role": str(exc)}, values)
    except DirectoryUnavailable:
        db().rollback()
        return _eligibility_page({"": _("The directory is unavailable; nothing was changed.")}, values)
    flash(_("%(user)s is eligible for %(role)s.", user=username, role=role_name))
    return redirect(url_for("pim_admin.eligibility"))


@bp.post("/eligibility/<row_id>/remove")
@require_admin(Role.SECURITY_OFFICER)
def eligibility_remove(row_id: str) -> Any:
    row = db().get(Eligibility, int(row_id)) if row_id.isdigit() else None
    if row is None:
        abort(404)
    reason = _reason(ReasonForm())
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("pim_admin.eligibility"))
    role_name, username = row.role, row.username
    service.remove_eligibility(
        db(), services(), actor=_actor(), role=role_name, username=username, reason=reason
    )
    flash(_("%(user)s is no longer eligible for %(role)s.", user=username, role=role_name))
    return redirect(url_for("pim_admin.eligibility"))


# -- shared accounts --------------------------------------------------------------------------
def _shared_page(errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> Any:
    session = reader()
    return render_template(
        "pim/admin/shared.html",
        rows=list(session.scalars(select(SharedAccount).order_by(SharedAccount.username))),
        roles=sorted(role_rules.all_roles(session, services(), include_disabled=True)),
        form=ReasonForm(),
        errors=errors or {},
        values=values or {},
    ), (422 if errors else 200)


@bp.get("/shared")
@require_admin(Role.SECURITY_OFFICER)
def shared() -> Any:
    return _shared_page()


@bp.post("/shared")
@require_admin(Role.SECURITY_OFFICER)
def shared_add() -> Any:
    username = request.form.get("username", "").strip()
    chosen = request.form.getlist("roles")
    values: dict[str, Any] = {"username": username, "roles": chosen}
    reason = _reason(ReasonForm())
    if reason is None:
        return _shared_page({"reason": _("Say why: the audit log keeps the reason.")}, values)
    try:
        service.add_shared(
            db(),
            services(),
            actor=_actor(),
            username=values["username"],
            roles=values["roles"],
            reason=reason,
        )
    except NotFound as exc:
        db().rollback()
        return _shared_page({"username": str(exc)}, values)
    except ValidationFailed as exc:
        db().rollback()
        return _shared_page({"roles": str(exc)}, values)
    except Conflict as exc:
        db().rollback()
        return _shared_page({"username": str(exc)}, values)
    flash(_("%(user)s is registered; its password is being rotated now.", user=username))
    return redirect(url_for("pim_admin.shared"))


@bp.post("/shared/<username>/rotate")
@require_admin(Role.SECURITY_OFFICER)
def shared_rotate(username: str) -> Any:
    reason = _reason(ReasonForm())
    if reason is None:
        flash(_("Nothing was changed: give a reason (at least 3 characters)."))
        return redirect(url_for("pim_admin.shared"))
    try:
        service.rotate_shared_now(db(), services(), actor=_actor(), username=username, reason=reason)
    except NotFound:
        db().rollback()
        abort(404)
    flash(_("A new password for %(user)s is being set (a job; see Operations → Jobs).", user=username))
    return redirect(url_for("pim_admin.shared"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage("pim_admin.roles", _l("Privileged roles"), Section.PIM, roles=OFFICER, order=10),
        AdminPage("pim_admin.eligibility", _l("Eligibility"), Section.PIM, roles=OFFICER, order=20),
        AdminPage("pim_admin.shared", _l("Shared accounts"), Section.PIM, roles=OFFICER, order=30),
    )
