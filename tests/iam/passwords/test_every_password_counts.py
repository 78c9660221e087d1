"""Every password an account has had counts for the history, whoever set it (R-PW-2, CACAK Član
20: no reuse within a year): the password given at ``iam user add``, an administrator's temporary
password, a joiner's initial password — not only those the user chose on the change page.
And a profile that demands it makes a new account change its initial password at the first
sign-in (R-PW-4, BISTREZOR Član 22, PABIANICE §18)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from iam import clock
from iam.models.audit import AuditEvent
from iam.passwords import history
from iam.users import add_user, reset_password
from tests.iam.passwords.conftest import profile
from tests.sso.helpers import csrf_from, login

INITIAL = "Prva-Lozinka#2026"
CHOSEN = [f"Izabrana-{n}#Lozinka{n}x" for n in range(1, 7)]


def _change(client, username: str, old: str, new: str):  # type: ignore[no-untyped-def]
    page = client.get("/password/change")
    return client.post(
        "/password/change",
        data={
            "username": username,
            "current_password": old,
            "new_password": new,
            "confirm": new,
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )


def _six_changes(client, username: str, current: str) -> str:  # type: ignore[no-untyped-def]
    """Six changes a month apart through the change page (still within the year)."""
    for new in CHOSEN:
        clock.advance(dt.timedelta(days=30))
        resp = _change(client, username, current, new)
        assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:800]
        client.get("/logout")
        current = new
    return current


@pytest.fixture
def cacak(services, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(services, "password_profile", profile("cacak"))
    clock.freeze()
    return services


def test_the_password_given_at_user_add_is_history(cacak, client) -> None:  # type: ignore[no-untyped-def]
    add_user(cacak, username="dana", password=INITIAL, given_name="Dana", family_name="Ilić", actor="test")
    with cacak.transaction() as s:
        assert len(history.entries(s, cacak.directory.find_user(username="dana").id)) == 1
    current = _six_changes(client, "dana", INITIAL)
    clock.advance(dt.timedelta(days=30))  # 7 months after it was replaced: still within a year
    again = _change(client, "dana", current, INITIAL)
    assert again.status_code == 400
    assert "any password you used in the last 365 days" in again.get_data(as_text=True)
    clock.advance(dt.timedelta(days=200))  # more than a year after it was replaced: allowed again
    assert _change(client, "dana", current, INITIAL).status_code in (302, 303)


def test_an_administrators_temporary_password_is_history(cacak, client) -> None:  # type: ignore[no-untyped-def]
    add_user(cacak, username="ivo", password=INITIAL, given_name="Ivo", family_name="Lolić", actor="test")
    temporary, must_change = reset_password(cacak, username="ivo", actor="admin")
    assert must_change
    current = _six_changes(client, "ivo", temporary)
    assert _change(client, "ivo", current, temporary).status_code == 400
    assert _change(client, "ivo", current, INITIAL).status_code == 400


def test_cli_user_add_records_the_password(sqlite_services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from iam import cli as cli_mod

    monkeypatch.setattr(cli_mod.Ctx, "services", property(lambda self: sqlite_services))
    result = CliRunner().invoke(cli_mod.cli, ["user", "add", "mara", "--json"], input=INITIAL + "\n")
    assert result.exit_code == 0, result.output
    sub = json.loads(result.output)["id"]
    with sqlite_services.transaction() as s:
        rows = history.entries(s, sub)
        assert len(rows) == 1 and INITIAL not in rows[0].password_hash
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.subject == sub, AuditEvent.event == "password.initial")
        ).one()
    assert INITIAL not in json.dumps(event.details)


@pytest.mark.parametrize("name", ["bistrezor", "pabianice", "strictest"])
def test_change_new_account_makes_the_first_sign_in_change_the_password(  # type: ignore[no-untyped-def]
    services, client, monkeypatch, name: str
) -> None:
    """``iam user add`` without --must-change: the profile's change_new_account still applies,
    checked through the real sign-in form."""
    from iam import cli as cli_mod

    monkeypatch.setattr(services, "password_profile", profile(name))
    monkeypatch.setattr(cli_mod.Ctx, "services", property(lambda self: services))
    result = CliRunner().invoke(cli_mod.cli, ["user", "add", "nova", "--json"], input=INITIAL + "\n")
    assert result.exit_code == 0, result.output
    resp = login(client, "nova", INITIAL)
    assert resp.status_code in (302, 303)
    assert resp.headers["Location"].endswith("/password/change")
    assert client.get("/account").status_code in (302, 303)  # not signed in yet
    new = "Druga-Sifra#2027xy"
    assert _change(client, "nova", INITIAL, new).status_code in (302, 303)
    assert services.directory.authenticate("nova", new).username == "nova"


def test_default_profile_keeps_the_initial_password(services, client) -> None:  # type: ignore[no-untyped-def]
    """The default profile has no change_new_account: the account signs in straight away."""
    add_user(services, username="stay", password="Stay-initial-pass-1", actor="test")
    assert services.directory.authenticate("stay", "Stay-initial-pass-1").username == "stay"


def test_a_generated_password_hashed_cheaply_still_counts_for_history(cacak) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: a joiner's random initial password is hashed outside the transaction at the
    cost a machine-made secret needs; the history recognises it like any other entry."""
    from iam.passwords import hashing
    from iam.passwords.service import generate_temporary_password, record_password_set

    temporary = generate_temporary_password(cacak.password_profile)
    assert len(temporary) >= hashing.GENERATED_MIN_LENGTH
    stored = hashing.hash_generated_password(temporary)
    assert stored.startswith("$argon2id$") and "m=1024,t=1,p=1" in stored
    assert hashing.verify_password(stored, temporary)
    assert not hashing.verify_password(stored, temporary + "x")
    with cacak.transaction() as s:
        row = record_password_set(
            s,
            "sub-joiner",
            temporary,
            by_admin=True,
            actor="hr",
            profile=cacak.password_profile,
            password_hash=stored,
        )
        assert row.password_hash == stored
    with cacak.reader() as s:
        now = clock.now()
        assert history.reused(s, cacak.password_profile, sub="sub-joiner", password=temporary, now=now)
        assert not history.reused(s, cacak.password_profile, sub="sub-joiner", password=CHOSEN[0], now=now)
