"""The password engine together with a real Samba AD DC (issue "Password rules…", R-PW-1..6):
our profile is checked before AD is written, AD's own refusal is explained, history holds across
changes made through us, lockout triggers at our threshold and never lets AD lock first, and
``iam policy check`` reads AD's policies."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from iam import cli as cli_module
from iam import clock, users
from iam.app import create_app
from iam.cli import cli
from iam.config import DirectorySettings
from iam.directory import InvalidCredentials, NewUser
from iam.directory.base import DirectoryUser
from iam.migrate import upgrade
from iam.passwords.cli import register
from iam.passwords.compare import compare, problems
from iam.services import Services
from sso.views.signin import REFUSED
from tests.conftest import make_settings
from tests.sso.helpers import refusal

register(cli)

pytestmark = [pytest.mark.samba]

PASSWORD = "Start-Passw0rd-1!"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def ad_settings(samba_ad: DirectorySettings, ad_ou: str) -> DirectorySettings:
    return samba_ad.model_copy(update={"users_ou": ad_ou, "groups_ou": ad_ou})


@pytest.fixture
def ad_services(tmp_path: Path, ad_settings: DirectorySettings) -> Iterator[Services]:
    svc = Services(
        make_settings(
            tmp_path,
            f"sqlite:///{tmp_path}/iam.db",
            directory=ad_settings,
            passwords={"profile": "cacak"},
            lockout={"threshold": 3, "window": 1800, "duration": 900},
        )
    )
    upgrade(svc.engine)
    import sso

    sso.on_upgrade(svc)
    yield svc
    if "directory" in svc.__dict__:
        svc.directory.close()  # type: ignore[attr-defined]
    svc.dispose()


@pytest.fixture
def app(ad_services: Services) -> Any:
    app = create_app(services=ad_services)
    app.config.update(TESTING=True)
    return app


def new_user(svc: Services, **fields: Any) -> DirectoryUser:
    d = svc.directory
    user = d.create_user(
        NewUser(
            username=f"u{secrets.token_hex(4)}",
            given_name=fields.pop("given_name", "Milica"),
            family_name=fields.pop("family_name", "Đorđević"),
            **fields,
        )
    )
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    found = d.get_user(user.id)
    assert found is not None
    return found


def _csrf(client: Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    m = CSRF.search(page)
    assert m, page
    return m.group(1)


def change(client: Any, username: str, current: str, new: str) -> Any:
    token = _csrf(client, "/password/change")
    return client.post(
        "/password/change",
        data={
            "csrf_token": token,
            "username": username,
            "current_password": current,
            "new_password": new,
            "confirm": new,
        },
    )


def login(client: Any, username: str, password: str) -> Any:
    token = _csrf(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})


def test_profile_refusal_never_reaches_ad(app: Any, ad_services: Services) -> None:
    user = new_user(ad_services)
    before = ad_services.directory.get_user(user.id)
    assert before is not None
    # AD (complexity, 7 characters) would take this one; Čačak wants the fourth class and no name
    r = change(app.test_client(), user.username, PASSWORD, "Milica2026xyz")
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "special character" in body and "name" in body
    after = ad_services.directory.get_user(user.id)
    assert after is not None and after.password_last_set == before.password_last_set
    assert ad_services.directory.authenticate(user.username, PASSWORD).id == user.id


def test_refusal_only_by_ad_is_explained(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str]
) -> None:
    user = new_user(ad_services)
    ad_user_policy(user.dn, min_length=20, complexity="TRUE", history=0)
    r = change(app.test_client(), user.username, PASSWORD, "Kx9!mq2#Lp")  # fine for Čačak, short for AD
    body = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "The new password was refused" in body and "at least 20 characters" in body
    assert "Kx9!mq2#Lp" not in body
    assert ad_services.directory.authenticate(user.username, PASSWORD).id == user.id


def test_history_holds_across_changes_made_through_us(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str]
) -> None:
    """AD keeps no history here (PSO history 0); ours refuses the reuse, also a year-based one."""
    user = new_user(ad_services)
    ad_user_policy(user.dn, history=0, min_age=dt.timedelta(0), complexity="TRUE", min_length=7)
    client = app.test_client()
    first, second = "Prvi#Zimski7Dan", "Drugi#Letnji8Dan"
    assert change(client, user.username, PASSWORD, first).status_code == 302
    assert change(client, user.username, first, second).status_code == 302
    r = change(client, user.username, second, first)
    assert r.status_code == 400 and "used" in r.get_data(as_text=True)
    assert ad_services.directory.authenticate(user.username, second).id == user.id


def test_every_password_set_through_us_counts_on_ad(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str]
) -> None:
    """Issue 10 item 9: the initial password of ``add_user`` and an administrator's temporary
    password written to AD through us are history too (Čačak: no reuse within a year)."""
    initial = "Pocetna#Sifra2026"
    created = users.add_user(
        ad_services,
        username=f"u{secrets.token_hex(4)}",
        password=initial,
        given_name="Milica",
        family_name="Đorđević",
        actor="test",
    )
    ad_user_policy(created.dn, history=0, min_age=dt.timedelta(0), complexity="TRUE", min_length=7)
    client = app.test_client()
    chosen = "Prvi#Zimski7Dan"
    assert change(client, created.username, initial, chosen).status_code == 302
    r = change(client, created.username, chosen, initial)
    assert r.status_code == 400 and "used" in r.get_data(as_text=True)
    temporary, _ = users.reset_password(ad_services, username=created.username, actor="helpdesk")
    assert change(client, created.username, temporary, "Drugi#Letnji8Dan").status_code == 302
    r = change(client, created.username, "Drugi#Letnji8Dan", temporary)
    assert r.status_code == 400 and "used" in r.get_data(as_text=True)
    assert ad_services.directory.authenticate(created.username, "Drugi#Letnji8Dan").id == created.id


def test_lockout_at_threshold_under_parallel_attempts_before_ad(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str], samba_dc: Any
) -> None:
    """Twelve wrong passwords at once: our lock at exactly 3, AD (threshold 4) never locks."""
    user = new_user(ad_services)
    ad_user_policy(user.dn, lockout_threshold=4, lockout_window=dt.timedelta(minutes=30))
    n = 12
    barrier = threading.Barrier(n)
    codes: list[int] = []

    def attempt(i: int) -> None:
        client = app.test_client()
        token = _csrf(client, "/login")
        barrier.wait()
        r = client.post(
            "/login", data={"csrf_token": token, "username": user.username, "password": f"Wrong-{i}-Pass!"}
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [401] * n
    entry = samba_dc.read(user.dn, ["badPwdCount", "lockoutTime"])
    assert int(entry["badPwdCount"][0]) == 3  # exactly our threshold reached AD, no more
    assert (entry.get("lockoutTime") or ["0"])[0] == "0"
    # our lock holds even for the right password; AD itself still accepts it
    r = login(app.test_client(), user.username, PASSWORD)
    assert r.status_code == 401 and str(REFUSED) in r.get_data(as_text=True)
    assert ad_services.directory.authenticate(user.username, PASSWORD).id == user.id


def spellings(user: DirectoryUser) -> list[str]:
    """Names AD accepts for one account: sAMAccountName and UPN, in any case."""
    upn = user.upn or f"{user.username}@example.test"
    local, _, domain = upn.partition("@")
    return [user.username, user.username.upper(), upn, f"{local.capitalize()}@{domain.title()}"]


def test_lockout_counts_the_account_whichever_name_is_typed(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str], samba_dc: Any
) -> None:
    """Issue 20 on the real DC, AD's threshold 5 (a PSO) above ours (3): twenty wrong passwords
    at once spread over four spellings of one account → exactly 3 reach AD, AD never locks; the
    right password is refused under every spelling while we hold the lock; `iam user unlock`
    with yet another spelling lifts it."""
    user = new_user(ad_services)
    pso = ad_user_policy(user.dn, lockout_threshold=5, lockout_window=dt.timedelta(minutes=30))
    mine = next(p for p in ad_services.directory.password_policies() if p.name == pso.split(",")[0][3:])
    # `iam policy check` still finds AD's threshold above ours: no lockout finding
    assert not [
        f
        for f in problems(compare(ad_services.password_profile, ad_services.settings.lockout, mine))
        if f.setting == "lockout_threshold"
    ]
    names = spellings(user)
    n = 20
    barrier = threading.Barrier(n)
    answers: list[tuple[int, str]] = []

    def attempt(i: int) -> None:
        client = app.test_client()
        token = _csrf(client, "/login")
        barrier.wait()
        r = client.post(
            "/login",
            data={"csrf_token": token, "username": names[i % len(names)], "password": f"Wrong-{i}-Pass!"},
        )
        answers.append(refusal(r))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == n and len(set(answers)) == 1 and answers[0][0] == 401
    entry = samba_dc.read(user.dn, ["badPwdCount", "lockoutTime"])
    assert int(entry["badPwdCount"][0]) == 3  # exactly our threshold reached AD, no more
    assert (entry.get("lockoutTime") or ["0"])[0] == "0"  # AD never locked
    for name in [*names, f"  {user.username}  "]:
        r = login(app.test_client(), name, PASSWORD)
        assert refusal(r) == answers[0], name  # our lock, whatever the spelling
    entry = samba_dc.read(user.dn, ["badPwdCount", "lockoutTime"])
    assert int(entry["badPwdCount"][0]) == 3 and (entry.get("lockoutTime") or ["0"])[0] == "0"

    ctx = cli_module.Ctx()
    ctx._services = ad_services
    result = CliRunner().invoke(cli, ["user", "unlock", names[3]], obj=ctx)
    assert result.exit_code == 0 and "Unlocked" in result.output, result.output
    r = login(app.test_client(), names[1], PASSWORD)
    assert r.status_code == 302 and not r.headers["Location"].endswith("/login")


def test_ad_lock_is_answered_like_a_wrong_password(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str], samba_dc: Any
) -> None:
    """Unknown name, wrong password, our lock, AD's own lock (775, from wrong passwords given
    to AD elsewhere): one page, one status; the precise reason only in the audit trail."""
    from ldap3.core.exceptions import LDAPException
    from sqlalchemy import select

    from iam.models.audit import AuditEvent

    ad_locked, other = new_user(ad_services), new_user(ad_services)
    ad_user_policy(ad_locked.dn, lockout_threshold=2, lockout_window=dt.timedelta(minutes=30))
    for i in range(2):  # e.g. a Windows logon: AD counts and locks by itself
        with pytest.raises(LDAPException):
            samba_dc.connect(ad_locked.dn, f"Elsewhere-{i}-Wrong!")
    assert (samba_dc.read(ad_locked.dn, ["lockoutTime"])["lockoutTime"] or ["0"])[0] != "0"
    client = app.test_client()
    unknown = refusal(login(client, f"nobody{secrets.token_hex(3)}", PASSWORD))
    wrong = refusal(login(client, other.username, "Not-the-Passw0rd!"))
    for i in range(ad_services.settings.lockout.threshold):
        login(client, other.username, f"Wrong-{i}-Pass!")
    ours = refusal(login(client, other.username, PASSWORD))
    theirs = refusal(login(client, ad_locked.upn or ad_locked.username, PASSWORD))
    assert unknown[0] == 401 and str(REFUSED) in unknown[1]
    assert unknown == wrong == ours == theirs
    with ad_services.transaction() as s:
        failed = select(AuditEvent).where(AuditEvent.event == "login.failed").order_by(AuditEvent.id)
        reasons = [e.details["reason"] for e in s.scalars(failed)]
    assert reasons[:2] == ["bad_credentials", "bad_credentials"] and reasons[-2:] == ["throttled", "locked"]


def test_policy_check_reads_domain_and_fine_grained_policies(
    ad_services: Services, ad_user_policy: Callable[..., str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    user = new_user(ad_services)
    pso = ad_user_policy(
        user.dn,
        precedence=5,
        min_length=12,
        complexity="FALSE",
        history=2,
        max_age=dt.timedelta(days=400),
        min_age=dt.timedelta(days=2),
        lockout_threshold=3,
        lockout_window=dt.timedelta(minutes=30),
    )
    policies = ad_services.directory.password_policies()
    assert policies[0].name == "domain"
    mine = next(p for p in policies if p.name == pso.split(",")[0][3:])
    assert mine.min_length == 12 and not mine.complexity and mine.history_count == 2
    assert mine.max_age == dt.timedelta(days=400) and mine.min_age == dt.timedelta(days=2)
    assert mine.applies_to == (user.dn,)
    cacak = ad_services.password_profile
    found = {(f.setting, f.kind) for f in problems(compare(cacak, ad_services.settings.lockout, mine))}
    assert found == {
        ("min_length", "contradicts"),
        ("complexity", "weaker"),
        ("history_days", "weaker"),
        ("max_age", "weaker"),
        ("min_age", "contradicts"),
        ("lockout_threshold", "contradicts"),
    }
    # the CLI, as an administrator runs it
    for name in [n for n in __import__("os").environ if n.startswith("IAM_")]:
        monkeypatch.delenv(name)
    s = ad_services.settings.directory
    env = {
        "IAM_DEV_MODE": "true",
        "IAM_VAR_DIR": str(tmp_path / "var"),
        "IAM_DATABASE__URL": ad_services.settings.database.url,
        "IAM_PASSWORDS__PROFILE": "cacak",
        "IAM_LOCKOUT__THRESHOLD": "3",
        "IAM_LOCKOUT__WINDOW": "1800",
        "IAM_DIRECTORY__KIND": "ad",
        "IAM_DIRECTORY__URL": s.url,
        "IAM_DIRECTORY__BIND_DN": s.bind_dn,
        "IAM_DIRECTORY__BIND_PASSWORD": s.bind_password.get_secret_value(),
        "IAM_DIRECTORY__BASE_DN": s.base_dn,
        "IAM_DIRECTORY__CA_FILE": s.ca_file,
        "IAM_DIRECTORY__ALLOW_PLAIN": str(s.allow_plain).lower(),
        "IAM_DIRECTORY__START_TLS": str(s.start_tls).lower(),
        "IAM_DIRECTORY__UPN_SUFFIX": s.upn_suffix,
    }
    result = CliRunner().invoke(cli, ["policy", "check", "--json"], env=env, prog_name="iam")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["profile"] == "cacak" and data["directory"] == "ad"
    by_name = {p["name"]: p for p in data["policies"]}
    assert "domain" in by_name
    assert {f["setting"] for f in by_name[mine.name]["findings"] if f["kind"] != "note"} == {
        s for s, _ in found
    }
    text = CliRunner().invoke(cli, ["policy", "check"], env=env, prog_name="iam")
    assert "AD would lock the account before the provider does" in text.stdout


def test_admin_reset_then_forced_change_at_first_sign_in(app: Any, ad_services: Services) -> None:
    user = new_user(ad_services)
    temporary, must_change = users.reset_password(ad_services, username=user.username, actor="helpdesk")
    assert must_change  # Čačak: the temporary password is changed at first use
    client = app.test_client()
    r = login(client, user.username, temporary)
    assert r.status_code == 302 and r.headers["Location"].endswith("/password/change")
    with pytest.raises(InvalidCredentials):
        ad_services.directory.authenticate(user.username, PASSWORD)
    r = change(client, user.username, temporary, "Nova#Lozinka2026")
    assert r.status_code == 302
    assert ad_services.directory.authenticate(user.username, "Nova#Lozinka2026").id == user.id


def test_expiry_is_the_earlier_of_ad_and_profile(
    app: Any, ad_services: Services, ad_user_policy: Callable[..., str]
) -> None:
    """With AD's maximum age at 400 days, Čačak's 182 days decide (and force the change at our
    sign-in); with AD's at 30 days, AD's computed expiry decides."""
    from iam.passwords.service import effective_expiry

    profile = ad_services.password_profile
    long_lived, short_lived = new_user(ad_services), new_user(ad_services)
    ad_user_policy(long_lived.dn, precedence=3, max_age=dt.timedelta(days=400))
    ad_user_policy(short_lived.dn, precedence=4, max_age=dt.timedelta(days=30))
    d = ad_services.directory
    user, short = d.get_user(long_lived.id), d.get_user(short_lived.id)
    assert user is not None and short is not None and user.password_last_set and short.password_last_set
    assert user.password_expires_at is not None and short.password_expires_at is not None

    ours = user.password_last_set + dt.timedelta(days=182)
    assert abs(user.password_expires_at - (user.password_last_set + dt.timedelta(days=400))) < dt.timedelta(
        seconds=5
    )
    state = effective_expiry(profile, user, user.password_last_set + dt.timedelta(days=170))
    assert state == (ours, True, False)  # within Čačak's 14-day warning
    state = effective_expiry(profile, short, short.password_last_set + dt.timedelta(days=20))
    assert state == (short.password_expires_at, True, False)
    assert effective_expiry(profile, short, short.password_expires_at).expired

    # at our sign-in: warned inside the window, forced to change after our expiry
    clock.freeze(user.password_last_set + dt.timedelta(days=175))
    r = login(app.test_client(), user.username, PASSWORD)
    assert r.status_code == 200 and "Your password expires in 7 days" in r.get_data(as_text=True)
    clock.freeze(ours + dt.timedelta(hours=1))
    r = login(app.test_client(), user.username, PASSWORD)
    assert r.status_code == 302 and r.headers["Location"].endswith("/password/change")
