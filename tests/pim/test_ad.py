"""PIM against the real Samba AD DC: the whole life of an elevation visible in AD, removal within
5 seconds of the end (measured), restart sweep, and out-of-band changes made with ldap3."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_REPLACE
from sqlalchemy import select

import pim.jobs  # noqa: F401 — registers the handlers
from iam import clock, jobs
from iam.directory.ad import ActiveDirectory
from iam.directory.errors import AccountDisabled, InvalidCredentials
from iam.identities import upsert_identity
from iam.jobs import Worker
from iam.models.audit import AuditEvent
from iam.services import Services
from pim import service
from pim.models import AdminAccount, Alert, ElevationRequest, State
from pim.service import Actor
from pim.service.directory import detect
from tests.pim.conftest import use_pim_settings, write_roles
from tests.samba import SambaDC
from tests.sso.helpers import PASSWORD, make_user

pytestmark = [pytest.mark.samba]

UF_ACCOUNTDISABLE = 2


class AdEnv:
    def __init__(self, services: Services, dc: SambaDC, ou: str, tag: str) -> None:
        self.services, self.dc, self.ou, self.tag = services, dc, ou, tag
        self.group = f"PIM Ops {tag}"
        self.users: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def actor(self, who: str, level: str = "mfa") -> Actor:
        return Actor(sub=self.users[who], username=self.names[who], level=level)

    def run_jobs(self) -> None:
        for _ in range(10):
            if not jobs.run_due(self.services):
                return

    def group_dn(self) -> str:
        g = self.services.directory.get_group(self.group)
        assert g is not None
        return g.dn

    def account(self, who: str = "alice") -> AdminAccount:
        with self.services.transaction() as s:
            acc = s.get(AdminAccount, self.users[who])
            assert acc is not None and acc.account_id
            return acc

    def ad_state(self, who: str = "alice") -> tuple[bool, list[str]]:
        """(enabled, memberOf) of the admin account, read straight from AD."""
        user = self.services.directory.get_user(self.account(who).account_id or "")
        assert user is not None
        raw = self.dc.read(user.dn, ["userAccountControl", "memberOf"])
        uac = int(raw["userAccountControl"][0])
        return not uac & UF_ACCOUNTDISABLE, raw["memberOf"]


@pytest.fixture
def ad_pim(
    sqlite_services: Services, ad_directory: ActiveDirectory, samba_dc: SambaDC, ad_ou: str, tmp_path: Path
) -> Iterator[AdEnv]:
    services = sqlite_services
    services.__dict__["directory"] = ad_directory
    tag = secrets.token_hex(3)
    env = AdEnv(services, samba_dc, ad_ou, tag)
    roles = {
        "ops": f"""
