"""ActiveDirectory against a real Samba AD DC (see tests/samba.py and deploy/samba-up.sh)."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_REPLACE, Connection
from ldap3.protocol.microsoft import extended_dn_control
from pydantic import SecretStr

from iam.config import DirectorySettings
from iam.directory import (
    AccountDisabled,
    AccountLocked,
    Directory,
    DirectoryUnavailable,
    DirectoryUser,
    EntryExists,
    InvalidCredentials,
    MustChangePassword,
    NewUser,
    NoSuchEntry,
    PasswordExpired,
    PasswordRejected,
)
from iam.directory.ad import ActiveDirectory
from tests.samba import SambaDC

pytestmark = [pytest.mark.samba, pytest.mark.usefixtures("samba_turn")]

PASSWORD = "Start-Passw0rd-1"
NEW_PASSWORD = "Second-Passw0rd-2"


def name(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"  # sAMAccountName: at most 20 characters


def make_user(d: ActiveDirectory, password: str | None = PASSWORD, **fields: str) -> DirectoryUser:
    """An enabled user with a password (created disabled, password set, then enabled)."""
    username = fields.pop("username", None) or name()
    user = d.create_user(NewUser(username=username, **fields))  # type: ignore[arg-type]
    assert not user.enabled
    if password is not None:
        d.set_password(user.id, password, must_change=False)
        d.enable(user.id)
    found = d.get_user(user.id)
    assert found is not None
    return found


def test_is_a_directory(ad_directory: ActiveDirectory) -> None:
    assert isinstance(ad_directory, Directory)
    assert ad_directory.kind == "ad"
    ad_directory.ping()


def test_authenticate_by_username_and_upn(ad_directory: ActiveDirectory, samba_dc: SambaDC) -> None:
    d = ad_directory
    user = make_user(
        d,
        given_name="Ada",
        family_name="Lovelace",
        display_name="Ada Lovelace",
        email="ada@example.test",
        employee_number="E-1815",
        phone="+44 20 7946 0000",
    )
    assert user.upn == f"{user.username}@example.test"
    assert user.dn.endswith(d.users_ou) and user.dn.startswith("CN=Ada Lovelace,")

    by_name = d.authenticate(user.username, PASSWORD)
    by_upn = d.authenticate(user.upn, PASSWORD)
    assert by_name.id == by_upn.id == user.id
    assert by_name.username == user.username
    assert (by_name.given_name, by_name.family_name, by_name.display_name) == (
        "Ada",
        "Lovelace",
        "Ada Lovelace",
    )
    assert (by_name.email, by_name.employee_number, by_name.phone) == (
        "ada@example.test",
        "E-1815",
        "+44 20 7946 0000",
    )
    assert by_name.enabled and not by_name.locked and not by_name.must_change_password

    # times: just set, default maxPwdAge 42 days
    now = dt.datetime.now(dt.UTC)
    assert by_name.password_last_set is not None and by_name.password_expires_at is not None
    assert abs(by_name.password_last_set - now) < dt.timedelta(minutes=5)
    assert by_name.password_expires_at - by_name.password_last_set == dt.timedelta(days=42)

    # the id is the server's own text form of objectGUID (extended DN <GUID=...>)
    def guid_of(conn: Connection) -> str:
        conn.search(user.dn, "(objectClass=*)", BASE, controls=[extended_dn_control()])
        return str((conn.response or [{}])[0]["dn"]).split(">")[0].removeprefix("<GUID=")

    assert user.id == samba_dc.admin(guid_of) == str(uuid.UUID(user.id))


def test_implicit_upn(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d, upn=f"{name('alias')}@corp.example")
    assert d.authenticate(user.upn or "", PASSWORD).id == user.id
    assert d.authenticate(f"{user.username}@EXAMPLE.test", PASSWORD).id == user.id
    with pytest.raises(InvalidCredentials):
        d.authenticate(f"{user.username}@other.test", PASSWORD)


def test_wrong_password_and_unknown_user_look_the_same(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d)
    attempts = [
        (user.username, "Wrong-Passw0rd-9"),
        (user.upn or "", "Wrong-Passw0rd-9"),
        (name("nobody"), "Wrong-Passw0rd-9"),
        ("nobody@example.test", "Wrong-Passw0rd-9"),
        (user.username, ""),  # an empty simple bind would be an anonymous bind
        ("", PASSWORD),
    ]
    errors = []
    for username, password in attempts:
        with pytest.raises(InvalidCredentials) as caught:
            d.authenticate(username, password)
        errors.append(str(caught.value))
        assert "Passw0rd" not in str(caught.value)
    assert len(set(errors)) == 1


def test_disabled_account(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d)
    d.disable(user.id)
    d.disable(user.id)  # idempotent
    assert d.get_user(user.id).enabled is False  # type: ignore[union-attr]
    with pytest.raises(AccountDisabled):
        d.authenticate(user.username, PASSWORD)
    d.enable(user.id)
    assert d.get_user(user.id).enabled is True  # type: ignore[union-attr]
    assert d.authenticate(user.username, PASSWORD).enabled


def test_enable_and_disable_keep_other_account_flags(
    ad_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    d = ad_directory
    user = make_user(d)
    dont_expire = 0x10000
    samba_dc.modify(user.dn, {"userAccountControl": [("MODIFY_REPLACE", [str(0x200 | dont_expire)])]})
    d.disable(user.id)
    assert int(samba_dc.read(user.dn, ["userAccountControl"])["userAccountControl"][0]) == (
        0x200 | dont_expire | 0x2
    )
    d.enable(user.id)
    assert int(samba_dc.read(user.dn, ["userAccountControl"])["userAccountControl"][0]) == (
        0x200 | dont_expire
    )


def test_must_change_password_then_change_without_binding(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d)
    d.set_password(user.id, NEW_PASSWORD, must_change=True)
    assert d.get_user(user.id).must_change_password  # type: ignore[union-attr]
    with pytest.raises(MustChangePassword):
        d.authenticate(user.username, NEW_PASSWORD)
    # the user cannot bind (773), yet may change the password knowing the old one
    with pytest.raises(InvalidCredentials):
        d.change_password(user.username, "Wrong-Passw0rd-9", "Third-Passw0rd-3")
    with pytest.raises(PasswordRejected):
        d.change_password(user.username, NEW_PASSWORD, "weak")
    d.change_password(user.username, NEW_PASSWORD, "Third-Passw0rd-3")
    signed_in = d.authenticate(user.username, "Third-Passw0rd-3")
    assert not signed_in.must_change_password


def test_password_expired(
    ad_directory: ActiveDirectory,
    ad_user_policy: Callable[..., str],
    samba_clock: Callable[[str], None],
) -> None:
    d = ad_directory
    user = make_user(d, password=None)
    # AD treats a maximum age below one day as "never"; 1 day + 100 ns is the shortest that counts
    ad_user_policy(user.dn, max_age=-(864_000_000_000 + 1))
    d.set_password(user.id, PASSWORD, must_change=False)
    d.enable(user.id)
    user = d.get_user(user.id)  # type: ignore[assignment]
    assert user.password_expires_at is not None
    assert user.password_expires_at - user.password_last_set < dt.timedelta(days=1, seconds=1)  # type: ignore[operator]
    samba_clock("+2d")
    with pytest.raises(PasswordExpired):
        d.authenticate(user.username, PASSWORD)
    d.change_password(user.upn or "", PASSWORD, NEW_PASSWORD)  # the 532 path
    assert d.authenticate(user.username, NEW_PASSWORD).id == user.id


def test_lockout_and_unlock(ad_directory: ActiveDirectory, ad_user_policy: Callable[..., str]) -> None:
    d = ad_directory
    user = make_user(d)
    bystander = make_user(d)
    ad_user_policy(user.dn, lockout_threshold=3)
    for i in range(3):
        with pytest.raises(InvalidCredentials):
            d.authenticate(user.username, f"Bad-Passw0rd-{i}")
    with pytest.raises(AccountLocked):
        d.authenticate(user.username, PASSWORD)
    assert d.get_user(user.id).locked  # type: ignore[union-attr]
    for i in range(4):  # the policy is the user's, not the domain's
        with pytest.raises(InvalidCredentials):
            d.authenticate(bystander.username, f"Bad-Passw0rd-{i}")
    assert d.authenticate(bystander.username, PASSWORD).id == bystander.id
    d.unlock(user.id)
    assert not d.get_user(user.id).locked  # type: ignore[union-attr]
    assert d.authenticate(user.username, PASSWORD).id == user.id


def test_change_password(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d, display_name="Grace Hopper")
    refusals = {
        "alllowercaseletters": "complex",
        "Ab1-": "at least 7 characters",
    }
    for weak, reason in refusals.items():
        with pytest.raises(PasswordRejected) as caught:
            d.change_password(user.username, PASSWORD, weak)
        assert reason in str(caught.value)
        assert weak not in str(caught.value) and PASSWORD not in str(caught.value)
    with pytest.raises(InvalidCredentials):
        d.change_password(user.username, "Wrong-Passw0rd-9", NEW_PASSWORD)
    with pytest.raises(InvalidCredentials):
        d.change_password(name("nobody"), PASSWORD, NEW_PASSWORD)

    d.change_password(user.username, PASSWORD, NEW_PASSWORD)
    assert d.authenticate(user.username, NEW_PASSWORD).id == user.id
    # NB: the previous password keeps working for simple binds for "old password allowed
    # period" (Samba default 60 minutes; Windows: OldPasswordAllowedPeriod), so it is not
    # asserted to fail here.

    with pytest.raises(PasswordRejected) as caught:  # history (24 remembered by default)
        d.change_password(user.username, NEW_PASSWORD, PASSWORD)
    assert "used before" in str(caught.value)


def test_set_password_refused_by_policy(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d)
    with pytest.raises(PasswordRejected) as caught:
        d.set_password(user.id, "short", must_change=False)
    assert "too short" in str(caught.value)
    with pytest.raises(NoSuchEntry):
        d.set_password(str(uuid.uuid4()), NEW_PASSWORD, must_change=False)
    d.set_password(user.id, NEW_PASSWORD, must_change=False)
    assert d.authenticate(user.username, NEW_PASSWORD).id == user.id


def test_nested_groups(ad_directory: ActiveDirectory, samba_dc: SambaDC) -> None:
    d = ad_directory
    user, other = make_user(d, password=None), make_user(d, password=None)
    g1, g2 = d.create_group(name("g1-")), d.create_group(name("g2-"))
    assert g1.dn.endswith(d.groups_ou) and uuid.UUID(g1.id)
    d.add_member(g1.name, user.id)
    d.add_member(g2.name, other.id)
    samba_dc.modify(g2.dn, {"member": [(MODIFY_ADD, [g1.dn])]})  # G1 is a member of G2

    assert d.user_groups(user.id, nested=False) == [g1.name]
    nested = d.user_groups(user.id)
    assert g1.name in nested and g2.name in nested
    assert nested == sorted(nested, key=str.casefold)

    assert [u.id for u in d.group_members(g2.name)] == sorted(
        [user.id, other.id], key=lambda i: {user.id: user.username, other.id: other.username}[i]
    )
    assert [u.id for u in d.group_members(g2.name, nested=False)] == [other.id]
    assert [u.id for u in d.group_members(g1.name, nested=False)] == [user.id]
    with pytest.raises(NoSuchEntry):
        d.group_members(name("nogroup"))
    with pytest.raises(NoSuchEntry):
        d.user_groups(str(uuid.uuid4()))


def test_membership_is_idempotent(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d, password=None)
    group = d.create_group(name("g-"))
    assert d.get_group(group.name) == group
    assert d.get_group(name("nogroup")) is None
    d.add_member(group.name, user.id)
    d.add_member(group.name, user.id)
    assert d.user_groups(user.id, nested=False) == [group.name]
    d.remove_member(group.name, user.id)
    d.remove_member(group.name, user.id)
    assert d.user_groups(user.id, nested=False) == []
    with pytest.raises(NoSuchEntry):
        d.add_member(name("nogroup"), user.id)
    with pytest.raises(NoSuchEntry):
        d.add_member(group.name, str(uuid.uuid4()))
    with pytest.raises(EntryExists):
        d.create_group(group.name)


def test_create_user_duplicates_and_names(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    first = make_user(d, display_name="Sam (Doe), Jr. <QA*>")
    assert first.dn.startswith("CN=Sam (Doe)\\, Jr. \\<QA*\\>,")
    assert first.display_name == "Sam (Doe), Jr. <QA*>"
    # a DN full of special characters works for binds and in member filters
    assert d.authenticate(first.username, PASSWORD).dn == first.dn
    group = d.create_group(name("g-"))
    d.add_member(group.name, first.id)
    assert d.user_groups(first.id, nested=False) == [group.name]
    assert d.user_groups(first.id) == [group.name]
    assert [u.id for u in d.group_members(group.name)] == [first.id]
    with pytest.raises(EntryExists):
        d.create_user(NewUser(username=first.username, display_name="Someone Else"))
    with pytest.raises(EntryExists):
        d.create_user(NewUser(username=name(), upn=first.upn))
    # same display name (CN) in the same OU, different user name: the CN is qualified
    second = d.create_user(NewUser(username=name(), display_name="Sam (Doe), Jr. <QA*>"))
    assert second.id != first.id and second.username in second.dn


def test_create_enabled_user_has_an_unknown_password(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = d.create_user(NewUser(username=name(), enabled=True, ou=d.users_ou))
    assert user.enabled and user.must_change_password
    with pytest.raises(InvalidCredentials):
        d.authenticate(user.username, PASSWORD)
    d.set_password(user.id, PASSWORD, must_change=False)
    assert d.authenticate(user.username, PASSWORD).id == user.id


def _count_requests(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """LDAP requests this process sends from now on, by kind (add, modify, search, …)."""
    from ldap3.strategy.base import BaseStrategy

    counts: dict[str, int] = {}
    send = BaseStrategy.send

    def counting(self: BaseStrategy, message_type: str, request: object, controls: object = None) -> object:
        kind = str(message_type).removesuffix("Request")
        counts[kind] = counts.get(kind, 0) + 1
        return send(self, message_type, request, controls)

    monkeypatch.setattr(BaseStrategy, "send", counting)
    return counts


def test_create_user_with_password_and_groups_in_one_add(
    ad_directory: ActiveDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a joiner's account — password, must-change, enabled, memberships — is written
    with one add and one modify per group; the group's DN is looked up once per directory."""
    d = ad_directory
    groups = (d.create_group(name("g")).name, d.create_group(name("g")).name)
    d.create_user(NewUser(username=name(), password=PASSWORD, enabled=True, groups=groups))  # DNs known
    counts = _count_requests(monkeypatch)
    d.close()  # ldap3 binds the strategy's send when a connection opens: count on a new one
    user = d.create_user(
        NewUser(
            username=name(),
            given_name="Ana",
            password=PASSWORD,
            must_change=True,
            enabled=True,
            groups=groups,
        )
    )
    # bind of the new connection, clash check, the add, one modify per group, read-back
    assert counts == {"bind": 1, "search": 2, "add": 1, "modify": 2}, counts
    assert user.enabled and user.must_change_password
    assert sorted(d.user_groups(user.id, nested=False)) == sorted(groups)
    with pytest.raises(MustChangePassword):  # the password is the one given: AD says "change it"
        d.authenticate(user.username, PASSWORD)
    ready = d.create_user(NewUser(username=name(), password=PASSWORD, must_change=False, enabled=True))
    assert d.authenticate(ready.username, PASSWORD).id == ready.id
    waiting = d.create_user(NewUser(username=name(), password=PASSWORD, enabled=False))
    assert not waiting.enabled
    with pytest.raises(AccountDisabled):
        d.authenticate(waiting.username, PASSWORD)


