"""``iam mfa …`` and ``iam client … --require-acr`` against a temporary SQLite site."""

from __future__ import annotations

from sqlalchemy import select

from iam.models.audit import AuditEvent
from sso.mfa import service as mfa
from tests.iam.test_cli import Site, one_sentence_error
from tests.sso.helpers import make_user
from tests.sso.mfa.helpers import enroll


def test_mfa_reset_removes_the_app_and_is_audited(site: Site) -> None:
    user = make_user(site.services)
    enroll(site.services, user.id)
    status = site.json("mfa", "status", "alice")
    assert status["totp"] is not None and status["recovery_codes_left"] == 10
    out = site.json("mfa", "reset", "alice", "--reason", "ticket 12")
    assert out == {"sub": user.id, "had_totp": True, "recovery_codes_removed": 10, "sessions_ended": 0}
    with site.services.transaction() as s:
        assert not mfa.has_totp(s, user.id)
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.event == "mfa.reset")).all()
        assert (event.severity, event.actor, event.subject) == ("critical", "cli", user.id)
        assert event.details["reason"] == "ticket 12"
    text = site.ok("mfa", "status", "alice").stdout
    assert "authenticator app: none" in text


def test_mfa_reset_unknown_user_is_one_sentence(site: Site) -> None:
    assert one_sentence_error(site.run("mfa", "reset", "nobody")) == "There is no user 'nobody'."


def test_client_require_acr(site: Site) -> None:
    created = site.json(
        "client", "add", "--name", "HR", "--redirect-uri", "https://hr.example/cb", "--require-acr", "mfa"
    )
    assert created["require_acr"] == "mfa"
    bad = site.run(
        "client", "add", "--name", "X", "--redirect-uri", "https://x.example/cb", "--require-acr", "gold"
    )
    assert "Unknown level 'gold'" in one_sentence_error(bad)
    changed = site.json("client", "require-acr", created["client_id"], "smartcard")
    assert changed["require_acr"] == "smartcard"
    cleared = site.json("client", "require-acr", created["client_id"], "none")
    assert cleared["require_acr"] is None
    with site.services.transaction() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.event == "client.required_level_changed")
        ).all()
        assert [e.details["after"] for e in events] == ["smartcard", None]


def test_mfa_levels_lists_the_configured_levels(site: Site) -> None:
    data = site.json("mfa", "levels")
    assert [lvl["name"] for lvl in data["levels"]] == ["password", "mfa", "smartcard"]
