"""Access reviews on the built-in directory, on SQLite and PostgreSQL: the catalogue (nested
memberships with their path, PIM eligibilities, origins), reviewers (manager, fallback, never the
person themself), decisions, stages, escalation and deadlines with the clock moved, remediation
through the job table read back, and the report (R-REV-1..3, R-JML-4, R-PIM-6)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import func, select

from iam import clock
from iam.directory import NewUser
from iam.directory.local import LocalDirectory
from iam.errors import ConfigError, Conflict, Forbidden, ValidationFailed
from iam.jobs import run_due
from iam.models.audit import AuditEvent
from iam.models.identity import Identity
from iam.services import Services
from pim import jobs as _pim_jobs  # noqa: F401 — registers PIM's entitlement source
from pim.models import AdminAccount, Eligibility
from provisioning import jobs as _provisioning_jobs  # noqa: F401 — registers the review jobs
from provisioning.models import HrPerson, PersonStatus
from provisioning.reviews.definitions import Definition, load_dir
from provisioning.reviews.models import Campaign, CampaignItem, Remediation
from provisioning.reviews.service import campaigns, decisions, remediation, report
from provisioning.reviews.service.decisions import Filter, Reviewer

pytestmark = pytest.mark.usefixtures("services")


@pytest.fixture
def org(services: Services, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """ana (manager of bob and eva), bob, eva, officer; groups Finance ⊂ Staff, Payments;
    bob's admin account adm-bob is eligible for PIM role 'dba'."""
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={
                "reviews": services.settings.reviews.model_copy(update={"security_officers": ["officer"]})
            }
        ),
    )
    d = services.directory
    assert isinstance(d, LocalDirectory)
    users = {}
    for name in ("ana", "bob", "eva", "officer", "adm-bob"):
        users[name] = d.create_user(NewUser(username=name, given_name=name.title(), enabled=True))
    for g in ("Staff", "Finance", "Payments", "Payments Approval"):
        d.create_group(g)
    d.add_group_to_group("Finance", "Staff")
    d.add_member("Finance", users["bob"].id)
    d.add_member("Payments", users["bob"].id)
    d.add_member("Finance", users["eva"].id)
    d.add_member("Payments", users["ana"].id)
    d.add_member("Finance", users["ana"].id)
    now = clock.now()
    with services.transaction() as s:
        for emp, name, manager in (("1", "ana", None), ("2", "bob", "1"), ("3", "eva", "1")):
            s.add(
                HrPerson(
                    employee_number=emp,
                    given_name=name.title(),
                    family_name="X",
                    department="Finance",
                    title="Clerk",
                    manager=manager,
                    engagement="staff",
                    start_date=now.date(),
                    status=PersonStatus.ACTIVE,
                    username=name,
                    sub=users[name].id,
                    groups=["Finance"],
                    granted_at=now,
                )
            )
        for name in ("ana", "bob", "eva", "officer"):
            s.add(Identity(sub=users[name].id, directory="local", username=name, last_login_at=now))
        s.add(
            AdminAccount(
                person_sub=users["bob"].id,
                person_username="bob",
                username="adm-bob",
                account_id=users["adm-bob"].id,
            )
        )
        s.add(Eligibility(role="dba", username="bob", sub=users["bob"].id, created_by="officer"))
    return users


def definition(**kw: Any) -> Definition:
    base: dict[str, Any] = {"name": "t", "title": "Test review", "duration_days": 10}
    base.update(kw)
    return Definition.model_validate(base)


def items(services: Services, campaign_id: str) -> list[CampaignItem]:
    with services.reader() as s:
        return list(
            s.scalars(
                select(CampaignItem).where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.id)
            )
        )


def find(rows: list[CampaignItem], account: str, resource: str) -> CampaignItem:
    return next(r for r in rows if r.account == account and r.resource == resource)


def start(services: Services, d: Definition) -> str:
    with services.transaction() as s:
        return str(campaigns.start(services, s, definition=d, actor="test")["id"])


def start_nested(services: Services) -> str:
    """A second campaign (other definition) that lists birthright memberships too."""
    return start(services, definition(name="t2", birthright="review"))


def decide(
    services: Services, who: str, ids: list[int], decision: str, comment: str = "", **kw: Any
) -> list[int]:
    with services.transaction() as s:
        return decisions.decide(
            services, s, reviewer=Reviewer(username=who), items=ids, decision=decision, comment=comment, **kw
        )


def work(services: Services) -> None:
    for _ in range(10):
        if not run_due(services, limit=500):
            break