groups = ["{env.group}"]
max_minutes = 120
default_minutes = 30
approvers = ["b{tag}"]
justification_required = true
""",
    }
    saved = use_pim_settings(
        services,
        roles_dir=write_roles(tmp_path / "roles", roles),
        security_officers=[f"s{tag}"],
        admin_accounts_ou=ad_ou,
    )
    ad_directory.create_group(env.group)
    for who in ("alice", "boss", "sec", "mallory"):
        username = f"{who[0]}{tag}"
        user = make_user(services, username)
        env.users[who], env.names[who] = user.id, username
        with services.transaction() as s:
            upsert_identity(s, user, kind="ad")
    try:
        yield env
    finally:
        services.settings.pim = saved
        services.extensions.pop("pim.file_roles", None)


def _approved(env: AdEnv, minutes: int = 30) -> str:
    s_ = env.services
    with s_.transaction() as s:
        service.add_eligibility(s, s_, actor=env.actor("sec"), role="ops", username=env.names["alice"])
    env.run_jobs()
    with s_.transaction() as s:
        rid = service.request_elevation(
            s,
            s_,
            actor=env.actor("alice"),
            role="ops",
            minutes=minutes,
            justification="patch the DCs tonight",
        ).id
    with s_.transaction() as s:
        service.decide(s, s_, actor=env.actor("boss"), request_id=rid, approve=True)
    return rid


def test_full_life_visible_in_ad(ad_pim: AdEnv) -> None:
    env = ad_pim
    s_ = env.services
    d = s_.directory
    with s_.transaction() as s:
        service.add_eligibility(s, s_, actor=env.actor("sec"), role="ops", username=env.names["alice"])
    env.run_jobs()
    acc = env.account()
    admin = d.get_user(acc.account_id or "")
    assert admin is not None and admin.username == f"adm-{env.names['alice']}"
    assert admin.dn.endswith(env.ou)  # created in the configured OU
    assert env.ad_state() == (False, [])  # disabled, no privileged group: zero standing rights

    with s_.transaction() as s:
        rid = service.request_elevation(
            s, s_, actor=env.actor("alice"), role="ops", minutes=30, justification="patch the DCs tonight"
        ).id
    with s_.transaction() as s, pytest.raises(Exception, match="your own"):
        service.decide(s, s_, actor=env.actor("alice"), request_id=rid, approve=True)
    with s_.transaction() as s:
        service.decide(s, s_, actor=env.actor("boss"), request_id=rid, approve=True)
    assert env.ad_state() == (False, [])  # nothing in AD until the job runs
    env.run_jobs()
    enabled, groups = env.ad_state()
    assert enabled and groups == [env.group_dn()]
    with s_.transaction() as s:
        password = service.reveal_secret(s, s_, actor=env.actor("alice"), request_id=rid)
    assert d.authenticate(admin.username, password).id == admin.id  # the admin account signs in
    set_before = env.dc.read(admin.dn, ["pwdLastSet"])["pwdLastSet"][0]

    time.sleep(1.1)  # pwdLastSet has a resolution AD rounds to; real time, not business time
    clock.advance(dt.timedelta(minutes=31))
    env.run_jobs()
    with s_.transaction() as s:
        req = s.get(ElevationRequest, rid)
        assert req is not None and req.state == State.EXPIRED and req.removed_at is not None
    assert env.ad_state() == (False, [])
    with pytest.raises(AccountDisabled):
        d.authenticate(admin.username, password)
    # the password was rotated too (a later bind with the old one is refused once AD's
    # old-password window, a domain setting, is over; see README)
    assert int(env.dc.read(admin.dn, ["pwdLastSet"])["pwdLastSet"][0]) > int(set_before)


def test_access_removed_within_5_seconds_of_end(ad_pim: AdEnv) -> None:
    """A real worker thread; the clock is moved to eight seconds before the end, then real time
    runs. Lag = time of the end → both disabled and out of the group, as read from AD."""
    env = ad_pim
    rid = _approved(env, minutes=30)
    env.run_jobs()
    assert env.ad_state()[0]
    with env.services.transaction() as s:
        req = s.get(ElevationRequest, rid)
        assert req is not None and req.ends_at is not None
        ends_at = req.ends_at
    worker = Worker(env.services)
    thread = threading.Thread(target=worker.run, daemon=True)
    # a worker that is already running: its first tick runs every periodic task once (directory
    # sweeps, reminders, detection), which under load takes seconds — let that pass first
    clock.advance(ends_at - clock.now() - dt.timedelta(seconds=8))
    thread.start()
    try:
        lag = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            enabled, groups = env.ad_state()
            if not enabled and not groups:
                lag = (clock.now() - ends_at).total_seconds()
                break
            time.sleep(0.05)
    finally:
        worker.stop_event.set()
        thread.join(15)
    assert lag is not None, "access was never removed"
    print(f"removal lag after the end: {lag:.2f} s")
    assert lag < 5.0
    with env.services.transaction() as s:
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "pim.access_removed")).one()
        assert ev.details["lag_seconds"] < 5.0


def test_restart_after_crash_removes_access(ad_pim: AdEnv) -> None:
    env = ad_pim
    rid = _approved(env)
    env.run_jobs()
    assert env.ad_state()[0]
    # the worker dies; hours pass; a new worker starts
    clock.advance(dt.timedelta(hours=5))
    w = Worker(env.services)
    w.tick()
    w.tick()
    env.run_jobs()
    assert env.ad_state() == (False, [])
    with env.services.transaction() as s:
        req = s.get(ElevationRequest, rid)
        assert req is not None and req.state == State.EXPIRED


@pytest.mark.parametrize("remove", [False, True])
def test_out_of_band_changes_detected(ad_pim: AdEnv, remove: bool) -> None:
    env = ad_pim
    env.services.settings.pim.remove_out_of_band = remove
    _approved(env)
    env.run_jobs()
    assert detect(env.services) == []  # the elevated admin account is backed by PIM
    mallory = env.services.directory.get_user(env.users["mallory"])
    assert mallory is not None
    env.dc.modify(env.group_dn(), {"member": [(MODIFY_ADD, [mallory.dn])]})  # by hand, with ldap3
    new = detect(env.services)
    assert len(new) == 1
    assert detect(env.services) == []  # one alert, not one a minute
    with env.services.transaction() as s:
        alert = s.get(Alert, new[0])
        assert alert is not None and alert.kind == "member_outside_pim" and alert.username == mallory.username
        ev = s.scalars(select(AuditEvent).where(AuditEvent.event == "pim.member_outside_pim")).one()
        assert ev.severity == "critical"
    env.run_jobs()
    groups = env.dc.read(mallory.dn, ["memberOf"])["memberOf"]
    assert (groups == []) is remove


def test_admin_account_enabled_by_hand_detected(ad_pim: AdEnv) -> None:
    env = ad_pim
    env.services.settings.pim.remove_out_of_band = True
    with env.services.transaction() as s:
        service.add_eligibility(
            s, env.services, actor=env.actor("sec"), role="ops", username=env.names["alice"]
        )
    env.run_jobs()
    acc = env.account()
    admin = env.services.directory.get_user(acc.account_id or "")
    assert admin is not None
    env.dc.modify(admin.dn, {"userAccountControl": [(MODIFY_REPLACE, ["512"])]})
    new = detect(env.services)
    assert len(new) == 1
    with env.services.transaction() as s:
        alert = s.get(Alert, new[0])
        assert alert is not None and alert.kind == "account_enabled_outside_pim"
    env.run_jobs()
    assert env.ad_state() == (False, [])  # disabled again (removal is on)


def test_password_unknown_while_inactive(ad_pim: AdEnv) -> None:
    """The admin account exists with a random password nobody was shown: the person's own
    password does not open it."""
    env = ad_pim
    with env.services.transaction() as s:
        service.add_eligibility(
            s, env.services, actor=env.actor("sec"), role="ops", username=env.names["alice"]
        )
    env.run_jobs()
    acc = env.account()
    with pytest.raises((AccountDisabled, InvalidCredentials)):
        env.services.directory.authenticate(acc.username, PASSWORD)
