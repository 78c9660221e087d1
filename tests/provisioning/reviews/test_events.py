"""Reviews on every change: a break-glass activation in PIM becomes a review for a security
officer (R-PIM-8) through the core's ``review_requested`` signal and the job table — PIM never
imports provisioning (R-JML-4 movers are covered against Samba in test_with_ad.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from iam.identities import upsert_identity
from iam.models.jobs import Job
from iam.services import Services
from pim import service
from provisioning import jobs as _provisioning_jobs  # noqa: F401 — connects the review subscriber
from provisioning.reviews.models import Campaign, CampaignItem
from tests.pim.conftest import ROLES, Env, use_pim_settings, write_roles
from tests.sso.helpers import make_user


def test_break_glass_is_reviewed_by_a_security_officer(services: Services, tmp_path: Path) -> None:
    saved = use_pim_settings(
        services, roles_dir=write_roles(tmp_path / "roles", ROLES), security_officers=["sec"]
    )
    try:
        env = Env(services)
        for group in ("Ops Admins", "DB Admins", "DB Approvers"):
            if services.directory.get_group(group) is None:
                services.directory.create_group(group)
        for name in ("alice", "sec"):
            env.users[name] = make_user(services, name)
        with services.transaction() as s:
            for u in env.users.values():
                upsert_identity(s, u, kind=services.directory.kind)
        with env.tx() as s:
            service.add_eligibility(s, services, actor=env.actor("sec"), role="glass", username="alice")
        env.run_jobs()  # the admin account is created
        with env.tx() as s:
            service.break_glass(
                s,
                services,
                actor=env.actor("alice", "smartcard"),
                role="glass",
                justification="ransomware spreading now",
            )
            queued = s.scalars(select(Job.payload).where(Job.kind == "reviews.event")).all()
        assert queued == [{"event": "break_glass", "person": env.users["alice"].id, "actor": "pim"}]
        env.run_jobs()
        with services.reader() as s:
            campaign = s.scalar(select(Campaign).where(Campaign.trigger == "break_glass"))
            assert campaign is not None and campaign.definition == "emergency"
            rows = s.scalars(select(CampaignItem).where(CampaignItem.campaign_id == campaign.id)).all()
        assert rows and {r.reviewer for r in rows} == {"sec"}
        assert ("pim_eligibility", "glass") in {(r.kind, r.resource) for r in rows}
    finally:
        services.settings.pim = saved
        services.extensions.pop("pim.file_roles", None)