def test_catalogue_lists_every_right_with_origin_path_and_reviewer(
    services: Services, org: dict[str, Any]
) -> None:
    cid = start(services, definition(birthright="review"))
    rows = items(services, cid)
    got = {(r.account, r.kind, r.resource, tuple(r.via), r.origin, r.reviewer) for r in rows}
    assert ("bob", "group", "Finance", (), "birthright", "ana") in got
    assert ("bob", "group", "Staff", ("Finance",), "birthright", "ana") in got  # nested, with its path
    assert ("bob", "group", "Payments", (), "unknown", "ana") in got
    assert ("bob", "pim_eligibility", "dba", (), "pim_decision", "ana") in got
    # ana has no manager: the fallback (security officer) reviews her access
    assert ("ana", "group", "Payments", (), "unknown", "officer") in got
    assert all(r.reviewer != r.username for r in rows)  # nobody reviews themself
    with services.reader() as s:
        ev = s.scalar(select(AuditEvent).where(AuditEvent.event == "review.campaign_started"))
        assert ev is not None and ev.details["items"] == len(rows)


def test_birthright_certified_by_position_is_not_listed(services: Services, org: dict[str, Any]) -> None:
    rows = items(services, start(services, definition()))
    assert not [r for r in rows if r.resource in ("Finance", "Staff")]  # Staff comes through Finance
    assert [r for r in rows if r.resource == "Payments"]


def test_admin_account_belongs_to_the_person(services: Services, org: dict[str, Any]) -> None:
    d = services.directory
    d.add_member("Payments Approval", org["adm-bob"].id)
    rows = items(services, start(services, definition(birthright="review")))
    row = find(rows, "adm-bob", "Payments Approval")
    assert (row.username, row.account_kind, row.reviewer) == ("bob", "admin", "ana")
    # bob may not decide on his admin account's access even if it were handed to him
    with pytest.raises(ValidationFailed, match="own access"), services.transaction() as s:
        decisions.delegate(services, s, reviewer=Reviewer(username="ana"), items=[row.id], to="bob")


def test_self_review_refused_and_audited_after_rollback(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition())
    row = find(items(services, cid), "bob", "Payments")
    with services.transaction() as s:  # (a mistaken assignment) the item lands with bob himself
        s.get(CampaignItem, row.id).reviewer = "adm-bob"  # type: ignore[union-attr]
    for who in ("bob", "adm-bob"):
        with pytest.raises(Forbidden, match="own access"):
            decide(services, who, [row.id], "approve")
    with services.reader() as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.event == "review.decision_refused")).all()
        assert len(refused) == 2 and all(e.outcome == "refused" for e in refused)
        assert s.get(CampaignItem, row.id).decision is None  # type: ignore[union-attr]


def test_decisions_need_comments_and_belong_to_the_reviewer(services: Services, org: dict[str, Any]) -> None:
    rows = items(services, start(services, definition()))
    pay = find(rows, "bob", "Payments")
    with pytest.raises(ValidationFailed, match="comment"):
        decide(services, "ana", [pay.id], "revoke")
    with pytest.raises(Forbidden, match="not yours"):
        decide(services, "eva", [pay.id], "approve")
    dba = find(rows, "bob", "dba")
    with pytest.raises(ValidationFailed, match="privileged"):
        decide(services, "ana", [dba.id], "approve")  # keeping privileged access needs a reason
    with pytest.raises(ValidationFailed, match="decision is one of"):
        decide(services, "ana", [pay.id], "maybe")
    staff = find(items(services, start_nested(services)), "bob", "Staff")
    with pytest.raises(ValidationFailed, match="through Finance"):
        decide(services, "ana", [staff.id], "revoke", "no")
    assert decide(services, "ana", [pay.id], "revoke", "Moved to another team") == [pay.id]
    assert decide(services, "ana", [pay.id], "approve") == [pay.id]  # editable until the stage closes


