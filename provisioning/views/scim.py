"""``/scim/v2/``: the SCIM 2.0 endpoints (scim2-server), behind an ``hr`` access token."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response, request
from scim2_models import UnauthorizedException
from scim2_server.applications.wsgi import WSGIApplication
from scim2_server.requests import ScimRequest
from scim2_server.service import ScimService

from iam.web import db, services
from provisioning.service import engine
from provisioning.service.scim import DbStorage, provider
from provisioning.views.api import api, caller

log = logging.getLogger("provisioning")


class _App(WSGIApplication):
    def check_auth(self, request: ScimRequest) -> None:
        if request.subject is None:
            raise UnauthorizedException()

    def dispatch_request(self, request: ScimRequest) -> Any:
        if self.needs_auth(request):
            self.check_auth(request)
        return self.handler.handle(request)


def _service() -> ScimService:
    svc = services()
    if "provisioning.scim" not in svc.extensions:
        svc.extensions["provisioning.scim"] = ScimService(provider(svc.settings.provisioning))
    return svc.extensions["provisioning.scim"]  # type: ignore[no-any-return]


@api.route("/scim/v2", defaults={"path": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
@api.route("/scim/v2/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def scim(path: str) -> Any:
    client = caller()
    settings = services().settings.provisioning
    storage = DbStorage(db(), settings, actor=f"client:{client}")
    app = _App(storage, _service().provider, _service())
    headers = {k: v for k, v in request.headers.items()}
    scim_request = ScimRequest(
        method=request.method,
        base_url=request.host_url.rstrip("/") + "/scim/v2",
        path="/" + path if path else "",
        query=dict(request.args.items()),
        headers=headers,
        body=request.get_data(cache=False),
        subject=client,
    )
    result = app.serve(scim_request)
    if result.status.value >= 400:
        db().rollback()
    else:
        db().commit()  # events durable before the answer
        for emp in dict.fromkeys(storage.accepted):
            try:
                if _urgent(emp):
                    engine.apply_due(services(), emp)
            except Exception as exc:  # noqa: BLE001 — stored; the worker retries
                log.warning("SCIM event of %s left to the worker: %s", emp, exc)
    body = b"" if result.body is None else json.dumps(result.body).encode()
    resp = Response(body, status=result.status.value)
    for key, value in result.headers.items():
        resp.headers[key] = value
    return resp


def _urgent(employee_number: str) -> bool:
    from sqlalchemy import select

    from iam import clock
    from provisioning.models import EventStatus, HrEvent

    kinds = services().settings.provisioning.apply_at_once
    with services().reader() as session:  # no write lock: the engine opens its own transactions
        row = session.scalar(
            select(HrEvent.id).where(
                HrEvent.employee_number == employee_number,
                HrEvent.status == EventStatus.PENDING,
                HrEvent.kind.in_(kinds),
                HrEvent.effective_at <= clock.now(),
            )
        )
    return row is not None
