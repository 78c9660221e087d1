"""``tokens.refresh_retry_grace_seconds``: a refresh whose answer was lost (the node died after the
commit) may be retried with the same token while the token that answer carried is unused; every
other second use is still a replay that revokes the family (RFC 9700 §4.14.2) — on SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from iam import clock
from iam.crypto import token_hash
from iam.models import AuditEvent
from sso.models import RefreshToken
from tests.sso.helpers import basic, exchange, make_client, make_user, sign_in_and_get_code

GRACE = 10


@pytest.fixture
def grace(services: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(services.settings.tokens, "refresh_retry_grace_seconds", GRACE)
    return GRACE


def _start(services: Any, client: Any) -> tuple[str, str, str]:
    make_user(services)
    cid, secret = make_client(services)
    params, flow = sign_in_and_get_code(client, cid)
    rt = exchange(client, params["code"], flow, secret).get_json()["refresh_token"]
    return cid, secret, rt


def _refresh(client: Any, cid: str, secret: str, rt: str) -> Any:
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": rt}, headers=basic(cid, secret)
    )


def _ok(resp: Any) -> str:
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["refresh_token"])


def _refused(resp: Any) -> bool:
    return bool(resp.status_code == 400 and resp.get_json()["error"] == "invalid_grant")


def _events(services: Any, name: str) -> list[AuditEvent]:
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_strict_by_default_a_retry_revokes_the_family(services: Any, client: Any) -> None:
    assert services.settings.tokens.refresh_retry_grace_seconds == 0
    cid, secret, rt1 = _start(services, client)
    rt2 = _ok(_refresh(client, cid, secret, rt1))
    assert _refused(_refresh(client, cid, secret, rt1))
    assert _refused(_refresh(client, cid, secret, rt2))
    assert len(_events(services, "token.refresh_reuse")) == 1


def test_a_retry_within_the_grace_gets_a_new_token_and_the_lost_one_dies(
    services: Any, client: Any, grace: int
) -> None:
    cid, secret, rt1 = _start(services, client)
    lost = _ok(_refresh(client, cid, secret, rt1))  # the answer never reached the client
    clock.advance(dt.timedelta(seconds=grace - 1))
    rt3 = _ok(_refresh(client, cid, secret, rt1))
    assert rt3 not in (lost, rt1)
    with services.transaction() as s:
        row = s.get(RefreshToken, token_hash(lost))
        assert row is not None and row.revoked_at is not None and row.revoked_reason == "superseded"
        first = s.get(RefreshToken, token_hash(rt1))
        assert first is not None and first.replaced_by == token_hash(rt3)
    retried = _events(services, "token.refresh_retry")
    assert [(e.client_id, e.outcome) for e in retried] == [(cid, "success")]
    assert _events(services, "token.refresh_reuse") == []
    # the chain goes on from the retry's token, and the family still rotates
    rt4 = _ok(_refresh(client, cid, secret, rt3))
    assert rt4 != rt3


def test_the_superseded_token_presented_later_is_a_replay(services: Any, client: Any, grace: int) -> None:
    """Whoever held the 'lost' token (the answer did arrive, or someone else has the family) ends
    the family: the theft signal is delayed by the grace, never lost."""
    cid, secret, rt1 = _start(services, client)
    lost = _ok(_refresh(client, cid, secret, rt1))
    rt3 = _ok(_refresh(client, cid, secret, rt1))
    assert _refused(_refresh(client, cid, secret, lost))
    assert _refused(_refresh(client, cid, secret, rt3))  # the whole family is revoked
    assert len(_events(services, "token.refresh_reuse")) == 1


def test_no_retry_once_the_successor_was_used(services: Any, client: Any, grace: int) -> None:
    cid, secret, rt1 = _start(services, client)
    rt2 = _ok(_refresh(client, cid, secret, rt1))
    rt3 = _ok(_refresh(client, cid, secret, rt2))  # the answer arrived: rt2 was used
    assert _refused(_refresh(client, cid, secret, rt1))
    assert _refused(_refresh(client, cid, secret, rt3))
    assert len(_events(services, "token.refresh_reuse")) == 1


def test_no_retry_after_the_grace(services: Any, client: Any, grace: int) -> None:
    cid, secret, rt1 = _start(services, client)
    rt2 = _ok(_refresh(client, cid, secret, rt1))
    clock.advance(dt.timedelta(seconds=grace + 1))
    assert _refused(_refresh(client, cid, secret, rt1))
    assert _refused(_refresh(client, cid, secret, rt2))


def test_the_grace_counts_from_the_first_use_not_from_each_retry(
    services: Any, client: Any, grace: int
) -> None:
    cid, secret, rt1 = _start(services, client)
    _ok(_refresh(client, cid, secret, rt1))
    clock.advance(dt.timedelta(seconds=grace - 2))
    _ok(_refresh(client, cid, secret, rt1))  # a second lost answer
    clock.advance(dt.timedelta(seconds=3))
    assert _refused(_refresh(client, cid, secret, rt1))


def test_a_retry_does_not_outlive_the_family(services: Any, client: Any, grace: int) -> None:
    cid, secret, rt1 = _start(services, client)
    _ok(_refresh(client, cid, secret, rt1))
    with services.transaction() as s:
        row = s.get(RefreshToken, token_hash(rt1))
        assert row is not None
        family_end = row.expires_at
    rt3 = _ok(_refresh(client, cid, secret, rt1))
    with services.transaction() as s:
        row = s.get(RefreshToken, token_hash(rt3))
        assert row is not None and row.expires_at == family_end


def test_the_setting_is_bounded(tmp_path: Any) -> None:
    from pydantic import ValidationError

    from iam.config import TokenSettings

    assert TokenSettings(refresh_retry_grace_seconds=10).refresh_retry_grace_seconds == 10
    for bad in (-1, 121):
        with pytest.raises(ValidationError):
            TokenSettings(refresh_retry_grace_seconds=bad)