def test_close_applies_default_outcome_and_remediation_reaches_directory(
    services: Services, org: dict[str, Any]
) -> None:
    directory = services.directory
    assert isinstance(directory, LocalDirectory)
    directory.create_group("Approvals")
    directory.add_group_to_group("Approvals", "Payments Approval")
    directory.add_member("Approvals", org["bob"].id)
    d = definition(default_outcome="revoke", acknowledge_revoke=True)
    cid = start(services, d)
    rows = items(services, cid)
    pay, appr, dba = find(rows, "bob", "Payments"), find(rows, "bob", "Approvals"), find(rows, "bob", "dba")
    nested = find(rows, "bob", "Payments Approval")
    decide(services, "ana", [pay.id], "revoke", "Not needed any more")
    decide(services, "ana", [dba.id], "approve", "On call DBA")
    eva_rows = [r.id for r in rows if r.username == "eva"]
    # eva's items and bob's nested Staff stay unanswered
    clock.freeze(clock.now() + dt.timedelta(days=11))
    with services.transaction() as s:
        assert campaigns.tick(services, s)["deadline"] == 1
    work(services)
    after = {r.id: r for r in items(services, cid)}
    assert after[pay.id].remediation == Remediation.DONE and after[pay.id].verified_at is not None
    assert after[appr.id].decision == "revoke" and after[appr.id].automatic
    assert (
        after[nested.id].decision == "revoke"
        and after[nested.id].comment == "Follows the decision on Approvals."
    )
    assert all(after[i].automatic for i in eva_rows)
    assert after[dba.id].decision == "approve" and after[dba.id].remediation is None
    assert "Payments" not in directory.user_groups(org["bob"].id)
    assert "Approvals" not in directory.user_groups(org["bob"].id, nested=False)
    assert "Finance" in directory.user_groups(org["bob"].id, nested=False)  # birthright: not reviewed
    with services.reader() as s:
        assert s.scalar(select(Eligibility.id).where(Eligibility.role == "dba")) is not None
        assert s.get(Campaign, cid).status == "closed"  # type: ignore[union-attr]
        events = {e.event for e in s.scalars(select(AuditEvent))}
    assert {"review.auto_decided", "review.campaign_closed", "review.remediated"} <= events


def test_pim_eligibility_revoked_through_pim(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition(entitlements=["pim_eligibility"]))
    (dba,) = items(services, cid)
    decide(services, "ana", [dba.id], "revoke", "Left the DBA rota")
    with services.transaction() as s:
        campaigns.close(services, s, campaign_id=cid, actor="test")
    work(services)
    with services.reader() as s:
        assert s.scalar(select(func.count()).select_from(Eligibility)) == 0
        assert s.get(CampaignItem, dba.id).remediation == Remediation.DONE  # type: ignore[union-attr]
        assert s.scalar(select(AuditEvent).where(AuditEvent.event == "pim.eligibility_removed")) is not None


def test_multi_stage_manager_then_security_officer(services: Services, org: dict[str, Any]) -> None:
    d = definition(stages=[{"reviewer": "manager"}, {"reviewer": "security_officer"}], birthright="review")
    cid = start(services, d)
    rows = items(services, cid)
    pay, fin = find(rows, "bob", "Payments"), find(rows, "eva", "Finance")
    decide(services, "ana", [pay.id], "approve")
    decide(services, "ana", [fin.id], "revoke", "Wrong team")
    with services.transaction() as s:
        result = campaigns.close_stage(services, s, campaigns.get(s, cid), actor="test")
    assert result["advanced"] == 1
    after = {r.id: r for r in items(services, cid)}
    assert (after[pay.id].stage, after[pay.id].reviewer, after[pay.id].decision) == (2, "officer", None)
    assert after[pay.id].history[0]["decision"] == "approve"
    assert after[fin.id].final and after[fin.id].remediation == Remediation.PENDING


def test_escalation_to_fallback_with_the_clock(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition(escalate_after_days=3))
    clock.freeze(clock.now() + dt.timedelta(days=4))
    with services.transaction() as s:
        assert campaigns.tick(services, s).get("escalated") == 1
    rows = items(services, cid)
    bob = [r for r in rows if r.username == "bob"]
    assert bob and all(r.reviewer == "officer" and r.delegated_by == "ana" for r in bob)


def test_escalate_outcome_gives_the_fallback_a_second_deadline(
    services: Services, org: dict[str, Any]
) -> None:
    cid = start(services, definition(default_outcome="escalate"))
    clock.freeze(clock.now() + dt.timedelta(days=11))
    with services.transaction() as s:
        campaigns.tick(services, s)
        assert s.get(Campaign, cid).status == "open"  # type: ignore[union-attr]
    assert {r.reviewer for r in items(services, cid)} == {"officer"}
    clock.freeze(clock.now() + dt.timedelta(days=6))
    with services.transaction() as s:
        campaigns.tick(services, s)
        assert s.get(Campaign, cid).status == "closed"  # type: ignore[union-attr]
    assert all(r.decision == "approve" and r.automatic for r in items(services, cid))


def test_bulk_decision_over_a_filter_and_delegation(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition(birthright="review"))
    with services.transaction() as s:
        done = decisions.decide(
            services,
            s,
            reviewer=Reviewer(username="ana"),
            flt=Filter(campaign=cid, person="eva"),
            decision="approve",
        )
    assert done and all(r.decision == "approve" for r in items(services, cid) if r.id in done)
    pay = find(items(services, cid), "bob", "Payments")
    with services.transaction() as s:
        decisions.delegate(services, s, reviewer=Reviewer(username="ana"), items=[pay.id], to="eva")
    assert find(items(services, cid), "bob", "Payments").reviewer == "eva"
    decide(services, "eva", [pay.id], "approve")


