"""Issue 10 items 7-8, issue 11 items 2 and 4 on the built-in directory (SQLite and PostgreSQL):
refusals stay audited although the refusal rolls the transaction back; an activation the
directory cannot complete ends ``failed`` (never ``pim.activated``, no password); approvals
compare persons, not accounts; deciding needs the role's sign-in level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from iam import jobs
from iam.errors import Forbidden, ValidationFailed
from iam.models.audit import AuditEvent
from iam.models.jobs import Job, JobStatus
from pim import service
from pim.models import AdminAccount, ElevationRequest, SharedAccount, SharedCheckout, State
from pim.service import Actor, StepUpRequired
from tests.pim.conftest import Env
from tests.pim.test_cli_and_roles import run
from tests.pim.test_state_machine import _eligible, _events, _get, _request


def _refused(env: Env, fn: Callable[[Any], object], exc: type[Exception] = Forbidden) -> None:
    """Call ``fn`` in a unit of work the refusal rolls back (as every edge does)."""
    with pytest.raises(exc), env.tx() as s:
        fn(s)


def _admin_actor(env: Env, who: str, level: str = "mfa") -> Actor:
    with env.tx() as s:
        acc = s.get(AdminAccount, env.users[who].id)
        assert acc is not None and acc.account_id
        return Actor(sub=acc.account_id, username=acc.username, level=level)


# -- 10.8: refusals are audited even though they roll back -------------------------------------
def test_every_pim_refusal_is_audited_through_the_rollback(pim: Env) -> None:
    env = pim
    svc = env.services
    _eligible(env, "alice")
    rid = _request(env)
    _refused(env, lambda s: service.decide(s, svc, actor=env.actor("alice"), request_id=rid, approve=True))
    _refused(env, lambda s: service.decide(s, svc, actor=env.actor("eve"), request_id=rid, approve=True))
    _refused(env, lambda s: service.cancel(s, svc, actor=env.actor("eve"), request_id=rid))
    _refused(env, lambda s: service.reveal_secret(s, svc, actor=env.actor("eve"), request_id=rid))
    _refused(env, lambda s: service.revoke(s, svc, actor=env.actor("eve"), request_id=rid, reason="x"))
    _refused(
        env, lambda s: service.add_eligibility(s, svc, actor=env.actor("alice"), role="ops", username="eve")
    )
    _refused(
        env,
        lambda s: service.request_elevation(
            s, svc, actor=env.actor("eve"), role="ops", justification="let me in please"
        ),
    )
    _refused(
        env,
        lambda s: service.request_elevation(
            s, svc, actor=env.actor("alice", "password"), role="ops", justification="patch it tonight"
        ),
        StepUpRequired,
    )
    expected = {
        "pim.self_approval_refused": 1,
        "pim.decision_refused": 1,
        "pim.cancel_refused": 1,
        "pim.password_refused": 1,
        "pim.revoke_refused": 1,
        "pim.officer_action_refused": 1,
        "pim.request_refused": 1,
        "pim.step_up_required": 1,
    }
    assert {name: len(_events(env, name)) for name in expected} == expected
    (own,) = _events(env, "pim.self_approval_refused")
    assert own.outcome == "failure" and own.actor == env.users["alice"].id
    assert own.details["request"] == rid
    assert _get(env, rid).state == State.REQUESTED


def test_self_approval_through_the_cli_is_refused_and_audited(pim: Env) -> None:
    env = pim
    _eligible(env, "alice")
    rid = _request(env)
    own = run(env.services, "pim", "approve", rid, "--as", "alice")
    assert own.exit_code == 1 and "your own request" in own.output
    (event,) = _events(env, "pim.self_approval_refused")
    assert event.actor == env.users["alice"].id and event.user_agent == "iam-cli"


# -- 10.7: the directory write must succeed and be read back ------------------------------------
def test_eligibility_refused_for_a_role_whose_group_does_not_exist(pim: Env) -> None:
    env = pim
    svc = env.services
    svc.directory.create_group("Doomed")
    role = {"groups": ["Doomed"], "approvers": ["boss"]}
    with env.tx() as s:
        service.put_role(s, svc, actor=env.actor("sec"), name="doomed", definition=role)
    with env.tx() as s:  # deleting the group: the built-in directory's tables
        from sqlalchemy import delete

        from iam.models.identity import LocalGroup

        s.execute(delete(LocalGroup).where(LocalGroup.name == "Doomed"))
    with pytest.raises(ValidationFailed, match="Doomed"), env.tx() as s:
        service.add_eligibility(s, svc, actor=env.actor("sec"), role="doomed", username="alice")
    out = run(svc, "pim", "eligible", "add", "doomed", "alice")
    assert out.exit_code == 1 and "do not exist in the directory: Doomed" in out.output


def test_activation_with_a_missing_group_ends_failed_not_active(pim: Env) -> None:
    env = pim
    svc = env.services
    svc.directory.create_group("Vanishing")
    with env.tx() as s:
        service.put_role(
            s,
            svc,
            actor=env.actor("sec"),
            name="vanish",
            definition={"groups": ["Vanishing"], "approval": False},
        )
    _eligible(env, "alice", role="vanish")
    with env.tx() as s:
        from sqlalchemy import delete

        from iam.models.identity import LocalGroup

        s.execute(delete(LocalGroup).where(LocalGroup.name == "Vanishing"))
    rid = _request(env, role="vanish")
    assert _get(env, rid).state == State.APPROVED
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.FAILED
    assert req.end_reason and "Vanishing" in req.end_reason and "do not exist" in req.end_reason
    assert req.applied_at is None and req.secret is None
    assert _events(env, "pim.activated") == []
    (failed,) = _events(env, "pim.failed")
    assert failed.severity == "critical" and failed.outcome == "failure"
    with env.tx() as s:  # the critical event alerts the security officer
        assert s.scalar(select(Job.id).where(Job.kind == "iam.notify_critical"))
        mine = service.mine(s, svc, env.actor("alice"))
        assert [r["id"] for r in mine["failed"]] == [rid] and mine["active"] == []
        assert [r["id"] for r in service.overview(s, svc, env.actor("sec"))["failed"]] == [rid]
    with pytest.raises(Exception, match="no password"), env.tx() as s:
        service.reveal_secret(s, svc, actor=env.actor("alice"), request_id=rid)
    acc = _admin_actor(env, "alice")
    admin = svc.directory.get_user(acc.sub)
    assert admin is not None and not admin.enabled  # what was written is taken back


def test_activation_given_up_after_retries_ends_failed(pim: Env) -> None:
    env = pim
    svc = env.services
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, svc, actor=env.actor("boss"), request_id=rid, approve=True)
        job = s.scalar(select(Job).where(Job.kind == "pim.ad.activate"))
        assert job is not None
        job.status, job.last_error = JobStatus.DEAD, "RetryLater: directory unavailable"
    with env.tx() as s:
        assert service.sweep(s, svc)["failed"] == 1
    req = _get(env, rid)
    assert req.state == State.FAILED and "given up" in (req.end_reason or "")


def test_active_only_after_the_grant_is_read_back(pim: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that accepts the write but does not show it afterwards: failed, not active."""
    env = pim
    svc = env.services
    _eligible(env, "alice")
    rid = _request(env)
    with env.tx() as s:
        service.decide(s, svc, actor=env.actor("boss"), request_id=rid, approve=True)
    monkeypatch.setattr(type(svc.directory), "add_member", lambda self, group, user_id: None)
    env.run_jobs()
    req = _get(env, rid)
    assert req.state == State.FAILED and "does not list the admin account in: Ops Admins" in (
        req.end_reason or ""
    )
    assert _events(env, "pim.activated") == []


