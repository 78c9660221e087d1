"""The administration console's shell: the registry of admin pages, the roles, the check.

The core draws the console under ``/admin/`` (the section navigation, the start page listing
what the person may open) and checks every admin view; the feature packages (``sso``, ``pim``,
``provisioning``) add their own pages — the core imports none of them.

How a feature adds a page::

    from iam.admin import AdminPage, Role, register_admin_page, require_admin

    bp = Blueprint("pim_admin", __name__, url_prefix="/admin/pim")

    @bp.get("/roles")
    @require_admin(Role.SECURITY_OFFICER)          # who may open it (the auditor may read it too)
    def roles() -> Any:
        return render_template("pim/admin/roles.html", ...)   # extends "iam/admin/base.html"

    @bp.post("/roles/<name>/remove")
    @require_admin(Role.SECURITY_OFFICER)          # POST: never the auditor
    def remove(name: str) -> Any:
        form = ReasonForm()                        # iam.admin.forms: CSRF + the reason
        ...
        audit.record(db(), "pim.role_removed", actor=admin_actor(), details={"reason": ...})

    def init_app(app, services):
        app.register_blueprint(bp)
        register_admin_page(app, AdminPage("pim_admin.roles", _l("Privileged roles"),
                                           Section.PIM, roles={Role.SECURITY_OFFICER}, order=10))

Rules the shell enforces (deny by default):

- Every view under ``/admin`` carries :func:`require_admin` with at least one role; a route
  without it is refused by the shell itself (403) and fails the authorisation-matrix test.
- Not signed in → the sign-in page; signed in below ``admin.minimum_level`` (``mfa``) → the
  step-up flow (never a plain refusal); signed in without one of the roles → 403.
- The auditor may read every admin page (GET/HEAD) and change nothing (every other method 403).
- A view's roles come from AD groups and username lists in the ``[admin]`` settings
  (:class:`iam.config.AdminSettings`).

Who is signed in is not the core's business: the ``sso`` package says it once for the whole
core (:func:`iam.web.register_signed_in`), and registers an :class:`AdminAuth`
(:func:`register_auth`) that starts a step-up and sends to the sign-in page. Without them nobody
gets in.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, abort, current_app, g, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from iam import audit
from iam.directory.errors import DirectoryError
from iam.pages import NavLink, register_nav
from iam.web import SignedIn, signed_in

log = logging.getLogger("iam.admin")

__all__ = [
    "ADMIN_PAGES",
    "AdminAuth",
    "AdminPage",
    "Role",
    "Section",
    "admin_actor",
    "admin_roles",
    "current_admin",
    "register_admin_page",
    "register_auth",
    "require_admin",
]

ADMIN_PAGES = "iam.admin.pages"
"""``app.extensions`` key of the list of :class:`AdminPage` the core and the features add."""
AUTH = "iam.admin.auth"
"""``app.extensions`` key of the :class:`AdminAuth` the sign-in package registers."""
PREFIX = "/admin"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(enum.StrEnum):
    """The administrative roles (each from an AD group and a username list in ``[admin]``)."""

    IT_ADMIN = "it_admin"
    """Applications, keys, jobs, settings view."""
    HELPDESK = "helpdesk"
    """People: look up, unlock, end sessions, reset password and second factor of ordinary accounts."""
    SECURITY_OFFICER = "security_officer"
    """Audit, alerts, PIM, reviews."""
    HR_OPERATOR = "hr_operator"
    """The HR pages."""
    AUDITOR = "auditor"
    """Reads everything, changes nothing."""


ROLE_LABELS: dict[Role, Any] = {
    Role.IT_ADMIN: _l("IT administrator"),
    Role.HELPDESK: _l("Help desk"),
    Role.SECURITY_OFFICER: _l("Security officer"),
    Role.HR_OPERATOR: _l("HR operator"),
    Role.AUDITOR: _l("Auditor"),
}


class Section(enum.StrEnum):
    """Where a page sits in the console's navigation (in this order)."""

    PEOPLE = "people"
    APPLICATIONS = "applications"
    AUDIT = "audit"
    PIM = "pim"
    HR = "hr"
    OPERATIONS = "operations"


