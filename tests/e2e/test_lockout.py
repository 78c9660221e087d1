"""The lockout of the real deployment (issues 20 and 21): ``iam serve`` with two gunicorn
workers and ``iam worker``, on SQLite and on PostgreSQL (row locks on the sign-in path), in
front of the real Samba AD DC — parallel sign-ins over HTTP, spread over several spellings of
one account, let exactly our threshold of wrong passwords reach AD, and AD never locks."""

from __future__ import annotations

import datetime as dt
import re
import threading

import httpx
import pytest
from sqlalchemy import select

from iam.directory.base import NewUser
from iam.models.audit import AuditEvent
from iam.models.lockout import LockoutCounter
from tests.e2e.conftest import LiveProvider, samba_fixture, unique

pytestmark = [pytest.mark.e2e, pytest.mark.samba]

PASSWORD = "Str0ng-Passw0rd!1"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
ERROR = re.compile(r'id="form-error">([^<]*)<')


def _sign_in_page(http: httpx.Client) -> str:
    page = http.get("/login")
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def _post(http: httpx.Client, token: str, username: str, password: str) -> tuple[int, str]:
    r = http.post("/login", data={"csrf_token": token, "username": username, "password": password})
    found = ERROR.search(r.text)
    return r.status_code, found.group(1) if found else r.headers.get("location", "")


def sign_in(provider: LiveProvider, username: str, password: str) -> tuple[int, str]:
    """One browser-like sign-in (page, then form); (status, error text or Location)."""
    with httpx.Client(base_url=provider.issuer, timeout=30) as http:
        return _post(http, _sign_in_page(http), username, password)


@pytest.mark.parametrize("live_provider", ["ad", "ad+postgres"], indirect=True)
def test_parallel_sign_ins_over_http_reach_ad_exactly_threshold_times(
    live_provider: LiveProvider, request: pytest.FixtureRequest
) -> None:
    threshold = live_provider.settings().lockout.threshold
    ad = samba_fixture(request, "ad_directory")
    samba_dc = samba_fixture(request, "samba_dc")
    pso = samba_fixture(request, "ad_user_policy")
    username = unique("e2elock")
    user = ad.create_user(NewUser(username=username, given_name="Lazar", family_name="Lazić"))
    ad.set_password(user.id, PASSWORD, must_change=False)
    ad.enable(user.id)
    # AD locks one wrong password later than we do: one more reaching AD would lock it
    pso(user.dn, lockout_threshold=threshold + 1, lockout_window=dt.timedelta(minutes=30))
    upn = user.upn or f"{username}@example.test"
    names = [username, username.upper(), upn, upn.title(), f"  {username.capitalize()}  "]

    n = 20
    barrier = threading.Barrier(n)
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []

    def attempt(i: int) -> None:
        try:
            with httpx.Client(base_url=live_provider.issuer, timeout=60) as http:
                token = _sign_in_page(http)
                barrier.wait(timeout=60)
                results.append(_post(http, token, names[i % len(names)], f"Wrong-{i}-Passw0rd!"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == n and len(set(results)) == 1, results
    refused = results[0]
    assert refused[0] == 401 and refused[1].startswith("Wrong username or password")

    entry = samba_dc.read(user.dn, ["badPwdCount", "lockoutTime"])
    assert int(entry["badPwdCount"][0]) == threshold  # exactly our threshold reached AD
    assert (entry.get("lockoutTime") or ["0"])[0] == "0"  # and AD never locked the account
    services = live_provider.services()
    with services.transaction() as s:
        row = s.get(LockoutCounter, f"acct:id:{user.id}")
        assert row is not None and (row.failures, row.in_flight) == (threshold, 0)
        assert row.locked_until is not None
        locks = s.scalars(
            select(AuditEvent).where(AuditEvent.event == "login.locked_out", AuditEvent.subject == user.id)
        ).all()
        assert [(e.severity, e.details["locked"]) for e in locks] == [("critical", "account")]

    for name in names:  # the right password, refused under every spelling while we hold the lock
        assert sign_in(live_provider, name, PASSWORD) == refused, name
    assert int(samba_dc.read(user.dn, ["badPwdCount"])["badPwdCount"][0]) == threshold

    out = live_provider.cli("user", "unlock", upn.upper())
    assert "Unlocked" in out.stdout
    status, location = sign_in(live_provider, username.upper(), PASSWORD)
    assert status == 302 and not location.endswith("/login"), (status, location)
