"""Access requests against the real Samba AD DC (on SQLite and PostgreSQL: the ``hr`` fixture
runs on both): request → manager → owner → security officer's opinion → granted, member in AD
(read with ldap3), register row with the decision number, origin in the next access review;
a reduced grant; a refusal; a time-limited grant removed at its end by the job table; a
separation-of-duties conflict shown before asking and blocked, or allowed as a recorded
exception; deadlines in working days across a weekend and a Serbian public holiday, with a
reminder and an escalation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from ldap3 import Connection
from sqlalchemy import select

from iam import clock
from iam.errors import Conflict, Forbidden, ValidationFailed
from iam.models.audit import AuditEvent
from iam.models.jobs import Job
from provisioning.models import Authorisation
from provisioning.requests.models import AccessRequest
from provisioning.requests.service import asking, deciding
from provisioning.requests.service.common import Actor
from provisioning.reviews.definitions import Definition
from provisioning.reviews.models import CampaignItem
from provisioning.reviews.service import campaigns
from tests.provisioning.conftest import SFX, Hr, joiner

P = f"7{SFX}"
ENTRY, READ, APPROVAL, AUDIT = (f"rq-entry{SFX}", f"rq-read{SFX}", f"rq-approval{SFX}", f"rq-audit{SFX}")


def _member_of(samba_dc: Any, dn: str) -> set[str]:
    def op(conn: Connection) -> set[str]:
        conn.search(dn, "(objectClass=*)", "BASE", attributes=["memberOf"])
        return {str(v).split(",")[0][3:] for v in conn.entries[0].memberOf.values} if conn.entries else set()

    return set(samba_dc.admin(op))


def _setup(hr: Hr, tmp_path: Path, **requests: Any) -> dict[str, Any]:
    for body in (
        joiner(f"{P}00", "Milena", "Šef"),
        joiner(f"{P}01", "Petar", "Ilić", manager=f"{P}00"),
        joiner(f"{P}02", "Owner", "Vlasnik"),
        joiner(f"{P}03", "Officer", "Sec"),
        joiner(f"{P}04", "Deputy", "Zamenik"),
    ):
        assert hr.post(body).status_code == 202
    hr.work()
    people = {}
    for key, emp in (
        ("manager", "00"),
        ("petar", "01"),
        ("owner", "02"),
        ("officer", "03"),
        ("deputy", "04"),
    ):
        user = hr.directory.find_user(employee_number=f"{P}{emp}")
        assert user is not None
        people[key] = user
    for g in (ENTRY, READ, APPROVAL, AUDIT):
        hr.directory.create_group(g)
    owner = people["owner"].username
    (tmp_path / "requestable.toml").write_text(
        f"""
[item.read]
group = "{READ}"
title = {{ en = "Payments: read", sr-Latn = "Plaćanja: čitanje" }}
chain = ["manager"]

[item.entry]
group = "{ENTRY}"
title = {{ en = "Payments: entry" }}
owner = "{owner}"
chain = ["manager", "owner", "security_officer"]
max_days = 365
who = {{ departments = ["Finance"] }}
reduced = ["read"]

[item.approval]
group = "{APPROVAL}"
title = {{ en = "Payments: approval" }}
owner = "{owner}"
chain = ["manager", "owner"]
sod = "block"

[item.audit]
group = "{AUDIT}"
title = {{ en = "Audit log: read" }}
chain = ["manager"]
conflicts = ["{ENTRY}"]
sod = "exception"
max_days = 30

