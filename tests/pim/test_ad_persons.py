"""On the real Samba AD DC: a role whose group is missing is refused before anyone relies on it,
and an activation whose directory write fails ends ``failed`` with AD left as it was (issue 10
item 7); approvals compare persons — the requester's admin account, active in an approver role
and used through a switched SSO session, cannot approve their own request, and one person's two
accounts count once in a 2-of-N role (issue 11 item 2)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

import pim.jobs  # noqa: F401 — registers the handlers
from iam import jobs
from iam.directory.ad import ActiveDirectory
from iam.errors import Forbidden
from iam.identities import upsert_identity
from iam.models.audit import AuditEvent
from iam.services import Services
from pim import service
from pim.models import AdminAccount, ElevationRequest, State
from pim.service import Actor
from sso.models import SsoSession
from tests.pim.conftest import use_pim_settings, write_roles
from tests.pim.test_cli_and_roles import run
from tests.samba import SambaDC
from tests.sso.helpers import PASSWORD, csrf_from, login, make_user

pytestmark = [pytest.mark.samba]

UF_ACCOUNTDISABLE = 2


class Ad:
    def __init__(self, services: Services, dc: SambaDC, tag: str) -> None:
        self.services, self.dc, self.tag = services, dc, tag
        self.ops, self.approvers, self.ghost = f"PIM Ops {tag}", f"PIM Appr {tag}", f"PIM Ghost {tag}"
        self.users: dict[str, str] = {}
        self.names: dict[str, str] = {}

    def actor(self, who: str, level: str = "mfa") -> Actor:
        return Actor(sub=self.users[who], username=self.names[who], level=level)

    def run_jobs(self) -> None:
        for _ in range(10):
            if not jobs.run_due(self.services):
                return

    def admin(self, who: str) -> Actor:
        with self.services.transaction() as s:
            acc = s.get(AdminAccount, self.users[who])
            assert acc is not None and acc.account_id
            return Actor(sub=acc.account_id, username=acc.username, level="mfa")

    def ad_state(self, account_id: str) -> tuple[bool, list[str]]:
        """(enabled, memberOf) read straight from AD with ldap3."""
        user = self.services.directory.get_user(account_id)
        assert user is not None
        raw = self.dc.read(user.dn, ["userAccountControl", "memberOf"])
        return not int(raw["userAccountControl"][0]) & UF_ACCOUNTDISABLE, raw["memberOf"]

    def eligible(self, who: str, role: str) -> None:
        with self.services.transaction() as s:
            service.add_eligibility(
                s, self.services, actor=self.actor("sec"), role=role, username=self.names[who]
            )
        self.run_jobs()

    def request(self, who: str, role: str, **kw: str) -> str:
        with self.services.transaction() as s:
            return service.request_elevation(
                s,
                self.services,
                actor=self.actor(who),
                role=role,
                justification="patch the DCs tonight",
                **kw,
            ).id

    def state(self, rid: str) -> ElevationRequest:
        with self.services.transaction() as s:
            req = s.get(ElevationRequest, rid)
            assert req is not None
            return req

    def events(self, name: str) -> list[AuditEvent]:
        with self.services.transaction() as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))


@pytest.fixture
def ad(
    sqlite_services: Services, ad_directory: ActiveDirectory, samba_dc: SambaDC, ad_ou: str, tmp_path: Path
) -> Iterator[Ad]:
    services = sqlite_services
    services.__dict__["directory"] = ad_directory
    tag = secrets.token_hex(3)
    env = Ad(services, samba_dc, tag)
    roles = {
        "ops": f'groups = ["{env.ops}"]\napprover_group = "{env.approvers}"\n',
        "approve-ops": f'groups = ["{env.approvers}"]\napprovers = ["b{tag}"]\n',
        "dba2": f'groups = ["{env.ops}"]\napprover_group = "{env.approvers}"\napprovals_required = 2\n',
        "ghost": f'groups = ["{env.ghost}"]\napprovers = ["b{tag}"]\n',
    }
    saved = use_pim_settings(
        services,
        roles_dir=write_roles(tmp_path / "roles", roles),
        security_officers=[f"s{tag}"],
        admin_accounts_ou=ad_ou,
    )
    ad_directory.create_group(env.ops)
    ad_directory.create_group(env.approvers)
    for who in ("alice", "boss", "sec", "carol", "mallory"):
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


def test_missing_group_refused_up_front_and_failed_activation_leaves_ad_clean(ad: Ad) -> None:
    svc = ad.services
    out = run(svc, "pim", "roles", "validate")
    assert out.exit_code == 1
    assert f"role ghost: group '{ad.ghost}' does not exist in the directory" in out.output
    out = run(svc, "pim", "eligible", "add", "ghost", ad.names["alice"])
    assert out.exit_code == 1 and f"do not exist in the directory: {ad.ghost}" in out.output
    ghost = svc.directory.create_group(ad.ghost)
    assert run(svc, "pim", "roles", "validate").exit_code == 0
    ad.eligible("alice", "ghost")
    admin = ad.admin("alice")
    rid = ad.request("alice", "ghost")
    ad.dc.admin(lambda conn: conn.delete(ghost.dn))  # the group goes away in AD meanwhile
    with svc.transaction() as s:
        service.decide(s, svc, actor=ad.actor("boss"), request_id=rid, approve=True)
    ad.run_jobs()
    req = ad.state(rid)
    assert req.state == State.FAILED and ad.ghost in (req.end_reason or "")
    assert ad.events("pim.activated") == []
    (failed,) = ad.events("pim.failed")
    assert failed.severity == "critical" and failed.details["reason"] == req.end_reason
    assert ad.ad_state(admin.sub) == (False, [])  # as AD holds it: disabled, in no group


def _browser(app: Flask, username: str) -> object:
    c = app.test_client()
    resp = login(c, username, PASSWORD)
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    return c


def test_own_admin_account_in_an_approver_role_cannot_approve(ad: Ad) -> None:
    """alice is active in approve-ops (her adm- account is in the approver group in AD), switches
    her SSO session to it and tries to approve her own request for ops."""
    from iam.app import create_app

    svc = ad.services
    ad.eligible("alice", "approve-ops")
    ad.eligible("alice", "ops")
    held = ad.request("alice", "approve-ops")
    with svc.transaction() as s:
        service.decide(s, svc, actor=ad.actor("boss"), request_id=held, approve=True)
    ad.run_jobs()
    admin = ad.admin("alice")
    group = svc.directory.get_group(ad.approvers)
    assert group is not None
    assert ad.ad_state(admin.sub) == (True, [group.dn])  # the approver right, as AD holds it
    rid = ad.request("alice", "ops")

    app = create_app(services=svc)
    app.config.update(TESTING=True)
    browser = _browser(app, ad.names["alice"])
    mine = browser.get("/pim/").get_data(as_text=True)  # type: ignore[attr-defined]
    switched = browser.post(  # type: ignore[attr-defined]
        f"/pim/requests/{held}/use", data={"csrf_token": csrf_from(mine)}
    )
    assert switched.status_code == 303
    inbox = browser.get("/pim/approvals").get_data(as_text=True)  # type: ignore[attr-defined]
    with svc.transaction() as s:  # the browser's SSO session is now the admin account's
        assert s.scalar(select(SsoSession.sid).where(SsoSession.sub == admin.sub)) is not None
    assert rid not in inbox  # her own request is not offered to her admin account
    resp = browser.post(  # type: ignore[attr-defined]
        f"/pim/requests/{rid}/decide",
        data={"csrf_token": csrf_from(browser.get("/account").get_data(as_text=True)), "verdict": "approve"},  # type: ignore[attr-defined]
    )
    assert resp.status_code == 303
    assert ad.state(rid).state == State.REQUESTED
    (event,) = ad.events("pim.self_approval_refused")
    assert event.actor == admin.sub and event.subject == ad.users["alice"]
    assert event.details["account"].casefold() == admin.username.casefold()


def test_two_accounts_of_one_person_count_once_in_a_two_of_n_role(ad: Ad) -> None:
    """carol is in the approver group herself and, through approve-ops, with her adm- account."""
    svc = ad.services
    svc.directory.add_member(ad.approvers, ad.users["carol"])
    ad.eligible("carol", "approve-ops")
    held = ad.request("carol", "approve-ops")
    with svc.transaction() as s:
        service.decide(s, svc, actor=ad.actor("boss"), request_id=held, approve=True)
    ad.run_jobs()
    carol_admin = ad.admin("carol")
    assert ad.ad_state(carol_admin.sub)[0]
    ad.eligible("mallory", "dba2")
    rid = ad.request("mallory", "dba2")
    with svc.transaction() as s:
        service.decide(s, svc, actor=ad.actor("carol"), request_id=rid, approve=True)
    with pytest.raises(Forbidden, match="another of your accounts"), svc.transaction() as s:
        service.decide(s, svc, actor=carol_admin, request_id=rid, approve=True)
    assert ad.state(rid).state == State.REQUESTED  # one person, one approval: still pending
    assert len(ad.events("pim.second_decision_refused")) == 1
    svc.directory.add_member(ad.approvers, ad.users["boss"])
    with svc.transaction() as s:
        service.decide(s, svc, actor=ad.actor("boss"), request_id=rid, approve=True)
    assert ad.state(rid).state == State.APPROVED
