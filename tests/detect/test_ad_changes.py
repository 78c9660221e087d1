"""Changes made in AD outside the provider (Cluj), on the real Samba AD DC: a user enabled and
a group membership added with ldap3 behind the provider's back are recorded — with an audit
event, and an alert — by the next poll; the provider's own writes (by the very same account:
the test's service account is the DC's Administrator) are not."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_REPLACE
from sqlalchemy import select

import sso
from detect.models import Alert, DirectoryChange
from detect.service import adchanges, alerts
from iam.config import DirectorySettings
from iam.directory import NewUser
from iam.migrate import upgrade
from iam.models.audit import AuditEvent
from iam.services import Services
from tests.conftest import make_settings
from tests.detect.helpers import ruleset, seal
from tests.samba import SambaDC

pytestmark = [pytest.mark.samba]

PASSWORD = "Start-Passw0rd-1!"


@pytest.fixture
def ad_services(tmp_path: Path, samba_ad: DirectorySettings, ad_ou: str) -> Iterator[Services]:
    directory = samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou})
    svc = Services(
        make_settings(
            tmp_path, f"sqlite:///{tmp_path}/iam.db", directory=directory, detect={"ad_base_dn": ad_ou}
        )
    )
    upgrade(svc.engine)
    sso.on_upgrade(svc)
    yield svc
    if "directory" in svc.__dict__:
        svc.directory.close()  # type: ignore[attr-defined]
    svc.dispose()


def _changes(svc: Services) -> list[tuple[str, str]]:
    with svc.reader() as s:
        return [(c.change, c.dn) for c in s.scalars(select(DirectoryChange).order_by(DirectoryChange.id))]


def test_changes_behind_our_back_are_recorded_and_ours_are_not(
    ad_services: Services, samba_dc: SambaDC
) -> None:
    svc = ad_services
    d = svc.directory
    assert adchanges.poll(svc) == 0  # the baseline
    # the provider's own writes: a user created and enabled, one created disabled, a group, a member
    ours = d.create_user(NewUser(username=f"o{secrets.token_hex(4)}", given_name="Olga"))
    d.set_password(ours.id, PASSWORD, must_change=False)
    d.enable(ours.id)
    other = d.create_user(NewUser(username=f"x{secrets.token_hex(4)}", given_name="Xenia", enabled=False))
    group = d.create_group(f"g{secrets.token_hex(4)}")
    d.add_member(group.name, ours.id)
    assert adchanges.poll(svc) == 0
    assert _changes(svc) == []
    d.set_password(other.id, PASSWORD, must_change=False)  # ours too (not followed anyway)

    # behind our back, with ldap3 as the domain's Administrator
    samba_dc.modify(other.dn, {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})
    samba_dc.modify(group.dn, {"member": [(MODIFY_ADD, [other.dn])]})
    samba_dc.modify(ours.dn, {"userAccountControl": [(MODIFY_REPLACE, [str(512 | 0x10000)])]})

    assert adchanges.poll(svc) == 3  # one polling run
    assert sorted(_changes(svc)) == sorted(
        [
            ("user.enabled", other.dn),
            ("group.member_added", group.dn),
            ("user.password_never_expires", ours.dn),
        ]
    )
    with svc.reader() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.event == "directory.changed_outside")).all()
        assert sorted(str(e.details["change"]) for e in events) == [
            "group.member_added",
            "user.enabled",
            "user.password_never_expires",
        ]
        member = next(e for e in events if e.details["change"] == "group.member_added")
        assert str(member.details["member"]).lower().startswith(f"cn={other.display_name or ''}".lower()[:5])
    assert adchanges.poll(svc) == 0  # nothing twice

    # and our own later change of the same kind stays ours
    d.add_member(group.name, ours.id)  # already a member: no change at all
    d.remove_member(group.name, other.id)
    assert adchanges.poll(svc) == 0

    seal(svc)
    alerts.run(svc, ruleset=ruleset())
    with svc.reader() as s:
        raised = s.scalars(select(Alert).where(Alert.rule == "ad_change_outside")).all()
    assert sorted(a.key for a in raised) == sorted([other.dn, group.dn, ours.dn])