[item.it-only]
group = "{READ}"
title = {{ en = "Only for IT" }}
who = {{ departments = ["IT"] }}
""",
        encoding="utf-8",
    )
    (tmp_path / "sod.toml").write_text(
        f'[[rule]]\nname = "entry-and-approval"\ndescription = "Who enters payments does not approve them."\n'
        f'resources = ["{ENTRY}", "{APPROVAL}"]\n',
        encoding="utf-8",
    )
    s = hr.services.settings
    hr.services.settings = s.model_copy(
        update={
            "requests": s.requests.model_copy(
                update={"catalogue_file": tmp_path / "requestable.toml", **requests}
            ),
            "reviews": s.reviews.model_copy(
                update={
                    "security_officers": [people["officer"].username],
                    "sod_file": tmp_path / "sod.toml",
                    "fallback_reviewers": [people["deputy"].username],
                }
            ),
        }
    )
    hr.services.extensions.pop("requests.catalogue", None)
    return people


def _actor(user: Any) -> Actor:
    return Actor(username=user.username, sub=user.id)


def _ask(hr: Hr, who: Any, item: str, person: Any = None, **kw: Any) -> int:
    with hr.services.transaction() as s:
        req = asking.submit(
            hr.services,
            s,
            actor=_actor(who),
            item_name=item,
            person_sub=(person or who).id,
            justification=kw.pop("justification", "Month-end closing"),
            **kw,
        )
        return req.id


def _decide(hr: Hr, who: Any, rid: int, outcome: str = "grant", **kw: Any) -> str:
    with hr.services.transaction() as s:
        req = deciding.decide(
            hr.services,
            s,
            request_id=rid,
            actor=_actor(who),
            outcome=outcome,
            comment=kw.pop("comment", "ok"),
            **kw,
        )
        return req.status


def _row(hr: Hr, rid: int) -> AccessRequest:
    with hr.services.reader() as s:
        row = s.get(AccessRequest, rid)
        assert row is not None
        s.expunge(row)
        return row


def test_request_manager_owner_officer_granted_in_ad_with_register_and_origin(
    hr: Hr, samba_dc: Any, tmp_path: Path
) -> None:
    p = _setup(hr, tmp_path)
    petar = p["petar"]
    rid = _ask(hr, petar, "entry", scope="Treasury, municipality accounts")
    assert _row(hr, rid).approver == p["manager"].username
    with pytest.raises(Forbidden):  # not his step, and his own access
        _decide(hr, petar, rid)
    with pytest.raises(Forbidden):  # the owner's turn has not come
        _decide(hr, p["owner"], rid)
    with pytest.raises(ValidationFailed):  # every outcome carries a comment
        _decide(hr, p["manager"], rid, comment=" ")
    assert _decide(hr, p["manager"], rid, comment="needed for closing") == "pending"
    assert _row(hr, rid).approver == p["owner"].username
    assert _decide(hr, p["owner"], rid) == "pending"
    row = _row(hr, rid)
    assert row.approver == p["officer"].username and row.chain[row.step] == "security_officer"
    assert _decide(hr, p["officer"], rid, comment="opinion: positive") == "approved"
    assert ENTRY not in _member_of(samba_dc, petar.dn)  # not before the job ran
    hr.work()
    row = _row(hr, rid)
    assert row.status == "granted" and row.granted_at is not None
    assert row.decision_number == f"AR/{clock.now().year}/{rid}"
    assert row.ends_at is not None and (row.ends_at - row.granted_at).days == 365  # the item's max
    assert ENTRY in _member_of(samba_dc, petar.dn)
    assert [h["step"] for h in row.history] == ["manager", "owner", "security_officer"]
    with hr.services.reader() as s:
        reg = s.scalars(select(Authorisation).where(Authorisation.event_id == f"request:{rid}")).all()
        assert [(r.employee_number, r.decision_number, r.ended_on) for r in reg] == [
            (f"{P}01", row.decision_number, None)
        ]
        assert s.scalar(select(AuditEvent).where(AuditEvent.event == "request.granted")) is not None
    # the next access review shows where the right came from
    definition = Definition.model_validate(
        {"name": "rq-review", "title": "Review", "scope": {"kind": "ou", "ou": hr.ou}}
    )
    with hr.services.transaction() as s:
        cid = str(campaigns.start(hr.services, s, definition=definition, actor="test")["id"])
    with hr.services.reader() as s:
        item = s.scalar(
            select(CampaignItem).where(CampaignItem.campaign_id == cid, CampaignItem.resource == ENTRY)
        )
        assert item is not None
        assert item.origin == "access_request"
        assert item.origin_ref == f"access request {rid}, decision {row.decision_number}"
        assert item.justification == "Month-end closing"


def test_reduced_grant_and_refusal(hr: Hr, samba_dc: Any, tmp_path: Path) -> None:
    p = _setup(hr, tmp_path)
    petar = p["petar"]
    rid = _ask(hr, petar, "entry")
    _decide(hr, p["manager"], rid)
    with pytest.raises(ValidationFailed):  # only a lesser item of the catalogue
        _decide(hr, p["owner"], rid, "grant_reduced", reduce_to="approval", comment="less")
    assert (
        _decide(hr, p["owner"], rid, "grant_reduced", reduce_to="read", comment="reading is enough")
        == "pending"
    )
    assert _decide(hr, p["officer"], rid, comment="agree") == "approved"
    hr.work()
    row = _row(hr, rid)
    assert (row.status, row.outcome, row.item, row.requested_item) == (
        "granted",
        "grant_reduced",
        "read",
        "entry",
    )
    groups = _member_of(samba_dc, petar.dn)
    assert READ in groups and ENTRY not in groups

    rid2 = _ask(hr, petar, "approval", justification="backup approver")
    assert _decide(hr, p["manager"], rid2, "refuse", comment="not in his duties") == "refused"
    hr.work()
    row2 = _row(hr, rid2)
    assert (row2.status, row2.outcome, row2.comment, row2.decision_number) == (
        "refused",
        "refuse",
        "not in his duties",
        None,
    )
    assert APPROVAL not in _member_of(samba_dc, petar.dn)
    with hr.services.reader() as s:
        assert not s.scalars(
            select(Job).where(Job.kind == "requests.fulfil", Job.payload["request"].as_integer() == rid2)
        ).all()


def test_time_limited_grant_ends_by_itself(hr: Hr, samba_dc: Any, tmp_path: Path) -> None:
    p = _setup(hr, tmp_path)
    petar = p["petar"]
    with pytest.raises(ValidationFailed):  # longer than the item's maximum
        _ask(hr, petar, "entry", duration_days=400)
    rid = _ask(hr, petar, "entry", duration_days=2)
    for who in ("manager", "owner", "officer"):
        _decide(hr, p[who], rid)
    hr.work()
    assert ENTRY in _member_of(samba_dc, petar.dn)
    clock.advance(dt.timedelta(days=1))
    hr.work()
    assert ENTRY in _member_of(samba_dc, petar.dn) and _row(hr, rid).status == "granted"
    clock.advance(dt.timedelta(days=1, minutes=1))
    hr.work()
    row = _row(hr, rid)
    assert row.status == "ended" and row.ended_at is not None
    assert ENTRY not in _member_of(samba_dc, petar.dn)
    with hr.services.reader() as s:
        reg = s.scalar(select(Authorisation).where(Authorisation.event_id == f"request:{rid}"))
        assert reg is not None and reg.ended_on is not None


def test_separation_of_duties_blocked_or_recorded_exception(hr: Hr, samba_dc: Any, tmp_path: Path) -> None:
    p = _setup(hr, tmp_path)
    petar = p["petar"]
    hr.directory.add_member(ENTRY, petar.id)
    with hr.services.reader() as s:
        shown = asking.preview(hr.services, s, actor=_actor(petar), item_name="approval", person_sub=petar.id)
    assert shown["conflicts"] == ["Who enters payments does not approve them."] and shown["blocked"]
    with pytest.raises(Forbidden):
        _ask(hr, petar, "approval")
    with hr.services.reader() as s:
        assert s.scalar(select(AccessRequest)) is None  # nothing stored but the refusal
        refused = s.scalar(select(AuditEvent).where(AuditEvent.event == "request.refused_submission"))
        assert refused is not None
    with hr.services.reader() as s:
        shown = asking.preview(hr.services, s, actor=_actor(petar), item_name="audit", person_sub=petar.id)
    assert shown["conflicts"] and shown["exception_possible"] and not shown["blocked"]
    with pytest.raises(ValidationFailed):  # the exception must be asked for knowingly
        _ask(hr, petar, "audit")
    rid = _ask(hr, petar, "audit", accept_exception=True)
    row = _row(hr, rid)
    assert row.sod_exception and row.chain == ["manager", "security_officer"]  # the officer's opinion added
    _decide(hr, p["manager"], rid)
    assert _decide(hr, p["officer"], rid, comment="exception for the audit") == "approved"
    hr.work()
    assert AUDIT in _member_of(samba_dc, petar.dn)
    # checked again before granting: a conflicting right that came meanwhile stops the grant
    hr.directory.remove_member(ENTRY, petar.id)
    rid = _ask(hr, petar, "approval")
    _decide(hr, p["manager"], rid)
    hr.directory.add_member(ENTRY, petar.id)
    with pytest.raises(Conflict):
        _decide(hr, p["owner"], rid, comment="fine")
    assert _row(hr, rid).status == "pending"
    assert _decide(hr, p["owner"], rid, "refuse", comment="conflict with payments entry") == "refused"
    # who may ask: the IT-only item is not for Finance
    with pytest.raises(Forbidden):
        _ask(hr, petar, "it-only")


def test_manager_asks_for_team_member(hr: Hr, samba_dc: Any, tmp_path: Path) -> None:
    p = _setup(hr, tmp_path)
    with pytest.raises(Forbidden):  # not his team
        _ask(hr, p["owner"], "read", person=p["petar"])
    rid = _ask(hr, p["manager"], "read", person=p["petar"])
    row = _row(hr, rid)
    # the manager asked: that is the manager's step; someone else (the officer) still decides
    assert row.history[0]["comment"] == "asked by the manager"
    assert row.chain == ["manager", "security_officer"] and row.approver == p["officer"].username
    assert _decide(hr, p["officer"], rid) == "approved"
    hr.work()
    assert READ in _member_of(samba_dc, p["petar"].dn)


def test_working_day_deadline_across_weekend_and_holiday_reminder_escalation(
    hr: Hr, samba_dc: Any, tmp_path: Path
) -> None:
    p = _setup(hr, tmp_path, country="RS")
    s = hr.services.settings
    hr.services.settings = s.model_copy(update={"timezone": "Europe/Belgrade"})
    # Tuesday 5 January 2027, 10:00 UTC. 7 January is Orthodox Christmas (public holiday in
    # Serbia), 9–10 January a weekend: 3 working days are 6, 8 and 11 January.
    clock.freeze(dt.datetime(2027, 1, 5, 10, 0, tzinfo=dt.UTC))
    rid = _ask(hr, p["manager"], "entry", person=p["petar"])  # the manager asked: the owner decides
    row = _row(hr, rid)
    assert row.approver == p["owner"].username
    assert row.step_due_at == dt.datetime(2027, 1, 11, 23, 0, tzinfo=dt.UTC)  # midnight in Belgrade

    def tick() -> dict[str, int]:
        with hr.services.transaction() as sess:
            return deciding.tick(hr.services, sess)

    clock.freeze(dt.datetime(2027, 1, 8, 12, 0, tzinfo=dt.UTC))  # Friday
    assert tick() == {"reminded": 0, "escalated": 0}
    clock.freeze(dt.datetime(2027, 1, 10, 22, 59, tzinfo=dt.UTC))  # Sunday 23:59 in Belgrade
    assert tick() == {"reminded": 0, "escalated": 0}
    clock.freeze(dt.datetime(2027, 1, 10, 23, 0, tzinfo=dt.UTC))  # Monday 00:00: the last working day
    assert tick() == {"reminded": 1, "escalated": 0}
    assert tick() == {"reminded": 0, "escalated": 0}  # once
    clock.freeze(dt.datetime(2027, 1, 11, 23, 0, tzinfo=dt.UTC))  # deadline passed
    assert tick() == {"reminded": 0, "escalated": 1}
    row = _row(hr, rid)
    assert row.escalated_to == [p["officer"].username]
    with hr.services.reader() as sess:
        events = [e.event for e in sess.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert "request.reminded" in events and "request.escalated" in events
    # the officer it was escalated to may decide the owner's step now; then gives the opinion
    assert _decide(hr, p["officer"], rid, comment="owner absent; decided on escalation") == "pending"
    row = _row(hr, rid)
    assert row.history[-1]["escalated"] is True
    # the officer's own step (3 working days from Tuesday 12 January: 13, 14, 15 → end of Friday)
    assert row.step_due_at == dt.datetime(2027, 1, 15, 23, 0, tzinfo=dt.UTC)
