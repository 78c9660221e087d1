"""Two simultaneous uses of one refresh token (R-SSO-4, RFC 9700 §4.14.2): exactly one wins, the
other is a replay that revokes the whole family — on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from iam.models import AuditEvent
from sso import service
from sso.models import RefreshToken
from tests.sso.helpers import basic, exchange, make_client, make_user, sign_in_and_get_code


def _refresh(app: Any, cid: str, secret: str, rt: str) -> Any:
    return app.test_client().post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=basic(cid, secret)
    )


def test_two_simultaneous_refreshes_one_wins_and_the_family_is_revoked(
    services: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(services)
    cid, secret = make_client(services)
    assert secret
    params, flow = sign_in_and_get_code(app.test_client(), cid)
    rt = exchange(app.test_client(), params["code"], flow, secret).get_json()["refresh_token"]

    # Both requests have found the token unused before either claims it: the race at its worst.
    both_found = threading.Barrier(2, timeout=20)
    claim = service.claim_refresh_token

    def claim_after_both_found(session: Any, row: RefreshToken, successor: str) -> bool:
        both_found.wait()
        return claim(session, row, successor)

    monkeypatch.setattr(service, "claim_refresh_token", claim_after_both_found)
    answers: list[Any] = [None, None]
    errors: list[BaseException] = []

    def use(i: int) -> None:
        try:
            answers[i] = _refresh(app, cid, secret, rt)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not both_found.broken, "the two requests did not reach the claim together"
    monkeypatch.undo()

    assert sorted(a.status_code for a in answers) == [200, 400], [a.get_json() for a in answers]
    [winner] = [a for a in answers if a.status_code == 200]
    [loser] = [a for a in answers if a.status_code == 400]
    assert loser.get_json()["error"] == "invalid_grant"
    assert winner.get_json()["refresh_token"] != rt

    with services.reader() as s:
        rows = list(s.scalars(select(RefreshToken).where(RefreshToken.sub == user.id)))
        # the original (used once) and the winner's new token: one family, all revoked
        assert len(rows) == 2
        assert len({r.family_id for r in rows}) == 1
        assert all(r.revoked_at is not None for r in rows)
        assert sum(r.used_at is not None for r in rows) == 1
        reuse = list(s.scalars(select(AuditEvent).where(AuditEvent.event == "token.refresh_reuse")))
        assert [(e.subject, e.client_id, e.outcome) for e in reuse] == [(user.id, cid, "failure")]

    # the winner's new token went down with its family
    late = _refresh(app, cid, secret, winner.get_json()["refresh_token"])
    assert late.status_code == 400 and late.get_json()["error"] == "invalid_grant"
