"""PIM pages: my privileged roles, request form, approvals inbox, security officer overview."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
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

from iam import inbox
from iam.errors import Conflict, Forbidden, IamError, NotFound
from iam.i18n import message_of
from iam.pages import NavLink, error_page, register_nav
from iam.web import db, services
from pim import service
from pim.forms import DecisionForm, EligibilityForm, ReasonForm, RequestForm, ReviewForm
from pim.roles import all_roles, get_role
from pim.service import Actor, StepUpRequired
from pim.service.session import start_admin_session
from pim.views.common import dev_recheck, page_actor
from sso import service as sso_service
from sso.views.common import current_sso

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from iam.services import Services

bp = Blueprint("pim", __name__, url_prefix="/pim")


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Every PIM page needs a signed-in person (deny by default)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        actor = page_actor()
        if actor is None:
            return redirect(url_for("sso.login"))
        g.pim_actor = actor
        return view(*args, **kwargs)

    return wrapper


def _actor() -> Actor:
    return g.pim_actor  # type: ignore[no-any-return]


def _error_status(exc: IamError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, Conflict):
        return 409
    return 400


def _officer() -> bool:
    return service.is_security_officer(services(), _actor())


def _nav_actor() -> Actor | None:
    if "pim_nav_actor" not in g:
        g.pim_nav_actor = page_actor()
    return g.pim_nav_actor  # type: ignore[no-any-return]


def _may_approve_any() -> bool:
    actor = _nav_actor()
    if actor is None:
        return False
    return any(service.may_approve(services(), r, actor) for r in all_roles(db(), services()).values())


def _is_officer() -> bool:
    actor = _nav_actor()
    return actor is not None and service.is_security_officer(services(), actor)


def register_navigation(app: Flask) -> None:
    """PIM's pages in the header, each under the check its view applies (or a stricter one):
    any signed-in person has "Privileged roles"; approvers of some role "Approvals" (the inbox
    is open to everyone signed in but empty for others); security officers the overview."""
    register_nav(
        app,
        NavLink("pim.mine", _l("Privileged roles"), lambda: _nav_actor() is not None, order=40),
        NavLink("pim.approvals", _l("Approvals"), _may_approve_any, order=45),
        NavLink("pim.overview", _l("Security overview"), _is_officer, order=50),
    )
    inbox.register("pim_approvals", _waiting)


def _waiting(svc: Services, session: Session, me: inbox.Me) -> list[inbox.Waiting]:
    """Elevation requests the person may approve, for the one "waiting for me" inbox."""
    rows = service.inbox(session, svc, Actor(sub=me.sub, username=me.username))
    return [
        inbox.Waiting(
            kind=_l("PIM approval"),
            title=f"{r['role']} — {r['requester']}",
            href=url_for("pim.approvals"),
            due_at=r["pending_until"],
        )
        for r in rows
    ]


@bp.get("/")
@signed_in
def mine() -> Any:
    data = service.mine(db(), services(), _actor())
    return render_template(
        "pim/mine.html",
        data=data,
        form=ReasonForm(),
        officer=_officer(),
        level=_actor().level,
    )


@bp.route("/request/<role>", methods=["GET", "POST"])
@signed_in
def request_form(role: str) -> Any:
    actor = _actor()
    session = db()
    r = get_role(session, services(), role)
    eligible = {x.name for x, _e in service.eligible_roles(session, services(), actor)}
    if r is None:
        return error_page(
            404,
            title=_("No such privileged role"),
            message=_("There is no privileged role “%(role)s”.", role=role),
            next_href=url_for("pim.mine"),
            next_label=_("See the roles you can request"),
        )
    if role not in eligible:
        return error_page(
            403,
            title=_("You are not eligible for this role"),
            message=_(
                "You are not eligible for the privileged role “%(role)s”, so you cannot request it. "
                "A security officer can make you eligible.",
                role=r.title or r.name,
            ),
            next_href=url_for("pim.mine"),
            next_label=_("See the roles you can request"),
        )
    form = RequestForm()
    if request.method == "GET":
        form.minutes.data = r.default_minutes
    error: str | None = None
    status = 200
    required = service.required_level(services(), r)
    if form.validate_on_submit():
        acting = dev_recheck(actor, form.password.data, required)
        try:
            if r.break_glass:
                req = service.break_glass(
                    session, services(), actor=acting, role=role, justification=form.justification.data or ""
                )
            else:
                req = service.request_elevation(
                    session,
                    services(),
                    actor=acting,
                    role=role,
                    minutes=form.minutes.data,
                    justification=form.justification.data or "",
                    ticket=form.ticket.data,
                )
        except StepUpRequired as exc:
            db().rollback()  # refusals stay audited (iam.audit.record_refusal)
            return _step_up(exc, url_for("pim.request_form", role=role))
        except IamError as exc:
            db().rollback()
            error, status = message_of(exc), _error_status(exc)
        else:
            flash(_("Request sent (%(state)s).", state=req.state))
            return redirect(url_for("pim.mine"))
    elif request.method == "POST":
        error, status = "Check the form: " + "; ".join(m for ms in form.errors.values() for m in ms), 400
    return (
        render_template(
            "pim/request.html",
            role=r,
            form=form,
            error=error,
            required=required,
            level=actor.level,
            dev_recheck=services().settings.dev_mode and services().settings.pim.dev_password_recheck,
        ),
        status,
    )


def _step_up(exc: StepUpRequired, back: str) -> Any:
    return (
        render_template(
            "pim/step_up.html",
            required=exc.required,
            achieved=exc.achieved,
            back=back,
            # sign in again: with an authenticator enrolled the code is asked, or use the card
            login=url_for("sso.login"),
        ),
        403,
    )


def _act(fn: Callable[[], Any], ok: str, back: str) -> Any:
    try:
        fn()
    except IamError as exc:
        db().rollback()  # nothing half-written; refusals stay audited (iam.audit.record_refusal)
        flash(message_of(exc))
        return redirect(url_for(back)), 303
    flash(ok)
    return redirect(url_for(back)), 303


@bp.post("/requests/<rid>/cancel")
@signed_in
def cancel(rid: str) -> Any:
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400)
    return _act(
        lambda: service.cancel(
            db(), services(), actor=_actor(), request_id=rid, reason=form.reason.data or ""
        ),
        _("The request was withdrawn / the elevation ended."),
        "pim.mine",
    )


@bp.post("/requests/<rid>/password")
@signed_in
def password(rid: str) -> Any:
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        value = service.reveal_secret(db(), services(), actor=_actor(), request_id=rid)
    except IamError as exc:
        flash(message_of(exc))
        return redirect(url_for("pim.mine")), 303
    shown = service.show(db(), services(), _actor(), rid)
    return render_template("pim/password.html", password=value, req=shown)


@bp.get("/approvals")
@signed_in
def approvals() -> Any:
    items = service.inbox(db(), services(), _actor())
    return render_template(
        "pim/approvals.html",
        items=items,
        form=DecisionForm(),
        level=_actor().level,
        dev_recheck=services().settings.dev_mode and services().settings.pim.dev_password_recheck,
    )


@bp.post("/requests/<rid>/decide")
@signed_in
def decide(rid: str) -> Any:
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    verdict = request.form.get("verdict")
    if verdict not in ("approve", "deny"):
        abort(400)
    acting = _actor()
    if form.password.data:
        r = _role_of(rid)
        if r is not None:
            acting = dev_recheck(acting, form.password.data, service.required_level(services(), r))
    try:
        service.decide(
            db(),
            services(),
            actor=acting,
            request_id=rid,
            approve=verdict == "approve",
            comment=form.comment.data or "",
        )
    except StepUpRequired as exc:
        db().rollback()  # the refusal stays audited
        return _step_up(exc, url_for("pim.approvals"))
    except IamError as exc:
        db().rollback()
        flash(message_of(exc))
        return redirect(url_for("pim.approvals")), 303
    flash(_("Approved.") if verdict == "approve" else _("Denied."))
    return redirect(url_for("pim.approvals")), 303


def _role_of(rid: str) -> Any:
    from pim.models import ElevationRequest

    req = db().get(ElevationRequest, rid)
    return get_role(db(), services(), req.role) if req is not None else None


@bp.get("/overview")
@signed_in
def overview() -> Any:
    if not _officer():
        abort(403)
    data = service.overview(db(), services(), _actor())
    return render_template(
        "pim/overview.html", data=data, form=ReasonForm(), review=ReviewForm(), eligibility=EligibilityForm()
    )


@bp.post("/eligibility")
@signed_in
def add_eligibility() -> Any:
    form = EligibilityForm()
    if not form.validate_on_submit():
        abort(400)
    return _act(
        lambda: service.add_eligibility(
            db(),
            services(),
            actor=_actor(),
            role=(form.role.data or "").strip(),
            username=(form.username.data or "").strip(),
            permanent=bool(form.permanent.data),
        ),
        _("Eligibility added; the admin account is being created."),
        "pim.overview",
    )


@bp.post("/eligibility/remove")
@signed_in
def remove_eligibility() -> Any:
    form = EligibilityForm()
    if not form.validate_on_submit():
        abort(400)
    return _act(
        lambda: service.remove_eligibility(
            db(),
            services(),
            actor=_actor(),
            role=(form.role.data or "").strip(),
            username=(form.username.data or "").strip(),
        ),
        _("Eligibility removed."),
        "pim.overview",
    )


@bp.post("/requests/<rid>/revoke")
@signed_in
def revoke(rid: str) -> Any:
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400)
    back = "pim.overview" if _officer() else "pim.approvals"
    return _act(
        lambda: service.revoke(
            db(), services(), actor=_actor(), request_id=rid, reason=form.reason.data or "revoked"
        ),
        _("The elevation was revoked."),
        back,
    )


@bp.post("/requests/<rid>/review")
@signed_in
def review(rid: str) -> Any:
    form = ReviewForm()
    if not form.validate_on_submit():
        flash(_("Write what the review found."))
        return redirect(url_for("pim.overview")), 303
    return _act(
        lambda: service.review(db(), services(), actor=_actor(), request_id=rid, note=form.note.data or ""),
        _("Review recorded."),
        "pim.overview",
    )


@bp.post("/requests/<rid>/use")
@signed_in
def use_admin_account(rid: str) -> Any:
    """Switch this browser's SSO session to the admin account (ends at the elevation's end)."""
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400)
    mine = current_sso()
    if mine is None:
        return redirect(url_for("sso.login"))
    try:
        cookie, _row = start_admin_session(
            db(), services(), actor=_actor(), request_id=rid, acr=mine.acr, amr=list(mine.amr)
        )
    except IamError as exc:
        flash(message_of(exc))
        return redirect(url_for("pim.mine")), 303
    sso_service.end_sso_session(db(), mine, reason="pim_admin_session", actor=_actor().sub)
    resp = make_response(redirect(url_for("sso.account"), 303))
    settings = services().settings
    resp.set_cookie(
        settings.session.cookie_name,
        cookie,
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        samesite="Lax",
        path="/",
    )
    return resp