def test_create_user_password_refused_by_policy_creates_nothing(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    username = name()
    with pytest.raises(PasswordRejected):
        d.create_user(NewUser(username=username, password="short", enabled=True))
    assert d.find_user(username=username) is None


def test_create_user_group_deleted_after_its_dn_was_remembered(
    ad_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    d = ad_directory
    group = d.create_group(name("g"))
    d.create_user(NewUser(username=name(), password=PASSWORD, groups=(group.name,)))
    samba_dc.delete_tree(group.dn)
    again = d.create_group(group.name, ou=d.groups_ou)  # same name, new object
    user = d.create_user(NewUser(username=name(), password=PASSWORD, groups=(group.name,)))
    assert d.user_groups(user.id, nested=False) == [again.name]
    samba_dc.delete_tree(again.dn)
    with pytest.raises(NoSuchEntry):
        d.create_user(NewUser(username=name(), password=PASSWORD, groups=(group.name,)))


def test_find_user_and_filter_injection(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d, password=None, employee_number=f"E{secrets.randbelow(10**6)}")
    assert d.find_user(username=user.username) == user
    assert d.find_user(upn=user.upn) == user
    assert d.find_user(employee_number=user.employee_number) == user
    assert d.find_user(username=name("nobody")) is None
    for hostile in ("*", user.username[:3] + "*", "*)(objectClass=*", "x)(|(sAMAccountName=*"):
        assert d.find_user(username=hostile) is None
        assert d.find_user(upn=hostile) is None
        assert d.find_user(employee_number=hostile) is None
        assert d.get_user(hostile) is None
    with pytest.raises(ValueError, match="exactly one"):
        d.find_user()
    with pytest.raises(ValueError, match="exactly one"):
        d.find_user(username=user.username, upn=user.upn)


def test_get_user_round_trip(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d, display_name="Round Trip")
    assert d.get_user(user.id) == user
    assert d.get_user(user.id.upper()) == user
    assert d.get_user(str(uuid.uuid4())) is None
    assert d.get_user("not-a-uuid") is None
    d.delete_user(user.id)
    assert d.get_user(user.id) is None
    with pytest.raises(NoSuchEntry):
        d.delete_user(user.id)


def test_search_users_pages(ad_directory: ActiveDirectory, monkeypatch: pytest.MonkeyPatch) -> None:
    d = ad_directory
    tag = secrets.token_hex(3)
    users = [make_user(d, password=None, display_name=f"Pager {tag} {i}") for i in range(5)]
    pages = []
    search = Connection.search

    def counting(self: Connection, *args: object, **kwargs: object) -> object:
        pages.append(kwargs.get("paged_size"))
        return search(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "search", counting)
    found = list(d.search_users(query=tag, page_size=2))
    assert sorted(u.id for u in found) == sorted(u.id for u in users)
    assert pages == [2, 2, 2]  # 5 users in pages of 2
    monkeypatch.undo()

    everyone = {u.username for u in d.search_users(page_size=3)}
    assert {"Administrator"} | {u.username for u in users} <= everyone
    assert list(d.search_users(query="*")) == []
    # an abandoned iteration gives its connection back (closed), later calls still work
    iterator = d.search_users(page_size=1)
    next(iterator)
    iterator.close()  # type: ignore[attr-defined]
    d.ping()


def test_domain_password_settings_helper(samba_dc: SambaDC, ad_password_policy: Callable[..., None]) -> None:
    before = samba_dc.read("DC=example,DC=test", ["lockoutDuration"])["lockoutDuration"]
    ad_password_policy(lockoutDuration=dt.timedelta(minutes=31))
    now = samba_dc.read("DC=example,DC=test", ["lockoutDuration"])["lockoutDuration"]
    assert now == [str(-31 * 60 * 10_000_000)] != before


def test_directory_unavailable_fast(samba_ad: DirectorySettings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = ActiveDirectory(
        samba_ad.model_copy(update={"url": f"ldaps://127.0.0.1:{port}", "connect_timeout": 1.0})
    )
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        closed.ping()
    with pytest.raises(DirectoryUnavailable):
        closed.authenticate("someone", PASSWORD)
    assert time.monotonic() - started < 3

    # a server that accepts the connection but never answers: the receive timeout applies
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = ActiveDirectory(
            samba_ad.model_copy(
                update={
                    "url": f"ldaps://127.0.0.1:{silent.getsockname()[1]}",
                    "connect_timeout": 1.0,
                    "receive_timeout": 0.5,
                }
            )
        )
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            mute.ping()
        assert time.monotonic() - started < 3


def test_tls_certificate_is_verified(samba_ad: DirectorySettings) -> None:
    # 127.1 reaches the DC but is not a name in its certificate; no CA file = system CAs
    for update in ({"url": "ldaps://127.1:636"}, {"url": "ldap://127.1:389"}, {"ca_file": ""}):
        directory = ActiveDirectory(samba_ad.model_copy(update=update))
        with pytest.raises(DirectoryUnavailable, match="certificate"):
            directory.ping()
    ActiveDirectory(samba_ad.model_copy(update={"url": "ldaps://localhost"})).ping()


def test_service_account_refused(samba_ad: DirectorySettings) -> None:
    wrong = ActiveDirectory(samba_ad.model_copy(update={"bind_password": SecretStr("Nope-Passw0rd")}))
    with pytest.raises(DirectoryUnavailable) as caught:
        wrong.ping()
    assert "Nope" not in str(caught.value)


def test_start_tls_and_plain(samba_ad: DirectorySettings, ad_directory: ActiveDirectory) -> None:
    user = make_user(ad_directory)
    start_tls = ActiveDirectory(samba_ad.model_copy(update={"url": "ldap://127.0.0.1:389"}))
    assert start_tls.authenticate(user.username, PASSWORD).id == user.id
    # plain LDAP: Samba refuses simple binds without TLS (strongerAuthRequired)
    plain = ActiveDirectory(
        samba_ad.model_copy(update={"url": "ldap://127.0.0.1:389", "start_tls": False, "allow_plain": True})
    )
    with pytest.raises(DirectoryUnavailable):
        plain.ping()


def test_pool_reconnects_and_is_thread_safe(ad_directory: ActiveDirectory) -> None:
    d = ad_directory
    user = make_user(d)
    held = [d._pool.get()[0] for _ in range(d.settings.pool_size)]
    for conn in held:
        d._pool.put(conn)
    assert len(d._pool._idle) == d.settings.pool_size == 2
    for conn in held:  # the "server" drops every pooled connection
        conn.socket.shutdown(socket.SHUT_RDWR)
    assert d.get_user(user.id) == user
    assert len(d._pool._idle) == 1  # the dead ones are gone, the new one is kept

    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            if i % 5 == 0:
                d.authenticate(user.username, PASSWORD)
            else:
                assert d.get_user(user.id) == user
        except BaseException as exc:
            with lock:
                errors.append(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(40)))
    assert errors == []
    assert len(d._pool._idle) <= d.settings.pool_size


def test_sign_ins_reuse_one_bind_connection(
    ad_directory: ActiveDirectory, ad_user_policy: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a password check is a bind on a pooled connection kept for binds, not a new
    LDAPS connection per sign-in; refusals are mapped as before, the connection keeps no
    password, and one the DC dropped is replaced once."""
    d = ad_directory
    alice, bob = make_user(d), make_user(d)
    opened: list[Connection] = []
    real_open = d._open_for_binds

    def counting_open() -> Connection:
        opened.append(real_open())
        return opened[-1]

    monkeypatch.setattr(d._binds, "_open", counting_open)
    assert d.authenticate(alice.username, PASSWORD).id == alice.id
    with pytest.raises(InvalidCredentials):
        d.authenticate(bob.username, "Wrong-Passw0rd-9")
    assert d.authenticate(bob.username, PASSWORD).id == bob.id
    d.disable(alice.id)
    with pytest.raises(AccountDisabled):
        d.authenticate(alice.username, PASSWORD)
    assert len(opened) == 1 and d._binds._idle == opened
    assert opened[0].password is None  # no user's password left on the pooled connection
    assert d._pool._idle and opened[0] not in d._pool._idle  # never used for searches or writes

    opened[0].socket.shutdown(socket.SHUT_RDWR)  # the DC drops the idle connection
    assert d.authenticate(bob.username, PASSWORD).id == bob.id
    assert len(opened) == 2 and d._binds._idle == [opened[1]]

    # AD still counts every bad password of a pooled bind: the lockout threshold locks it
    ad_user_policy(bob.dn, lockout_threshold=3)
    for _ in range(3):
        with pytest.raises(InvalidCredentials):
            d.authenticate(bob.username, "Wrong-Passw0rd-9")
    with pytest.raises(AccountLocked):
        d.authenticate(bob.username, PASSWORD)


def _ou(samba_dc: SambaDC, parent: str, label: str) -> str:
    dn = f"OU={label},{parent}"

    def add(conn: Connection) -> None:
        assert conn.add(dn, ["top", "organizationalUnit"]), conn.result  # type: ignore[no-untyped-call]

    samba_dc.admin(add)
    return dn


def _dn_of_guid(samba_dc: SambaDC, user_id: str) -> str:
    """The entry's DN as the DC itself reports it (read over the admin connection, by GUID)."""

    def read(conn: Connection) -> str:
        assert conn.search(f"<GUID={user_id}>", "(objectClass=*)", BASE, attributes=["distinguishedName"])
        return str(conn.entries[0].distinguishedName.value)

    return samba_dc.admin(read)


def test_move_user_to_another_ou_keeps_everything_else(
    ad_directory: ActiveDirectory, samba_dc: SambaDC, ad_ou: str
) -> None:
    """Issue 10 item 12: a mover's account is moved (LDAP modify DN); the DC reports the new DN,
    the account keeps its id, name, password and groups; moving again changes nothing."""
    d = ad_directory
    finance, it = _ou(samba_dc, ad_ou, "Finance"), _ou(samba_dc, ad_ou, "IT")
    user = make_user(d, display_name="Ana Kovač, Jr.", given_name="Ana", family_name="Kovač", ou=finance)
    group = d.create_group(name("g-"))
    d.add_member(group.name, user.id)
    assert user.dn.lower().endswith(finance.lower())

    moved = d.move_user(user.id, it)
    assert moved.id == user.id and moved.username == user.username
    assert moved.dn == f"CN=Ana Kovač\\, Jr.,{it}"
    assert _dn_of_guid(samba_dc, user.id).lower() == moved.dn.lower()
    assert d.authenticate(user.username, PASSWORD).dn == moved.dn
    assert d.user_groups(user.id, nested=False) == [group.name]
    assert d.move_user(user.id, it.upper()).dn == moved.dn  # already there: nothing to do

    # the same name is taken in the target OU: the CN is qualified with the username
    other = make_user(d, display_name="Ana Kovač, Jr.", ou=finance)
    clash = d.move_user(other.id, it)
    assert clash.dn == f"CN=Ana Kovač\\, Jr. ({other.username}),{it}"
    with pytest.raises(NoSuchEntry):
        d.move_user(str(uuid.uuid4()), it)
    with pytest.raises(NoSuchEntry):
        d.move_user(user.id, f"OU=nowhere,{ad_ou}")


def test_rename_user_changes_names_and_cn_not_the_username(
    ad_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    d = ad_directory
    user = make_user(d, display_name="Jelena Petrović", given_name="Jelena", family_name="Petrović")
    renamed = d.rename_user(user.id, given_name="Jelena", family_name="Marković")
    assert renamed.username == user.username and renamed.id == user.id
    assert (renamed.given_name, renamed.family_name, renamed.display_name) == (
        "Jelena",
        "Marković",
        "Jelena Marković",
    )
    assert renamed.dn.startswith("CN=Jelena Marković,")
    assert _dn_of_guid(samba_dc, user.id).lower() == renamed.dn.lower()
    assert d.rename_user(user.id, given_name="Jelena", family_name="Marković").dn == renamed.dn


class _Forwarder:
    """A TCP port in front of the DC that can be switched off and on (a directory outage
    without stopping the shared DC): off closes the port and every connection through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def on(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def off(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # switched off
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_first_operation_after_an_outage_reconnects(samba_ad: DirectorySettings, ad_ou: str) -> None:
    """Issue 17 (drills): sign-ins failed for seconds after AD came back (ldap3 remembered the
    address as unavailable). The first operation after the outage must use the directory."""
    forwarder = _Forwarder(("127.0.0.1", 636))
    forwarder.on()
    d = ActiveDirectory(
        samba_ad.model_copy(
            update={"url": f"ldaps://127.0.0.1:{forwarder.port}", "users_ou": ad_ou, "groups_ou": ad_ou}
        )
    )
    try:
        user = make_user(d)
        assert d.get_user(user.id) == user  # a pooled connection through the forwarder
        forwarder.off()  # the directory goes away, with the pooled connections
        for _ in range(3):
            with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
                d.get_user(user.id)
            with pytest.raises(DirectoryUnavailable):
                d.authenticate(user.username, PASSWORD)
        forwarder.on()  # the directory is back: no waiting, the next calls work
        assert d.get_user(user.id) == user
        assert d.authenticate(user.username, PASSWORD).id == user.id
    finally:
        d.close()
        forwarder.off()


def test_a_upn_held_by_another_account_refuses_the_add_as_taken(
    ad_directory: ActiveDirectory, samba_dc: SambaDC
) -> None:
    """Joiners no longer search for a clash before the add (issue 18): the DC's own uniqueness
    must catch a UPN set by hand on another account — as EntryExists, so the joiner takes the
    next name (tests/provisioning/test_joiner_batch.py)."""
    first = ad_directory.create_user(NewUser(username=f"upa{secrets.token_hex(3)}", given_name="A"))
    wanted = f"upb{secrets.token_hex(3)}"
    suffix = first.upn.split("@", 1)[1]

    def take(conn: Connection) -> None:
        assert conn.modify(first.dn, {"userPrincipalName": [(MODIFY_REPLACE, [f"{wanted}@{suffix}"])]}), (
            conn.result
        )

    samba_dc.admin(take)
    with pytest.raises(EntryExists):
        ad_directory.create_user(NewUser(username=wanted, given_name="B", name_checked=True))
    assert ad_directory.find_user(username=wanted) is None
