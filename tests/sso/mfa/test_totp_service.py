"""TOTP and recovery codes on each storage backend: the ±1 step window, no replay (also under
concurrency), single-use recovery codes, throttling, encryption at rest, administrator reset."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from iam import clock
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from sso.mfa import service as mfa
from sso.mfa.models import RecoveryCode, TotpCredential
from tests.sso.mfa.helpers import code, enroll, next_step, verify

SUB = "00000000-0000-4000-8000-00000000a11c"


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(dt.datetime(2026, 11, 26, 0, 0, 10, tzinfo=dt.UTC))


def _events(services, name):
    with services.transaction() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)))


def test_window_accepts_one_step_either_side_only(services):
    secret, _ = enroll(services, SUB)
    next_step(services)  # the step before now is later than the confirming code's
    assert not verify(services, SUB, code(services, secret, -2))
    assert not verify(services, SUB, code(services, secret, +2))
    assert verify(services, SUB, code(services, secret, -1))
    assert verify(services, SUB, code(services, secret, 0))
    assert verify(services, SUB, code(services, secret, +1))
    assert not verify(services, SUB, "12345")  # wrong length
    assert not verify(services, SUB, "abcdef")


def test_accepted_code_is_never_accepted_again(services):
    secret, _ = enroll(services, SUB)
    current = code(services, secret)
    assert verify(services, SUB, current)
    assert not verify(services, SUB, current)  # replay within its window
    clock.advance(dt.timedelta(seconds=services.settings.mfa.period))
    assert not verify(services, SUB, current)  # still inside the ±1 window one step later: refused
    # a code of an earlier step than the last accepted one is refused too
    assert verify(services, SUB, code(services, secret, +1))
    assert not verify(services, SUB, code(services, secret, 0))
    rejected = _events(services, "mfa.code_rejected")
    assert [e.details["reason"] for e in rejected] == ["replayed", "replayed", "replayed"]
    assert all(e.severity == "significant" for e in rejected)


def test_one_code_submitted_concurrently_succeeds_once(services):
    secret, _ = enroll(services, SUB)
    value = code(services, secret)
    n = 6
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        ok = verify(services, SUB, value)
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * (n - 1) + [True]


def test_recovery_codes_are_single_use_and_hashed(services):
    _, codes = enroll(services, SUB)
    assert len(codes) == services.settings.mfa.recovery_codes == 10
    assert len(set(codes)) == 10
    with services.transaction() as s:
        stored = [r.code_hash for r in s.scalars(select(RecoveryCode).where(RecoveryCode.sub == SUB))]
    assert not set(codes) & set(stored)  # never the code itself
    m = services.settings.mfa
    with services.transaction() as s:
        assert mfa.use_recovery_code(s, m, sub=SUB, code=codes[0].lower().replace("-", " "))
    with services.transaction() as s:
        assert not mfa.use_recovery_code(s, m, sub=SUB, code=codes[0])
        assert mfa.recovery_codes_left(s, SUB) == 9
    with services.transaction() as s:  # another user's code is not ours
        assert not mfa.use_recovery_code(s, m, sub="someone-else", code=codes[1])


def test_recovery_code_used_concurrently_succeeds_once(services):
    _, codes = enroll(services, SUB)
    n = 5
    barrier = threading.Barrier(n)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        with services.transaction() as s:
            ok = mfa.use_recovery_code(s, services.settings.mfa, sub=SUB, code=codes[3])
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [False] * (n - 1) + [True]


def test_secret_is_encrypted_at_rest(services):
    secret, _ = enroll(services, SUB)
    with services.transaction() as s:
        row = s.scalars(select(TotpCredential).where(TotpCredential.sub == SUB)).one()
        assert secret.encode() not in row.secret_encrypted
        # bound to its row: the blob does not decrypt as another credential's
        with pytest.raises(Exception):  # noqa: B017
            services.cipher.decrypt(row.secret_encrypted, context=b"mfa-totp:other")
        assert services.cipher.decrypt(row.secret_encrypted, context=b"mfa-totp:" + row.id.encode()) == (
            secret.encode()
        )


def test_wrong_codes_throttle_until_the_time_passes(services):
    secret, codes = enroll(services, SUB)
    m = services.settings.mfa
    for _ in range(m.throttle_threshold):
        assert not verify(services, SUB, "000000" if code(services, secret) != "000000" else "111111")
    with pytest.raises(mfa.Throttled):
        verify(services, SUB, code(services, secret))  # even the right code
    with services.transaction() as s, pytest.raises(mfa.Throttled):
        mfa.use_recovery_code(s, m, sub=SUB, code=codes[0])
    throttled = _events(services, "mfa.throttled")
    assert [e.severity for e in throttled] == ["critical"]
    with services.transaction() as s:  # the security officer is told
        assert s.scalars(select(Job).where(Job.kind == "iam.notify_critical")).all()
    clock.advance(dt.timedelta(seconds=m.throttle_duration + 1))
    assert verify(services, SUB, code(services, secret))


def test_success_resets_the_throttle_counter(services):
    secret, _ = enroll(services, SUB)
    m = services.settings.mfa
    for _ in range(m.throttle_threshold - 1):
        verify(services, SUB, "999999" if code(services, secret) != "999999" else "888888")
    assert verify(services, SUB, code(services, secret))
    next_step(services)
    verify(services, SUB, "999999" if code(services, secret) != "999999" else "888888")
    assert verify(services, SUB, code(services, secret))  # not throttled: the count restarted


def test_enrollment_needs_a_right_first_code_and_replaces_the_old_app(services):
    old_secret, _ = enroll(services, SUB)
    m = services.settings.mfa
    with services.transaction() as s:
        e = mfa.start_enrollment(s, m, services.cipher, sub=SUB, account_name="alice", issuer_label="T")
        assert "otpauth://totp/" in e.uri and "<svg" in e.svg
    with services.transaction() as s:
        assert (
            mfa.confirm_enrollment(
                s, m, services.cipher, sub=SUB, credential_id=e.credential_id, code="000000"
            )
            is None
            or code(services, e.secret) == "000000"
        )
    assert verify(services, SUB, code(services, old_secret))  # the old app works until confirmed
    with services.transaction() as s:
        codes = mfa.confirm_enrollment(
            s, m, services.cipher, sub=SUB, credential_id=e.credential_id, code=code(services, e.secret)
        )
    assert codes is not None
    next_step(services)
    assert not verify(services, SUB, code(services, old_secret))
    assert verify(services, SUB, code(services, e.secret))


def test_admin_reset_removes_everything_and_is_a_critical_event(services):
    secret, codes = enroll(services, SUB)
    for _ in range(services.settings.mfa.throttle_threshold):
        verify(services, SUB, "000000" if code(services, secret) != "000000" else "111111")
    with services.transaction() as s:
        result = mfa.admin_reset(s, sub=SUB, actor="helpdesk", reason="ticket 42: lost phone")
    assert result == {"sub": SUB, "had_totp": True, "recovery_codes_removed": 10, "sessions_ended": 0}
    with services.transaction() as s:
        assert not mfa.has_totp(s, SUB)
        assert mfa.throttled_until(s, SUB) is None
        assert not mfa.use_recovery_code(s, services.settings.mfa, sub=SUB, code=codes[0])
    (event,) = _events(services, "mfa.reset")
    assert event.severity == "critical" and event.actor == "helpdesk" and event.subject == SUB
    assert event.details["reason"] == "ticket 42: lost phone"
    assert secret not in str(event.details)
    with pytest.raises(mfa.NoAuthenticator):
        verify(services, SUB, code(services, secret))