# -- 11.2: persons, not accounts ---------------------------------------------------------------
def test_admin_account_of_the_requester_cannot_approve(pim: Env) -> None:
    env = pim
    svc = env.services
    _eligible(env, "alice")
    rid = _request(env)
    adm = _admin_actor(env, "alice")
    svc.settings.pim.security_officers = ["sec", adm.username]  # even an officer's account
    with env.tx() as s:
        assert service.inbox(s, svc, adm) == []
    _refused(env, lambda s: service.decide(s, svc, actor=adm, request_id=rid, approve=True))
    (event,) = _events(env, "pim.self_approval_refused")
    assert event.actor == adm.sub and event.details["account"] == adm.username
    assert _get(env, rid).state == State.REQUESTED


def test_shared_account_held_by_the_requester_cannot_approve(pim: Env) -> None:
    env = pim
    svc = env.services
    _eligible(env, "alice")
    from iam.identities import upsert_identity
    from tests.sso.helpers import make_user

    shared = make_user(svc, "ops-shared")
    with env.tx() as s:
        upsert_identity(s, shared, kind=svc.directory.kind)
        s.add(SharedAccount(username="ops-shared", roles=["ops"], created_by="sec"))
        s.add(SharedCheckout(username="ops-shared", person_sub=env.users["alice"].id))
    rid = _request(env)
    svc.settings.pim.security_officers = ["sec"]
    actor = Actor(sub=shared.id, username="ops-shared", level="mfa")
    from iam import persons

    with env.tx() as s:
        assert persons.same_person(s, shared.id, env.users["alice"].id)
        assert not persons.same_person(s, env.users["boss"].id, env.users["alice"].id)
    _refused(env, lambda s: service.decide(s, svc, actor=actor, request_id=rid, approve=True))
    assert len(_events(env, "pim.self_approval_refused")) == 1