SECTION_LABELS: dict[Section, Any] = {
    Section.PEOPLE: _l("People"),
    Section.APPLICATIONS: _l("Applications"),
    Section.AUDIT: _l("Audit"),
    Section.PIM: _l("Privileged access"),
    Section.HR: _l("HR"),
    Section.OPERATIONS: _l("Operations"),
}


@dataclass(frozen=True)
class AdminPage:
    """One entry of the console's navigation: a GET endpoint, its label, its section, the
    roles that may open it (the auditor always may) and its place in the section."""

    endpoint: str
    label: Any
    section: Section
    roles: frozenset[Role] = field(default_factory=frozenset)
    order: int = 100
    also: Callable[[], bool] | None = None
    """A page that existed before the console: its own check (the same as the view's
    ``require_admin(also=...)``, without side effects), so the people it names see the link."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(Role(r) for r in self.roles))
        if not self.roles:
            raise ValueError(f"admin page {self.endpoint} declares no role")


@dataclass(frozen=True)
class AdminAuth:
    """What the sign-in package provides: how to raise the session's level to ``level`` and
    come back to ``next_url``, and how to send someone to sign in. Who is signed in it says
    once for the whole core (:func:`iam.web.register_signed_in`)."""

    step_up: Callable[[str, str], Any]
    sign_in: Callable[[str], Any]


def register_auth(app: Flask, auth: AdminAuth) -> None:
    app.extensions[AUTH] = auth


def register_admin_page(app: Flask, *pages_: AdminPage) -> None:
    """A feature adds its pages to the console's navigation (see :class:`AdminPage`)."""
    app.extensions.setdefault(ADMIN_PAGES, []).extend(pages_)


# -- roles ------------------------------------------------------------------------------------
def _settings() -> Any:
    return current_app.extensions["iam.settings"]


def _auth() -> AdminAuth | None:
    return current_app.extensions.get(AUTH)


def role_sources(settings: Any) -> dict[Role, tuple[list[str], list[str]]]:
    """Each role's directory groups and usernames, from the ``[admin]`` settings and the
    groups other features already use for the same people."""
    a = settings.admin
    officers_group = a.security_officer_group or settings.reviews.security_officer_group
    officer_groups = [officers_group] + (
        [settings.pim.security_officer_group] if settings.pim.security_officer_group else []
    )
    return {
        Role.IT_ADMIN: ([a.it_admin_group], list(a.it_admins)),
        Role.HELPDESK: ([a.helpdesk_group], list(a.helpdesk)),
        Role.SECURITY_OFFICER: (
            officer_groups,
            [*a.security_officers, *settings.pim.security_officers, *settings.reviews.security_officers],
        ),
        Role.HR_OPERATOR: (
            [a.hr_operator_group or settings.provisioning.operators_group],
            list(a.hr_operators),
        ),
        Role.AUDITOR: ([a.auditor_group], list(a.auditors)),
    }


def roles_of(settings: Any, username: str, groups: Iterable[str]) -> frozenset[Role]:
    """The roles a person with ``username`` and directory ``groups`` holds (names compared
    case-insensitively, as AD does)."""
    mine = {name.casefold() for name in groups}
    user = username.casefold()
    out: set[Role] = set()
    for role, (role_groups, usernames) in role_sources(settings).items():
        if any(grp and grp.casefold() in mine for grp in role_groups) or user in {
            u.casefold() for u in usernames
        }:
            out.add(role)
    return frozenset(out)


def current_viewer() -> SignedIn | None:
    """The signed-in person (once per request), or None."""
    if "iam_admin_viewer" not in g:
        g.iam_admin_viewer = signed_in() if _auth() is not None else None
    return g.iam_admin_viewer  # type: ignore[no-any-return]


