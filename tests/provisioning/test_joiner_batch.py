"""Issue 18: joiners' birthright memberships written per group across joiners (one modify for
many members), against the real Samba AD DC; what AD holds is read back with plain LDAP."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, SUBTREE, Connection
from sqlalchemy import select

from iam import clock
from iam.directory.ad import ActiveDirectory
from iam.directory.base import DirectoryUser, NewUser
from iam.directory.errors import DirectoryError, EntryExists
from iam.models import Job
from iam.models.jobs import JobStatus
from provisioning.models import EventStatus, HrEvent
from provisioning.service import engine
from provisioning.service.engine.memberships import GROUPS_JOB
from tests.provisioning.conftest import SFX, Hr, joiner

pytestmark = pytest.mark.samba


def _members(hr: Hr, group: str) -> set[str]:
    """Employee numbers of the direct members of ``group``, as the DC has them."""

    def op(conn: Connection) -> set[str]:
        conn.search(hr.ou, f"(&(objectClass=group)(sAMAccountName={group}))", SUBTREE, attributes=["member"])
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        assert len(entries) == 1, conn.result
        out = set()
        for dn in entries[0]["attributes"].get("member", []):
            conn.search(dn, "(objectClass=user)", "BASE", attributes=["employeeNumber"])
            value = conn.response[0]["attributes"]["employeeNumber"]
            out.add(str(value[0] if isinstance(value, list) else value))
        return out

    return set(hr.dc.admin(op))


def _groups_jobs(hr: Hr) -> list[Job]:
    with hr.services.reader() as s:
        return list(s.scalars(select(Job).where(Job.kind == GROUPS_JOB)))


def _queue(hr: Hr, numbers: Sequence[str], given: str = "Jan", family: str = "Batch") -> None:
    """Accept the joiners and apply them as the worker does, leaving their memberships queued."""
    for emp in numbers:
        assert hr.post(joiner(emp, given, family)).status_code == 202
        engine.apply_due(hr.services, emp, batch_groups=True)


class Counting:
    """The real directory, counting ``add_members`` calls (and optionally failing some)."""

    def __init__(self, real: ActiveDirectory, fail_from: int | None = None, broken: Any = None) -> None:
        self.real, self.calls, self.fail_from, self.broken = real, [], fail_from, broken

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def add_members(self, group: str, users: Sequence[DirectoryUser]) -> list[str]:
        self.calls.append((group, len(users)))
        if self.fail_from is not None and len(self.calls) >= self.fail_from:
            return list(self.broken.add_members(group, users))
        return self.real.add_members(group, users)


def test_batched_memberships_of_many_joiners_land_in_one_write_per_group(hr: Hr) -> None:
    numbers = [f"91{i:02d}" for i in range(12)]
    _queue(hr, numbers)
    queued = _groups_jobs(hr)
    assert len(queued) == 12 and {j.status for j in queued} == {JobStatus.PENDING}
    for emp in numbers:  # accounts exist, memberships not yet
        user = hr.directory.find_user(employee_number=emp)
        assert user is not None and hr.directory.user_groups(user.id, nested=False) == []
    counting = Counting(hr.directory)
    hr.services.__dict__["directory"] = counting
    try:
        hr.work()
    finally:
        hr.services.__dict__["directory"] = hr.directory
    assert sorted(counting.calls) == [("all-staff", 12), ("finance", 12)]  # one write per group
    assert _members(hr, "all-staff") == set(numbers)
    assert _members(hr, "finance") == set(numbers)
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.DONE}
    with hr.services.reader() as s:  # the audit per person is as before
        events = list(s.scalars(select(HrEvent)))
        assert {e.status for e in events} == {EventStatus.APPLIED}
        assert all(e.result["groups"] == ["all-staff", "finance"] for e in events)


def test_one_member_already_in_the_group_does_not_lose_the_others(hr: Hr) -> None:
    numbers = [f"92{i:02d}" for i in range(5)]
    _queue(hr, numbers)
    early = hr.directory.find_user(employee_number="9202")
    assert early is not None
    group_dn = hr.directory.get_group("finance").dn  # type: ignore[union-attr]

    def add(conn: Connection) -> None:  # someone put one of them in the group by hand meanwhile
        assert conn.modify(group_dn, {"member": [(MODIFY_ADD, [early.dn])]}), conn.result  # type: ignore[no-untyped-call]

    hr.dc.admin(add)
    hr.work()
    assert _members(hr, "finance") == set(numbers)
    assert _members(hr, "all-staff") == set(numbers)
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.DONE}


def test_add_members_skips_a_deleted_account_and_adds_the_rest(hr: Hr) -> None:
    d = hr.directory
    group = d.create_group(f"batch-{SFX}")
    users = [d.create_user(NewUser(username=f"bm{i}{SFX}x{clock.now().microsecond}")) for i in range(4)]
    d.add_member(group.name, users[0].id)  # already in
    d.delete_user(users[3].id)  # gone
    gone = d.add_members(group.name, users)
    assert gone == [users[3].id]
    assert sorted(u.id for u in d.group_members(group.name, nested=False)) == sorted(u.id for u in users[:3])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dc_down_mid_batch_jobs_wait_and_are_retried(hr: Hr) -> None:
    numbers = [f"93{i:02d}" for i in range(6)]
    _queue(hr, numbers)
    broken = ActiveDirectory(
        hr.directory.settings.model_copy(
            update={"url": f"ldaps://127.0.0.1:{_closed_port()}", "connect_timeout": 1.0}
        )
    )
    # the first group is written, then the DC goes away
    failing = Counting(hr.directory, fail_from=2, broken=broken)
    hr.services.__dict__["directory"] = failing
    try:
        hr.work()
    finally:
        hr.services.__dict__["directory"] = hr.directory
    assert len(failing.calls) == 2
    jobs = _groups_jobs(hr)
    assert len(jobs) == 6
    assert {j.status for j in jobs} == {JobStatus.PENDING}  # every one waits, none lost
    assert all(j.attempts >= 1 and j.last_error for j in jobs)
    first = failing.calls[0][0]
    second = "finance" if first == "all-staff" else "all-staff"
    assert _members(hr, first) == set(numbers)
    assert _members(hr, second) == set()

    hr.work()  # before the backoff: nothing runs
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.PENDING}
    clock.advance(dt.timedelta(minutes=10))
    hr.work()  # the DC is back: the first group again (all already there) and the second
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.DONE}
    assert _members(hr, "all-staff") == set(numbers)
    assert _members(hr, "finance") == set(numbers)


def test_a_leaver_waits_for_the_queued_memberships_of_the_person(hr: Hr) -> None:
    _queue(hr, ["9401", "9402"])
    resp = hr.post({"idempotency_key": "leave-9401", "kind": "leaver", "person": {"employee_number": "9401"}})
    assert resp.status_code == 202 and resp.json["status"] == "applied", resp.json
    user = hr.directory.find_user(employee_number="9401")
    assert user is not None and not user.enabled
    # its memberships were written before the leaver removed them: none comes back later
    hr.work()
    assert hr.directory.user_groups(user.id, nested=False) == []
    assert _members(hr, "finance") == {"9402"}
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.DONE}


def test_a_name_taken_between_the_search_and_the_add_gets_the_next_name(
    hr: Hr, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = f"eva.race{SFX}"
    hr.directory.create_user(NewUser(username=taken))
    with pytest.raises(EntryExists):  # the add itself refuses it without the clash search
        hr.directory.create_user(NewUser(username=taken, display_name="Other Eva", name_checked=True))
    real = hr.directory.find_user

    def blind(**kw: Any) -> Any:  # the search saw the name free (taken just after it)
        return None if kw.get("username") == taken else real(**kw)

    monkeypatch.setattr(hr.directory, "find_user", blind)
    assert hr.post(joiner("9501", "Eva", "Race")).status_code == 202
    hr.work()
    user = real(employee_number="9501")
    assert user is not None and user.username == f"{taken}2"


def test_a_group_the_dc_refuses_does_not_hold_back_the_other_groups(hr: Hr) -> None:
    numbers = [f"96{i:02d}" for i in range(4)]
    _queue(hr, numbers)

    class Refusing(Counting):
        def add_members(self, group: str, users: Sequence[DirectoryUser]) -> list[str]:
            if group == "finance":
                raise DirectoryError("Changing the group membership failed: insufficientAccessRights.")
            return super().add_members(group, users)

    hr.services.__dict__["directory"] = Refusing(hr.directory)
    try:
        hr.work()
    finally:
        hr.services.__dict__["directory"] = hr.directory
    assert _members(hr, "all-staff") == set(numbers)  # written although finance was refused
    assert _members(hr, "finance") == set()
    waiting = _groups_jobs(hr)
    assert {j.status for j in waiting} == {JobStatus.PENDING}
    assert all("finance" in (j.last_error or "") for j in waiting)
    clock.advance(dt.timedelta(minutes=10))
    hr.work()
    assert _members(hr, "finance") == set(numbers)
    assert {j.status for j in _groups_jobs(hr)} == {JobStatus.DONE}