def test_one_open_campaign_per_definition_and_dry_run_stores_nothing(
    services: Services, org: dict[str, Any]
) -> None:
    d = definition()
    with services.transaction() as s:
        dry = campaigns.start(services, s, definition=d, actor="test", dry_run=True)
    assert dry["dry_run"] and dry["items"] > 0
    with services.reader() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0
    start(services, d)
    with pytest.raises(Conflict, match="already open"):
        start(services, d)


def test_recommendation_explains_itself(services: Services, org: dict[str, Any]) -> None:
    with services.transaction() as s:
        s.get(Identity, org["eva"].id).last_login_at = clock.now() - dt.timedelta(days=200)  # type: ignore[union-attr]
    rows = items(services, start(services, definition(birthright="review")))
    eva = [r for r in rows if r.username == "eva"]
    assert eva and all(r.recommendation == "revoke" and "No sign-in" in r.recommendation_reason for r in eva)
    bob_pay = find(rows, "bob", "Payments")
    assert bob_pay.helpers["peers"] == 1 and bob_pay.helpers["department_size"] == 3


def test_separation_of_duties_conflict_shown(
    services: Services, org: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sod = tmp_path / "sod.toml"
    sod.write_text(
        '[[rule]]\nname = "pay"\ndescription = "Entry and approval"\n'
        'resources = ["Payments", "Payments Approval"]\n'
    )
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={"reviews": services.settings.reviews.model_copy(update={"sod_file": sod})}
        ),
    )
    services.directory.add_member("Payments Approval", org["bob"].id)
    rows = items(services, start(services, definition()))
    pay = find(rows, "bob", "Payments")
    assert pay.helpers["conflicts"] == ["pay"] and pay.recommendation == "revoke"


def test_report_csv_and_pdf_hash_audited(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition())
    pay = find(items(services, cid), "bob", "Payments")
    decide(services, "ana", [pay.id], "revoke", "Više nije potrebno")
    with services.transaction() as s:
        data, digest = report.report(services, s, campaign_id=cid, fmt="csv", actor="auditor")
        pdf, _ = report.report(services, s, campaign_id=cid, fmt="pdf", actor="auditor")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    row = next(r for r in rows if r["account"] == "bob" and r["resource"] == "Payments")
    assert (row["decision"], row["decided_by"], row["comment"]) == ("revoke", "ana", "Više nije potrebno")
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Više nije" in text  # printed as written (a Unicode font, issue 10 item 14)
    with services.reader() as s:
        digests = [
            e.details["sha256"]
            for e in s.scalars(select(AuditEvent).where(AuditEvent.event == "review.report"))
        ]
    assert digest in digests


def test_no_reviewer_at_all_refuses_to_start(
    services: Services, org: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        services,
        "settings",
        services.settings.model_copy(
            update={"reviews": services.settings.reviews.model_copy(update={"security_officers": []})}
        ),
    )
    with pytest.raises(ConfigError, match="fallback_reviewers"), services.transaction() as s:
        campaigns.start(services, s, definition=definition(), actor="test")


def test_shipped_definitions_are_valid_and_revoke_needs_acknowledgement(tmp_path: Any) -> None:
    from iam.config import PROVISIONING_POLICY_DIR

    shipped = load_dir(PROVISIONING_POLICY_DIR / "reviews")
    assert shipped["annual"].recurrence_months == 12 and shipped["privileged"].recurrence_months == 3
    (tmp_path / "bad.toml").write_text('title = "x"\ndefault_outcome = "revoke"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*acknowledge_revoke"):
        load_dir(tmp_path)


def test_remediation_recorded_once_and_verify_reads_back(services: Services, org: dict[str, Any]) -> None:
    cid = start(services, definition())
    pay = find(items(services, cid), "bob", "Payments")
    decide(services, "ana", [pay.id], "revoke", "Not needed")
    with services.transaction() as s:
        campaigns.close(services, s, campaign_id=cid, actor="test")
    work(services)
    work(services)
    with services.reader() as s:
        n = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event == "review.remediated")
        )
    assert n == 1
    services.directory.add_member("Payments", org["bob"].id)  # put back by hand
    with services.transaction() as s:
        result = remediation.verify(services, s, campaign_id=cid, actor="auditor")
    assert result["still_present"] == [{"item": pay.id, "account": "bob", "resource": "Payments"}]