def admin_roles() -> frozenset[Role]:
    """The signed-in person's administrative roles (asked of the directory once per request;
    a directory failure is raised — the caller decides; the navigation hides the link)."""
    if "iam_admin_roles" not in g:
        viewer = current_viewer()
        if viewer is None:
            g.iam_admin_roles = frozenset()
        else:
            groups = current_app.extensions["iam.services"].directory.user_groups(viewer.sub)
            g.iam_admin_roles = roles_of(_settings(), viewer.username, groups)
    return g.iam_admin_roles  # type: ignore[no-any-return]


def allowed_roles(roles: Iterable[Role], method: str) -> frozenset[Role]:
    """Who may use a view declaring ``roles`` with ``method``: reading adds the auditor,
    changing never includes them."""
    declared = frozenset(Role(r) for r in roles)
    if method.upper() in READ_METHODS:
        return declared | {Role.AUDITOR}
    return declared - {Role.AUDITOR}


def may_open(page: AdminPage) -> bool:
    return bool(admin_roles() & allowed_roles(page.roles, "GET"))


def _level_rank(level: str) -> int:
    names = [lvl.name for lvl in _settings().mfa.levels]
    return names.index(level) if level in names else -1


def meets_minimum(viewer: SignedIn) -> bool:
    need = _level_rank(_settings().admin.minimum_level)
    return need >= 0 and _level_rank(viewer.level) >= need


@dataclass(frozen=True)
class AdminContext:
    viewer: SignedIn
    roles: frozenset[Role]


def current_admin() -> AdminContext:
    """The administrator of this request (inside a :func:`require_admin` view)."""
    return g.iam_admin  # type: ignore[no-any-return]


def admin_actor() -> str:
    """The audit actor of this request's administrator (their ``sub``)."""
    return current_admin().viewer.sub


F = TypeVar("F", bound=Callable[..., Any])


def _refuse(viewer: SignedIn | None, roles: frozenset[Role], reason: str) -> None:
    if request.method not in READ_METHODS:
        from iam.web import db

        audit.record_refusal(
            db(),
            "admin.refused",
            actor=viewer.sub if viewer else None,
            ip=g.get("client_ip"),
            details={
                "path": request.path,
                "method": request.method,
                "reason": reason,
                "needs": sorted(roles),
            },
        )
    abort(403)


def gate(
    roles: Iterable[Role],
    *,
    also: Callable[[], bool] | None = None,
    reads: bool = False,
    on_refusal: Callable[[], None] | None = None,
) -> Any:
    """The check of :func:`require_admin`: None when the request may go on, else the response
    (sign-in, step-up) — or a 403 is raised."""
    declared = frozenset(Role(r) for r in roles)
    auth = _auth()
    if auth is None or not declared:
        abort(403)
    viewer = current_viewer()
    back = request.full_path.rstrip("?") if request.method in READ_METHODS else url_for("admin.home")
    if viewer is None:
        return auth.sign_in(back)
    try:
        mine = admin_roles()
    except DirectoryError:
        abort(503)
    allowed = allowed_roles(declared, "GET" if reads else request.method)
    if also is not None and also():
        # a page older than the console: whom its own check (its settings' lists and groups)
        # let in before still gets in as before; the console's roles are accepted beside them
        g.iam_admin = AdminContext(viewer, mine)
        return None
    if not mine & allowed:
        if on_refusal is not None:
            on_refusal()
        _refuse(viewer, allowed, "role")
    if not meets_minimum(viewer):
        return auth.step_up(_settings().admin.minimum_level, back)
    g.iam_admin = AdminContext(viewer, mine)
    return None


