"""The elevation state machine on SQLite and PostgreSQL, with the built-in directory
(the same life against the real Samba AD DC is in test_ad.py)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from iam import clock, events
from iam.directory.errors import AccountDisabled, InvalidCredentials
from iam.errors import Conflict, Forbidden, NotFound, ValidationFailed
from iam.jobs import Worker
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from pim import service
from pim.models import AdminAccount, Decision, ElevationRequest, SharedAccount, State
from pim.tokens import elevation_claims
from tests.pim.conftest import Env
from tests.smtp import SmtpSink


def _eligible(env: Env, *names: str, role: str = "ops") -> None:
    with env.tx() as s:
        for n in names:
            service.add_eligibility(s, env.services, actor=env.actor("sec"), role=role, username=n)
    env.run_jobs()  # admin accounts created


def _events(env: Env, name: str) -> list[AuditEvent]:
    with env.tx() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def _request(env: Env, who: str = "alice", role: str = "ops", **kw: object) -> str:
    with env.tx() as s:
        req = service.request_elevation(
            s,
            env.services,
            actor=env.actor(who, str(kw.pop("level", "mfa"))),
            role=role,
            justification=str(kw.pop("justification", "patch the file servers tonight")),
            **kw,  # type: ignore[arg-type]
        )
        return req.id


def _get(env: Env, rid: str) -> ElevationRequest:
    with env.tx() as s:
        row = s.get(ElevationRequest, rid)
        assert row is not None
        return row


def _admin(env: Env, who: str = "alice") -> AdminAccount:
    with env.tx() as s:
        acc = s.get(AdminAccount, env.users[who].id)
        assert acc is not None
        return acc


def test_full_life_request_approve_activate_expire(pim: Env) -> None:
    env, d = pim, pim.services.directory
    _eligible(env, "alice")
    acc = _admin(env)
    assert acc.username == "adm-alice" and acc.account_id
    admin = d.get_user(acc.account_id)
    assert admin is not None and not admin.enabled  # no standing access (R-PIM-2)
    assert d.user_groups(acc.account_id) == []

    rid = _request(env)
    assert _get(env, rid).state == State.REQUESTED
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True, comment="ok")
    req = _get(env, rid)
    assert req.state == State.APPROVED
    assert req.ends_at is not None and req.starts_at is not None
    assert req.ends_at - req.starts_at == dt.timedelta(minutes=30)  # window starts at approval
    env.run_jobs()
    assert _get(env, rid).state == State.ACTIVE
    admin = d.get_user(acc.account_id)
    assert admin is not None and admin.enabled
    assert d.user_groups(acc.account_id) == ["Ops Admins"]

    with env.tx() as s:
        password = service.reveal_secret(s, env.services, actor=env.actor("alice"), request_id=rid)
    assert d.authenticate("adm-alice", password).id == acc.account_id
    with env.tx() as s, pytest.raises(Conflict):
        service.reveal_secret(s, env.services, actor=env.actor("alice"), request_id=rid)
    with env.tx() as s:  # tokens of the admin account end with the elevation
        claims = elevation_claims(s, acc.account_id, clock.timestamp() + 10 * 3600)
    assert claims["exp"] == int(req.ends_at.timestamp()) and claims["pim_roles"] == ["ops"]

    clock.advance(dt.timedelta(minutes=30, seconds=1))
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.EXPIRED and req.removed_at is not None
    admin = d.get_user(acc.account_id)
    assert admin is not None and not admin.enabled
    assert d.user_groups(acc.account_id) == []
    with pytest.raises((AccountDisabled, InvalidCredentials)):
        d.authenticate("adm-alice", password)
    d.enable(acc.account_id)  # even enabled by hand, the old password no longer works (rotated)
    with pytest.raises(InvalidCredentials):
        d.authenticate("adm-alice", password)
    names = [e.event for e in _events(env, "pim.activated")]
    assert names == ["pim.activated"]
    assert _events(env, "pim.activated")[0].severity == "critical"
    assert _events(env, "pim.expired") and _events(env, "pim.access_removed")
    with env.tx() as s:
        assert elevation_claims(s, acc.account_id, clock.timestamp() + 600)["exp"] <= clock.timestamp()
        kinds = set(s.scalars(select(Job.kind)))
    assert {"pim.notify", "pim.ad.activate", "pim.ad.deactivate", "pim.expire"} <= kinds


def test_self_approval_and_non_approver_refused(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s, pytest.raises(Forbidden, match="your own"):
        service.decide(s, env.services, actor=env.actor("alice"), request_id=rid, approve=True)
    with env.tx() as s, pytest.raises(Forbidden, match="not an approver"):
        service.decide(s, env.services, actor=env.actor("eve"), request_id=rid, approve=True)
    assert _get(env, rid).state == State.REQUESTED
    assert len(_events(env, "pim.self_approval_refused")) == 1
    assert len(_events(env, "pim.decision_refused")) == 1
    with env.tx() as s:  # nor does alice see her own request in her inbox, eve sees nothing
        assert service.inbox(s, env.services, env.actor("alice")) == []
        assert service.inbox(s, env.services, env.actor("eve")) == []
        assert [r["id"] for r in service.inbox(s, env.services, env.actor("boss"))] == [rid]
        with pytest.raises(NotFound):
            service.show(s, env.services, env.actor("eve"), rid)


def test_not_eligible_and_step_up(pim: Env) -> None:
    env = pim
    with env.tx() as s, pytest.raises(Forbidden, match="not eligible"):
        service.request_elevation(s, env.services, actor=env.actor("eve"), role="ops", justification="x" * 20)
    _eligible(env, "alice")
    with env.tx() as s, pytest.raises(service.StepUpRequired) as info:
        service.request_elevation(
            s, env.services, actor=env.actor("alice", "password"), role="ops", justification="x" * 20
        )
    assert info.value.required == "mfa"
    assert len(_events(env, "pim.step_up_required")) == 1
    with env.tx() as s:
        assert s.scalar(select(func.count()).select_from(ElevationRequest)) == 0


def test_input_rules(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    with env.tx() as s, pytest.raises(ValidationFailed, match="justification"):
        service.request_elevation(
            s, env.services, actor=env.actor("alice"), role="ops", justification="short"
        )
    with env.tx() as s, pytest.raises(ValidationFailed, match="between 1 and 120"):
        service.request_elevation(
            s, env.services, actor=env.actor("alice"), role="ops", minutes=121, justification="x" * 20
        )
    _request(env)
    with env.tx() as s, pytest.raises(Conflict, match="already"):
        service.request_elevation(
            s, env.services, actor=env.actor("alice"), role="ops", justification="x" * 20
        )


def test_pending_request_lapses(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    rid = _request(env)
    clock.advance(dt.timedelta(minutes=61))
    with env.tx() as s, pytest.raises(Conflict, match="expired"):
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    with env.tx() as s:
        assert service.sweep(s, env.services) == {"expired": 0, "lapsed": 1, "failed": 0}
    assert _get(env, rid).state == State.LAPSED


def test_cancel_pending_and_end_early(pim: Env) -> None:
    env, d = pim, pim.services.directory
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.cancel(s, env.services, actor=env.actor("alice"), request_id=rid)
    assert _get(env, rid).state == State.CANCELLED
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    acc = _admin(env)
    assert acc.account_id and d.user_groups(acc.account_id) == ["Ops Admins"]
    with env.tx() as s, pytest.raises(Forbidden):
        service.cancel(s, env.services, actor=env.actor("boss"), request_id=rid)
    with env.tx() as s:
        service.cancel(s, env.services, actor=env.actor("alice"), request_id=rid, reason="done early")
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.CANCELLED and req.removed_at is not None
    assert d.user_groups(acc.account_id) == []
    admin = d.get_user(acc.account_id)
    assert admin is not None and not admin.enabled


def test_revocation_by_approver_and_officer_only(pim: Env) -> None:
    env, d = pim, pim.services.directory
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    with env.tx() as s, pytest.raises(Forbidden):
        service.revoke(s, env.services, actor=env.actor("eve"), request_id=rid, reason="nope")
    with env.tx() as s:
        service.revoke(s, env.services, actor=env.actor("sec"), request_id=rid, reason="suspicious activity")
    env.run_jobs()
    assert _get(env, rid).state == State.REVOKED
    acc = _admin(env)
    assert acc.account_id and d.user_groups(acc.account_id) == []
    ev = _events(env, "pim.revoked")
    assert len(ev) == 1 and ev[0].severity == "critical"


def test_denial_and_two_approvals(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    _eligible(env, "alice", role="dba")
    rid = _request(env)
    with env.tx() as s:
        service.decide(
            s, env.services, actor=env.actor("boss"), request_id=rid, approve=False, comment="not tonight"
        )
    assert _get(env, rid).state == State.DENIED
    with env.tx() as s, pytest.raises(ValidationFailed, match="ticket"):
        service.request_elevation(s, env.services, actor=env.actor("alice"), role="dba")
    with env.tx() as s, pytest.raises(ValidationFailed, match="form"):
        service.request_elevation(s, env.services, actor=env.actor("alice"), role="dba", ticket="CHG 1")
    rid = _request(env, role="dba", ticket="INC-42")
    with env.tx() as s, pytest.raises(Forbidden):  # boss approves ops, not dba
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("dbx"), request_id=rid, approve=True)
    assert _get(env, rid).state == State.REQUESTED  # one of two
    with env.tx() as s, pytest.raises(Conflict, match="already decided"):
        service.decide(s, env.services, actor=env.actor("dbx"), request_id=rid, approve=True)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("dby"), request_id=rid, approve=True)
    assert _get(env, rid).state == State.APPROVED
    env.run_jobs()
    acc = _admin(env)
    assert acc.account_id
    assert env.services.directory.user_groups(acc.account_id) == ["DB Admins", "Ops Admins"]


def test_two_approvers_at_once_make_one_transition(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    rid = _request(env)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def approve(name: str) -> None:
        try:
            with env.tx() as s:
                s.get(ElevationRequest, rid)  # both read the same snapshot first
                barrier.wait(timeout=10)
                service.decide(s, env.services, actor=env.actor(name), request_id=rid, approve=True)
            outcomes[name] = "ok"
        except Conflict:
            outcomes[name] = "conflict"

    threads = [threading.Thread(target=approve, args=(n,)) for n in ("boss", "boss2")]
    if env.services.engine.dialect.name == "sqlite":
        # SQLite serialises writers at BEGIN: let them queue instead of meeting at the barrier
        barrier = threading.Barrier(1)
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["conflict", "ok"]
    req = _get(env, rid)
    assert req.state == State.APPROVED and req.version == 2
    with env.tx() as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == 1
        assert s.scalar(select(func.count()).select_from(Job).where(Job.kind == "pim.ad.activate")) == 1
    assert len(_events(env, "pim.approved")) == 1


def test_worker_restart_sweeps_overdue(pim: Env) -> None:
    """Worker killed during the window, its expiry job lost, clock past the end, a new worker
    starts: the first tick ends the elevation and removes access."""
    env, d = pim, pim.services.directory
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    with env.tx() as s:  # the scheduled expiry is gone (worst case)
        for job in s.scalars(select(Job).where(Job.kind == "pim.expire")):
            s.delete(job)
    clock.advance(dt.timedelta(hours=3))
    w = Worker(env.services)
    w.tick()  # first tick: periodic sweep runs at once
    w.tick()
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.EXPIRED and req.removed_at is not None
    acc = _admin(env)
    assert acc.account_id and d.user_groups(acc.account_id) == []


def test_break_glass(pim: Env) -> None:
    env, d = pim, pim.services.directory
    _eligible(env, "alice", role="glass")
    with env.tx() as s, pytest.raises(service.StepUpRequired):
        service.break_glass(
            s,
            env.services,
            actor=env.actor("alice", "mfa"),
            role="glass",
            justification="ransomware spreading now",
        )
    with env.tx() as s, pytest.raises(ValidationFailed, match="justification"):
        service.break_glass(
            s, env.services, actor=env.actor("alice", "smartcard"), role="glass", justification=""
        )
    with env.tx() as s, pytest.raises(ValidationFailed, match="emergency"):
        service.request_elevation(s, env.services, actor=env.actor("alice", "smartcard"), role="glass")
    with env.tx() as s:
        req = service.break_glass(
            s,
            env.services,
            actor=env.actor("alice", "smartcard"),
            role="glass",
            justification="ransomware spreading now",
        )
        rid = req.id
    req = _get(env, rid)
    assert req.state == State.APPROVED and req.break_glass and req.review_due is not None
    assert req.ends_at is not None and req.starts_at is not None
    assert req.ends_at - req.starts_at == dt.timedelta(minutes=30)
    assert [e.severity for e in _events(env, "pim.break_glass")] == ["critical"]
    env.run_jobs()
    acc = _admin(env)
    assert acc.account_id and d.user_groups(acc.account_id) == ["Ops Admins"]
    with env.tx() as s:
        due = service.overview(s, env.services, env.actor("sec"))["reviews_due"]
        assert [r["id"] for r in due] == [rid]
        with pytest.raises(Forbidden):
            service.review(s, env.services, actor=env.actor("boss"), request_id=rid, note="fine")
    with env.tx() as s:
        service.review(s, env.services, actor=env.actor("sec"), request_id=rid, note="justified: incident 7")
    with env.tx() as s:
        assert service.overview(s, env.services, env.actor("sec"))["reviews_due"] == []


def test_leaver_loses_elevation_and_shared_accounts_rotate(pim: Env) -> None:
    env = pim
    d = env.services.directory
    _eligible(env, "alice")
    from tests.sso.helpers import make_user

    shared = make_user(env.services, "ops-shared")
    with env.tx() as s:
        service.add_shared(s, env.services, actor=env.actor("sec"), username="ops-shared", roles=["ops"])
    env.run_jobs()
    with env.tx() as s:
        first = service.checkout_shared(s, env.services, actor=env.actor("alice"), username="ops-shared")
        with pytest.raises(Forbidden):
            service.checkout_shared(s, env.services, actor=env.actor("eve"), username="ops-shared")
    assert d.authenticate("ops-shared", first).id == shared.id
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    with env.tx() as s:  # alice leaves (HR sends the core signal)
        events.identity_disabled.send(env.users["alice"].id, session=s, reason="leaver")
    env.run_jobs()
    assert _get(env, rid).state == State.REVOKED
    with pytest.raises(InvalidCredentials):
        d.authenticate("ops-shared", first)
    with env.tx() as s:
        row = s.get(SharedAccount, "ops-shared")
        assert row is not None and row.rotation_reason == "holder_left"


def test_eligibility_loss_rotates_and_revokes(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    from tests.sso.helpers import make_user

    make_user(env.services, "ops-shared")
    with env.tx() as s:
        service.add_shared(s, env.services, actor=env.actor("sec"), username="ops-shared", roles=["ops"])
    env.run_jobs()
    rid = _request(env)
    with env.tx() as s:
        with pytest.raises(Forbidden):
            service.remove_eligibility(s, env.services, actor=env.actor("boss"), role="ops", username="alice")
    with env.tx() as s:
        service.remove_eligibility(s, env.services, actor=env.actor("sec"), role="ops", username="alice")
    env.run_jobs()
    assert _get(env, rid).state == State.REVOKED
    with env.tx() as s:
        row = s.get(SharedAccount, "ops-shared")
        assert row is not None and row.rotation_reason == "eligibility_removed"


def test_only_officers_manage_eligibility(pim: Env) -> None:
    env = pim
    with env.tx() as s, pytest.raises(Forbidden):
        service.add_eligibility(s, env.services, actor=env.actor("boss"), role="ops", username="alice")
    with env.tx() as s, pytest.raises(NotFound):
        service.add_eligibility(s, env.services, actor=env.actor("sec"), role="ops", username="nobody-here")


class _Outage:
    """The built-in directory behind a switch: while ``down``, every call raises
    DirectoryUnavailable (as an unreachable domain controller does)."""

    def __init__(self, inner: object) -> None:
        self.inner, self.down = inner, False

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*a: object, **kw: object) -> object:
            if self.down:
                from iam.directory.errors import DirectoryUnavailable

                raise DirectoryUnavailable("the domain controller does not answer")
            return attr(*a, **kw)

        return call


def test_directory_outage_delays_but_never_loses_work(pim_sqlite: Env) -> None:
    env = pim_sqlite
    _eligible(env, "alice")
    outage = _Outage(env.services.directory)
    env.services.__dict__["directory"] = outage
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    outage.down = True
    env.run_jobs()
    assert _get(env, rid).state == State.APPROVED  # not granted, but the job waits
    with env.tx() as s:
        job = s.scalars(select(Job).where(Job.kind == "pim.ad.activate")).one()
        assert job.status == "pending" and job.attempts == 1
    outage.down = False
    clock.advance(dt.timedelta(seconds=60))  # past the retry backoff
    env.run_jobs()
    assert _get(env, rid).state == State.ACTIVE
    outage.down = True
    clock.advance(dt.timedelta(minutes=30))
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.EXPIRED and req.removed_at is None  # ended; removal still owed
    outage.down = False
    clock.advance(dt.timedelta(minutes=5))
    env.run_jobs()
    req = _get(env, rid)
    assert req.removed_at is not None
    acc = _admin(env)
    assert acc.account_id and outage.inner.user_groups(acc.account_id) == []  # type: ignore[attr-defined]


def test_detection_on_the_builtin_directory(pim: Env) -> None:
    from pim.models import Alert
    from pim.service.directory import detect

    env = pim
    d = env.services.directory
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
    env.run_jobs()
    assert detect(env.services) == []  # adm-alice is backed by her elevation
    d.add_member("Ops Admins", env.users["eve"].id)
    new = detect(env.services)
    assert len(new) == 1
    with env.tx() as s:
        alert = s.get(Alert, new[0])
        assert alert is not None and alert.username == "eve" and alert.group == "Ops Admins"
    d.remove_member("Ops Admins", env.users["eve"].id)
    assert detect(env.services) == []
    with env.tx() as s:
        alert = s.get(Alert, new[0])
        assert alert is not None and alert.resolved_at is not None  # closed when gone


def test_people_concerned_are_mailed(pim_sqlite: Env, smtp_sink: SmtpSink) -> None:
    from iam.config import AuditSettings, MailSettings

    env = pim_sqlite
    saved = env.services.settings.mail, env.services.settings.audit
    env.services.settings.mail = MailSettings(
        host="127.0.0.1", port=smtp_sink.server_address[1], sender="iam@idp.test"
    )
    env.services.settings.audit = AuditSettings(security_officer_email="officer@example.test")
    try:
        _eligible(env, "alice")
        rid = _request(env)
        env.run_jobs()
        sent = {(m["msg"]["Subject"], tuple(m["to"])) for m in smtp_sink.messages}
        subject = "[IAM PIM] Privileged access requested: ops by alice"
        for who in ("boss", "boss2", "alice", "ops-notify"):
            assert (subject, (f"{who}@example.test",)) in sent, sent
        smtp_sink.messages.clear()
        with env.tx() as s:
            service.decide(s, env.services, actor=env.actor("boss"), request_id=rid, approve=True)
        env.run_jobs()
        to = {m["to"][0] for m in smtp_sink.messages if "access active" in m["msg"]["Subject"]}
        assert "alice@example.test" in to
        body = next(
            m["msg"].get_content() for m in smtp_sink.messages if "access active" in m["msg"]["Subject"]
        )
        assert "adm-alice" in body and rid in body
        # the critical activation event reaches the security officer too
        assert any(m["to"] == ["officer@example.test"] for m in smtp_sink.messages)
    finally:
        env.services.settings.mail, env.services.settings.audit = saved
