"""Request plumbing shared by every blueprint: one DB session per request, the caller's
address, security headers, error pages. Nothing here holds business rules."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, Response, current_app, g, has_app_context, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, HTTPException, Unauthorized, UnsupportedMediaType

from iam import cluster, pages
from iam.db import holds_connection, is_postgres
from iam.i18n import N_, translate
from iam.services import Services

log = logging.getLogger("iam.web")

UNAVAILABLE = N_("The service is temporarily unavailable. Please try again in a moment.")
"""What a caller is told while the database cannot be reached (503)."""


def services() -> Services:
    return current_app.extensions["iam.services"]  # type: ignore[no-any-return]


def db() -> Session:
    """The request's database session (one transaction, committed at the boundary)."""
    if "db" not in g:
        g.db = services().sessions()
    return g.db  # type: ignore[no-any-return]


def reader() -> Session:
    """A session for this request's reads. On SQLite a read-only one of its own: it never holds
    the write lock, so reads before the request's first write don't serialise concurrent
    requests. On PostgreSQL, which has no such lock, the request's session itself: one pooled
    connection and one transaction per request, not two (issue 18)."""
    if "db_reader" not in g:
        svc = services()
        g.db_reader = db() if svc.engine.dialect.name == "postgresql" else svc.reader()
    return g.db_reader  # type: ignore[no-any-return]


def read_session() -> Session:
    """Where a read goes that may come after this request's own writes: the request's session
    once it holds a connection (so the read sees them), else :func:`reader` — on SQLite a read
    before the request's first write then takes no write lock."""
    own: Session | None = g.get("db")
    return own if own is not None and holds_connection(own) else reader()


@contextmanager
def write_now() -> Iterator[Session]:
    """A transaction for a write that must not wait for the end of the request, committed at
    once — except on SQLite when the request's session already holds the write lock (a second
    transaction would wait for it): then the write goes into the request's transaction."""
    own: Session | None = g.get("db")
    if own is not None and holds_connection(own) and not is_postgres(own):
        yield own
    else:
        with services().transaction() as session:
            yield session


def client_ip() -> str | None:
    """The caller's address; X-Forwarded-For is believed only from configured proxies."""
    remote = request.remote_addr
    proxies = services().settings.server.trusted_proxies
    if remote and proxies and _in(remote, proxies):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        while hops:
            hop = hops.pop()
            if not _in(hop, proxies):
                return hop
    return remote