def require_admin(
    *roles: Role,
    also: Callable[[], bool] | None = None,
    reads: bool = False,
    on_refusal: Callable[[], None] | None = None,
) -> Callable[[F], F]:
    """Protect an admin view: one of ``roles`` (the auditor too for GET/HEAD), at least
    ``admin.minimum_level``. The roles are kept on the view (``iam_admin_roles``) for the
    authorisation-matrix test and the console's navigation.

    ``also``: a page that existed before the console keeps accepting the people its own check
    accepted (e.g. ``detect.officers_group``), as before (no step-up: as strict as it was); the
    console's roles are accepted beside it, at ``admin.minimum_level``. ``reads``: the view's
    POST only builds a file (a report) and changes nothing, so the auditor may use it too (kept
    as ``iam_admin_reads``). ``on_refusal``: the feature's own record of a refusal."""
    if not roles:
        raise ValueError("require_admin needs at least one role (deny by default)")
    declared = frozenset(Role(r) for r in roles)

    def deco(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            stop = gate(declared, also=also, reads=reads, on_refusal=on_refusal)
            if stop is not None:
                return stop
            return fn(*args, **kwargs)

        wrapper.iam_admin_roles = declared  # type: ignore[attr-defined]
        wrapper.iam_admin_reads = reads  # type: ignore[attr-defined]
        wrapper.iam_admin_also = also is not None  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return deco


# -- the shell ------------------------------------------------------------------------------
bp = Blueprint("admin", __name__, url_prefix=PREFIX)


def sections() -> list[dict[str, Any]]:
    """The console's navigation for the person asking: sections with the pages they may open."""
    pages_: list[AdminPage] = current_app.extensions.get(ADMIN_PAGES, [])
    out: list[dict[str, Any]] = []
    for section in Section:
        links = []
        for page in sorted((p for p in pages_ if p.section == section), key=lambda p: (p.order, p.endpoint)):
            try:
                view = current_app.view_functions.get(page.endpoint)
                declared = getattr(view, "iam_admin_roles", None)
                if not declared:
                    continue
                ok = may_open(page) and bool(admin_roles() & allowed_roles(declared, "GET"))
                if not ok and (page.also is None or not page.also()):
                    continue  # a link never leads to a refusal
                href = url_for(page.endpoint)
            except Exception:  # noqa: BLE001 — a broken entry is hidden, never shown (deny by default)
                log.warning("admin page %s hidden: its check failed", page.endpoint, exc_info=True)
                continue
            links.append(
                {
                    "href": href,
                    "label": str(page.label),
                    "endpoint": page.endpoint,
                    "current": request.endpoint == page.endpoint,
                }
            )
        if links:
            out.append({"key": section.value, "label": str(SECTION_LABELS[section]), "links": links})
    return out


def _has_pages() -> bool:
    """Someone without a console role whom an older page's own check names opens the overview
    of those pages (a console role goes through the console's check, step-up included)."""
    return not admin_roles() and any(section["links"] for section in sections())


@bp.get("/")
@require_admin(*Role, also=_has_pages)
def home() -> Any:
    return render_template(
        "iam/admin/home.html",
        roles=[str(ROLE_LABELS[r]) for r in Role if r in current_admin().roles],
    )


def _nav_allowed() -> bool:
    return current_viewer() is not None and (bool(admin_roles()) or _has_pages())


def _shell_guard() -> Response | None:
    """Deny by default: a view under ``/admin`` that does not declare its roles is refused."""
    if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:
        return None  # 404/405 follow
    if not getattr(view, "iam_admin_roles", None):
        log.error("admin view %s declares no role; refused", request.endpoint)
        abort(403)
    return None


def init_app(app: Flask) -> None:
    from iam.admin import views  # noqa: F401 — the core's pages: people, audit

    app.register_blueprint(bp)
    register_admin_page(
        app,
        AdminPage(
            "admin.people", _l("People"), Section.PEOPLE, roles=frozenset(views.people.LOOKUP), order=10
        ),
        AdminPage(
            "admin.audit_search", _l("Audit log"), Section.AUDIT, roles=frozenset({Role.SECURITY_OFFICER})
        ),
    )
    app.before_request(_shell_guard)

    @app.context_processor
    def _admin_context() -> dict[str, Any]:
        return {"admin_sections": sections}

    register_nav(
        app, NavLink("admin.home", _l("Administration"), _nav_allowed, order=90, link_id="nav-admin")
    )