def test_two_approvals_by_one_person_count_once(pim: Env) -> None:
    """dba needs 2 approvals from "DB Approvers"; dbx approves, then dbx's admin account (also
    in the group) tries: refused and the request stays pending; dby's approval completes it."""
    env = pim
    svc = env.services
    _eligible(env, "alice", role="dba")
    _eligible(env, "dbx", role="ops")  # dbx gets an admin account
    adm = _admin_actor(env, "dbx")
    svc.directory.add_member("DB Approvers", adm.sub)
    rid = _request(env, role="dba", ticket="INC-7", justification="")
    with env.tx() as s:
        service.decide(s, svc, actor=env.actor("dbx"), request_id=rid, approve=True)
    _refused(env, lambda s: service.decide(s, svc, actor=adm, request_id=rid, approve=True))
    assert _get(env, rid).state == State.REQUESTED
    assert len(_events(env, "pim.second_decision_refused")) == 1
    from iam import persons

    with env.tx() as s:  # and were both rows there, they would count once
        assert persons.count_persons(s, [env.users["dbx"].id, adm.sub]) == 1
        assert persons.count_persons(s, [env.users["dbx"].id, env.users["dby"].id]) == 2
        service.decide(s, svc, actor=env.actor("dby"), request_id=rid, approve=True)
    assert _get(env, rid).state == State.APPROVED


# -- 11.4: deciding needs the role's level ------------------------------------------------------
def test_a_password_only_approver_must_step_up(pim: Env) -> None:
    env = pim
    svc = env.services
    _eligible(env, "alice")
    rid = _request(env)
    _refused(
        env,
        lambda s: service.decide(s, svc, actor=env.actor("boss", "password"), request_id=rid, approve=True),
        StepUpRequired,
    )
    (event,) = _events(env, "pim.step_up_required")
    assert event.details["for"] == "decision" and event.details["required"] == "mfa"
    assert _get(env, rid).state == State.REQUESTED
    with env.tx() as s:
        service.decide(s, svc, actor=env.actor("boss", "mfa"), request_id=rid, approve=True)
    with env.tx() as s:
        req = s.scalar(select(ElevationRequest).where(ElevationRequest.id == rid))
        assert req is not None and req.state == State.APPROVED
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.event == "pim.approved"))
    assert jobs  # the activation job is queued (see the directory tests)


def test_account_linked_by_hr_cannot_approve(pim: Env) -> None:
    """boss2 is an approver of ops — and, says HR, another account of alice's."""
    import datetime as dt

    import provisioning.persons  # noqa: F401 — registers the HR links (as the app does)
    from provisioning.models import HrPerson

    env = pim
    svc = env.services
    _eligible(env, "alice")
    with env.tx() as s:
        s.add(
            HrPerson(
                employee_number="E-1",
                given_name="Alice",
                family_name="Anđelković",
                department="IT",
                title="Engineer",
                engagement="employee",
                start_date=dt.date(2020, 1, 1),
                sub=env.users["alice"].id,
                linked_accounts=[env.users["boss2"].id],
            )
        )
    rid = _request(env)
    with env.tx() as s:
        assert service.inbox(s, svc, env.actor("boss2")) == []
    _refused(env, lambda s: service.decide(s, svc, actor=env.actor("boss2"), request_id=rid, approve=True))
    assert len(_events(env, "pim.self_approval_refused")) == 1
    with env.tx() as s:
        service.decide(s, svc, actor=env.actor("boss"), request_id=rid, approve=True)
    assert _get(env, rid).state == State.APPROVED
