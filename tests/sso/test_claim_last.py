"""The code is read without SQLite's write lock and claimed after the tokens are signed; the SSO
session is read the same way (issue 18). What that must not change: a code is redeemed once
and never after it expired, two redemptions at once leave exactly one winner whose tokens the
loser revokes, and a session ended meanwhile (a logout elsewhere) neither gets a code nor is
ended twice — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from iam import clock
from iam.models import AuditEvent
from sso import service
from sso.models import AuthorizationCode, SessionClient, SsoSession
from tests.sso.helpers import authorize_url, basic, exchange, make_client, make_user, sign_in_and_get_code


def _events(services: Any, kind: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == kind)))


def test_a_code_that_expires_while_its_tokens_are_made_is_not_redeemed(
    services: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    claim = service.claim_code

    def late_claim(*args: Any, **kw: Any) -> bool:
        clock.advance(dt.timedelta(seconds=services.settings.tokens.code_lifetime + 1))
        return claim(*args, **kw)

    monkeypatch.setattr(service, "claim_code", late_claim)
    resp = exchange(client, params["code"], flow, secret)
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant"
    assert "access_token" not in resp.get_json()
    assert _events(services, "token.code_replay") == []  # expired is not a replay
    with services.transaction() as s:
        row = s.scalars(select(AuthorizationCode)).one()
        assert row.used_at is None and row.access_jti is None and row.family_id is None


def test_two_simultaneous_redemptions_one_wins_and_its_tokens_are_revoked(
    services: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(app.test_client(), cid)
    both_signed = threading.Barrier(2, timeout=20)
    claim = service.claim_code

    def claim_after_both_signed(*args: Any, **kw: Any) -> bool:
        both_signed.wait()  # both requests have read the code unused and signed their tokens
        return claim(*args, **kw)

    monkeypatch.setattr(service, "claim_code", claim_after_both_signed)
    answers: list[Any] = [None, None]

    def redeem(i: int) -> None:
        with app.app_context():
            answers[i] = exchange(app.test_client(), params["code"], flow, secret)

    threads = [threading.Thread(target=redeem, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 400], [a.get_json() for a in answers]
    winner = next(a for a in answers if a.status_code == 200).get_json()
    loser = next(a for a in answers if a.status_code == 400).get_json()
    assert loser == {"error": "invalid_grant"} or loser["error"] == "invalid_grant"
    assert len(_events(services, "token.code_replay")) == 1
    c = app.test_client()
    refreshed = c.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]},
        headers=basic(cid, secret),
    )
    assert refreshed.get_json()["error"] == "invalid_grant"  # the winner's family was revoked
    introspected = c.post("/introspect", data={"token": winner["access_token"]}, headers=basic(cid, secret))
    assert introspected.get_json() == {"active": False}


def test_a_session_ended_after_it_was_read_gets_no_code(
    services: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_user(services)
    cid, _secret = make_client(services)
    sign_in_and_get_code(client, cid)  # the browser now has an SSO session
    find = service.find_sso_session

    def read_then_logout_elsewhere(*args: Any, **kw: Any) -> Any:
        row = find(*args, **kw)
        with services.transaction() as s:  # another request ends it before this one writes
            other = s.get(SsoSession, row.id)
            service.end_sso_session(s, other, reason="logout", actor=row.sub)
        return row

    monkeypatch.setattr(service, "find_sso_session", read_then_logout_elsewhere)
    codes_before = _count(services, AuthorizationCode)
    url, _flow = authorize_url(cid)
    resp = client.get(url)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/login")
    assert _count(services, AuthorizationCode) == codes_before
    with services.transaction() as s:
        ended = s.scalars(select(SsoSession)).one()
        assert ended.ended_at is not None and ended.end_reason == "logout"
        assert s.scalar(select(func.count()).select_from(SessionClient)) == 1  # only the first sign-in's


def test_a_session_is_ended_once_even_from_a_stale_read(services: Any) -> None:
    user = make_user(services)
    with services.transaction() as s:
        _cookie, row = service.create_sso_session(
            s, services.settings, sub=user.id, acr="pwd", amr=["pwd"], ip=None, user_agent=None
        )
        sid = row.id
    with services.reader() as r:
        stale = r.get(SsoSession, sid)  # read (without the lock) before another request ends it
    assert stale is not None and stale.ended_at is None
    with services.transaction() as s:
        service.end_sso_session(s, s.get(SsoSession, sid), reason="logout", actor=user.id)
    with services.transaction() as s:
        mine = s.merge(stale, load=False)  # as find_sso_session hands it to the request
        service.end_sso_session(s, mine, reason="new_login", actor=user.id)
        assert mine.ended_at is not None
    with services.transaction() as s:
        row = s.get(SsoSession, sid)
        assert row.end_reason == "logout"
    assert len(_events(services, "logout")) == 1


def _count(services: Any, model: Any) -> int:
    with services.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