def _in(addr: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def ip_allowed(networks: list[str]) -> bool:
    ip = client_ip()
    return bool(ip) and _in(ip or "", networks)


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.startswith("/api/") or best == "application/json"


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, with a bound on nesting: a body like ``[`` × 100,000 (or anything nested
    deeper than ``server.max_json_depth``) is a ``ValueError`` — a 400 — never a RecursionError."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        limit = services().settings.server.max_json_depth if has_app_context() else 64
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError(f"it is nested deeper than {limit} levels") from None
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:  # iterative: the check itself cannot overflow
            item, depth = stack.pop()
            if isinstance(item, dict | list):
                if depth > limit:
                    raise ValueError(f"it is nested deeper than {limit} levels")
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children)
        return value


class IamRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType("The body must be JSON (Content-Type: application/json).")
        raise BadRequest(f"The body is not valid JSON: {e}.")


JSON_BODY_PREFIXES = ("/api/", "/scim/")
"""Where every request body must be JSON: checked once, before any view, so a malformed body
is a precise 400 (415 for another content type) and never reaches the business code."""


def _check_json_body() -> Response | None:
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return None
    if not request.path.startswith(JSON_BODY_PREFIXES):
        return None
    if not request.get_data(cache=True):
        return None
    try:
        request.get_json()  # parsed once and cached for the view
    except HTTPException as exc:
        code, description = exc.code or 400, exc.description or "The body is not valid JSON."
        if request.path.startswith("/scim/"):
            return Response(
                json.dumps(
                    {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                        "status": str(code),
                        "scimType": "invalidSyntax",
                        "detail": description,
                    }
                ),
                status=code,
                content_type="application/scim+json",
            )
        resp = jsonify(error="invalid_request", error_description=description)
        resp.status_code = code
        return resp
    return None


def init_app(app: Flask) -> None:
    app.json = JsonProvider(app)
    app.request_class = IamRequest
    pages.init_app(app)
    outage = DatabaseOutage()
    app.extensions["iam.db_outage"] = outage

    @app.before_request
    def _before() -> Response | None:
        g.client_ip = client_ip()
        g.user_agent = request.headers.get("User-Agent", "")[:512]
        g.csp_nonce = secrets.token_urlsafe(12)
        g.services = services()
        cluster.listen(g.services)  # once per process (after gunicorn forked it)
        return _check_json_body()

    @app.after_request
    def _commit_and_headers(response: Response) -> Response:
        # end the read snapshot first: an open reader keeps SQLite from checkpointing the WAL
        reader_session: Session | None = g.pop("db_reader", None)
        session: Session | None = g.pop("db", None)
        if reader_session is not None and reader_session is not session:
            reader_session.close()
        used_database = session is not None or reader_session is not None
        if session is not None:
            try:
                if response.status_code < 500:
                    session.commit()
                else:
                    session.rollback()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                outage.refused(exc)  # the connection died at the commit
                response = unavailable_response(UNAVAILABLE)
            finally:
                session.close()
        if used_database and response.status_code < 500:
            outage.answered()
        _security_headers(response)
        return response

    @app.teardown_request
    def _teardown(exc: BaseException | None) -> None:
        for name in ("db", "db_reader"):
            session: Session | None = g.pop(name, None)
            if session is not None:
                session.rollback()
                session.close()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        if isinstance(exc, InvalidToken):
            return _api_error(401, "invalid_token", exc.description or "")
        if wants_json():
            return jsonify(error=exc.name.lower().replace(" ", "_"), error_description=exc.description), code
        return pages.http_error_page(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if is_unavailable(exc):
            outage.refused(exc)
            return unavailable_response(UNAVAILABLE)
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        # never leak internals (SQL, stack) to the caller
        if wants_json():
            return jsonify(error="server_error", error_description="An internal error occurred."), 500
        return pages.error_page(500)


def is_unavailable(exc: BaseException) -> bool:
    """Is ``exc`` the database being unreachable (refused or dropped connection, pool
    exhausted, server shutting down) rather than a bug?"""
    if isinstance(exc, (OperationalError, InterfaceError, SqlTimeoutError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def unavailable_response(message: str) -> Response:
    """503 with ``Retry-After``: JSON (OAuth's ``temporarily_unavailable``) unless the caller
    asked for a page."""
    retry = str(services().settings.server.retry_after)
    html = request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    if html and not wants_json():
        resp = Response(
            render_template(
                "iam/error.html", title=translate("Temporarily unavailable"), message=translate(message)
            ),
            status=503,
            mimetype="text/html",
        )
    else:
        resp = jsonify(error="temporarily_unavailable", error_description=message)
        resp.status_code = 503
    resp.headers["Retry-After"] = retry
    resp.headers["Cache-Control"] = "no-store"
    return resp


class DatabaseOutage:
    """Logs a database outage once when it begins (and once when requests succeed again),
    not once per refused request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None
        self._refused = 0

    @property
    def active(self) -> bool:
        return self._since is not None

    def refused(self, exc: BaseException) -> None:
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
                self._refused = 0
            self._refused += 1
        if first:
            # the driver's own message names host and port, never the password or the SQL
            orig = getattr(exc, "orig", None) or exc
            reason = (str(orig).strip().splitlines() or [""])[0][:300]
            log.error(
                "database unavailable (%s: %s); answering 503 until it is back",
                type(orig).__name__,
                reason,
            )
        else:
            log.debug("database still unavailable on %s %s", request.method, request.path)

    def answered(self) -> None:
        """A request used the database and succeeded."""
        if self._since is None:
            return
        with self._lock:
            since, refused, self._since = self._since, self._refused, None
        if since is not None:
            log.warning(
                "database available again after %.1f s; %d request(s) were answered 503",
                time.monotonic() - since,
                refused,
            )


CSP_IMG_SOURCES = "csp_img_sources"
"""``flask.g`` key: further ``img-src`` sources a page allows (e.g. ``("https:",)``)."""


def _security_headers(response: Response) -> None:
    nonce = g.get("csp_nonce", "")
    # a page may allow pictures from further sources (the portal: https application logos)
    img = " ".join(["'self'", "data:", *g.get(CSP_IMG_SOURCES, ())])
    h = response.headers
    h.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; img-src {img}; style-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; form-action 'self' http: https:; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    )
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: over https Flask-WTF's CSRF check requires a same-origin
    # Referer on every form post; other sites still get none
    h.setdefault("Referrer-Policy", "same-origin")
    if services().settings.issuer.startswith("https://"):
        h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint and request.endpoint != "static" and "Cache-Control" not in h:
        h["Cache-Control"] = "no-store"


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SignedIn:
    """The person signed in to this browser, as the sign-in feature knows them."""

    sub: str
    username: str
    level: str
    """The sign-in level (``acr``) the session reached, one of ``mfa.levels``."""


SIGNED_IN = "iam.signed_in"
"""``app.extensions`` key of the sign-in feature's answer to "who is signed in to this browser"
(:func:`register_signed_in`). The core asks it only through :func:`signed_in`: its pages (audit
reports), the page language (``iam.i18n``) and the console (``iam.admin``)."""


def register_signed_in(app: Flask, finder: Callable[[], SignedIn | None]) -> None:
    """The sign-in feature says, once, how to tell who is signed in to this request's browser:
    FINDER answers a :class:`SignedIn`, or None when nobody is or the account is disabled."""
    app.extensions[SIGNED_IN] = finder


def signed_in() -> SignedIn | None:
    """The person signed in to this browser (None: nobody, or no sign-in feature loaded — deny
    by default)."""
    finder: Callable[[], SignedIn | None] | None = current_app.extensions.get(SIGNED_IN)
    return finder() if finder is not None else None


BEARER_VERIFIER = "iam.bearer_verifier"
"""``app.extensions`` key of the function that checks an OAuth access token and returns its
claims (or None). The provider package registers it; the core never imports it."""


class InvalidToken(Unauthorized):
    """401 ``invalid_token`` (RFC 6750 §3.1) with ``WWW-Authenticate``, for bearer APIs that
    raise instead of returning (``iam.web`` answers it in JSON)."""


def _api_error(status: int, error: str, description: str) -> Response:
    resp = jsonify(error=error, error_description=description)
    resp.status_code = status
    resp.headers["WWW-Authenticate"] = f'Bearer error="{error}", error_description="{description}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _for_our_api(claims: dict[str, Any]) -> bool:
    """The token was issued for the provider's own APIs: ``aud`` holds ``api_resource``."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    return services().settings.api_resource in audiences


def api_token_claims(value: str) -> dict[str, Any] | None:
    """The claims of an access token of ours that is valid (signature, expiry, revocation,
    client enabled — checked by the registered verifier) AND issued for the provider's own
    APIs (``aud`` = ``settings.api_resource``): a token minted for a business application is
    never accepted here, whatever its scope. None otherwise. Every bearer API goes through this."""
    verify = current_app.extensions.get(BEARER_VERIFIER)
    if verify is None or not value:
        return None
    claims: dict[str, Any] | None = verify(value)
    if claims is None or not _for_our_api(claims):
        return None
    return claims


def bearer_claims(scope: str) -> dict[str, Any] | None:
    """The claims of the request's ``Authorization: Bearer`` access token if it is ours, valid,
    for our APIs (:func:`api_token_claims`) and carries ``scope``; otherwise None. For routes
    that answer in their own format (SCIM)."""
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not value.strip():
        return None
    claims = api_token_claims(value.strip())
    if claims is None or scope not in str(claims.get("scope", "")).split():
        return None
    return claims


def require_scope(scope: str) -> Callable[[F], F]:
    """Protect a JSON API route: a valid access token of ours (``Authorization: Bearer``) issued
    for our APIs (``aud`` = ``settings.api_resource``, else 401) whose ``scope`` includes
    ``scope`` (else 403). Denied by default: without a registered verifier nothing
    passes. The token's claims are in ``g.api_claims``; ``g.api_actor`` names the caller for the
    audit log (``client:<client_id>``, or the user's ``sub`` for a user's token)."""

    def deco(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            auth = request.headers.get("Authorization", "")
            verify = current_app.extensions.get(BEARER_VERIFIER)
            if not auth.lower().startswith("bearer ") or verify is None:
                return _api_error(401, "invalid_token", "An access token is required.")
            claims = verify(auth[7:].strip())
            if claims is None:
                return _api_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
            if not _for_our_api(claims):
                return _api_error(
                    401,
                    "invalid_token",
                    "The access token was not issued for this API (ask for "
                    f"resource={services().settings.api_resource} at the token endpoint).",
                )
            if scope not in str(claims.get("scope", "")).split():
                return _api_error(403, "insufficient_scope", f"The access token lacks the scope {scope}.")
            g.api_claims = claims
            client_id = claims.get("client_id")
            sub = claims.get("sub")
            g.api_actor = f"client:{client_id}" if not sub or sub == client_id else str(sub)
            return fn(*args, **kwargs)

        wrapper.iam_bearer_api = True  # type: ignore[attr-defined]  # no cookies: no CSRF check
        return wrapper  # type: ignore[return-value]

    return deco
