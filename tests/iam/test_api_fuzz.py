"""Property-based fuzzing of every operation in ``/api/v1/openapi.json`` (issue 11 item 7).

schemathesis generates requests from the OpenAPI document — valid ones and, in its negative
mode, ones that break the documented shape — and sends them, with a valid access token for our
API carrying every admin scope, to the WSGI app, on SQLite and on PostgreSQL (stricter: text lengths, no NUL). No answer may be a 5xx. Bounded and
deterministic: a fixed seed (``derandomize``) and a fixed number of examples per operation, so it
runs in well under two minutes inside ``make test``.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from iam.services import Services
from tests.sso.helpers import API_RESOURCE, make_client, make_user

EXAMPLES_PER_OPERATION = 12
SCOPES = "openid users:write mfa:admin x509:admin hr pim stats"


def _token(app: Flask, services: Services) -> str:
    user = make_user(services)
    cid, _ = make_client(services, name="Fuzzer", scopes=SCOPES.split())
    value, _ = app.extensions["sso.signer"].access_token(
        client_id=cid,
        sub=user.id,
        scope=SCOPES,
        audience=[API_RESOURCE],
        lifetime=3600,
        extra={"acr": "mfa", "amr": ["pwd", "otp"]},
    )
    return str(value)


def _strategy(operation: Any) -> Any:
    modes = [operation.as_strategy(GenerationMode.POSITIVE)]
    try:
        modes.append(operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:  # noqa: BLE001 — an operation without constraints has no negative cases
        pass
    return st.one_of(modes)


def _fuzz(operation: Any, bearer: dict[str, str], failures: list[str]) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation))
    def run(case: Any) -> None:
        response = case.call(headers=bearer)
        if response.status_code >= 500:
            failures.append(
                f"{operation.method.upper()} {operation.path}: {response.status_code} for "
                f"{case.as_curl_command(headers=bearer)[:400]}"
            )

    run()


def test_no_operation_answers_5xx(app: Flask, services: Services) -> None:
    bearer = {"Authorization": f"Bearer {_token(app, services)}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40  # every documented operation, the protocol endpoints too
    failures: list[str] = []

    for operation in operations:
        _fuzz(operation, bearer, failures)
    assert not failures, "5xx answers:\n" + "\n".join(failures)
