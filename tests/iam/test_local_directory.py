"""The built-in directory on SQLite and PostgreSQL: sign-in outcomes like AD's, passwords,
nested groups, paging."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from iam import clock, passwords
from iam.directory.base import Directory, DirectoryUser, NewUser
from iam.directory.errors import (
    AccountDisabled,
    AccountLocked,
    EntryExists,
    InvalidCredentials,
    MustChangePassword,
    NoSuchEntry,
    PasswordExpired,
    PasswordRejected,
)
from iam.directory.local import LocalDirectory
from iam.models.identity import LocalGroupMember, LocalUser
from iam.services import Services

PW = "Corr3ct-Horse-Battery"
NEW_PW = "Another-Long-Passphrase"


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small parameters: same code paths, a fraction of the time."""
    monkeypatch.setattr(
        passwords.hashing, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def directory(services: Services, fast_hashing: None) -> LocalDirectory:
    d = services.directory
    assert isinstance(d, LocalDirectory)
    return d


def make(
    d: LocalDirectory,
    username: str,
    *,
    password: str | None = PW,
    upn: str | None = None,
    enabled: bool = True,
    must_change: bool = False,
    **kw: str,
) -> DirectoryUser:
    user = d.create_user(NewUser(username=username, upn=upn, enabled=False, **kw))
    if password is not None:
        d.set_password(user.id, password, must_change=must_change)
    if enabled:
        d.enable(user.id)
    got = d.get_user(user.id)
    assert got is not None
    return got


def test_it_is_a_directory(directory: LocalDirectory) -> None:
    assert isinstance(directory, Directory)
    assert directory.kind == "local"
    directory.ping()


def test_password_is_stored_as_argon2id(services: Services) -> None:
    """Passwords are stored only as argon2id hashes (library default parameters)."""
    d = services.directory
    user = d.create_user(NewUser(username="hashme", enabled=True))
    d.set_password(user.id, PW, must_change=False)
    with services.transaction() as s:
        stored = s.scalar(select(LocalUser.password_hash).where(LocalUser.id == user.id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert PW not in stored
    assert not passwords.needs_rehash(stored)


# -- authenticate -----------------------------------------------------------------------------
def test_authenticate_by_username_and_upn(directory: LocalDirectory) -> None:
    alice = make(directory, "alice", upn="alice@example.test", email="alice@example.test")
    for login in ("alice", "alice@example.test", " alice "):
        user = directory.authenticate(login, PW)
        assert (user.id, user.username, user.upn) == (alice.id, "alice", "alice@example.test")
        assert user.email == "alice@example.test"


def test_unknown_user_and_wrong_password_look_the_same(directory: LocalDirectory) -> None:
    """Never reveal whether the account exists: same exception type and message."""
    make(directory, "alice")
    with pytest.raises(InvalidCredentials) as wrong:
        directory.authenticate("alice", "wrong-password")
    with pytest.raises(InvalidCredentials) as unknown:
        directory.authenticate("nobody", PW)
    assert type(wrong.value) is type(unknown.value) is InvalidCredentials
    assert str(wrong.value) == str(unknown.value) == "Wrong username or password."


@pytest.mark.parametrize("username", ["alice", ""])
def test_empty_password_is_refused(directory: LocalDirectory, username: str) -> None:
    make(directory, "alice")
    with pytest.raises(InvalidCredentials):
        directory.authenticate(username, "")


def test_user_without_password_cannot_sign_in(directory: LocalDirectory) -> None:
    make(directory, "nopw", password=None)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("nopw", "")
    with pytest.raises(InvalidCredentials):
        directory.authenticate("nopw", PW)


def test_disabled_account(directory: LocalDirectory) -> None:
    """AD 533: correct password on a disabled account; a wrong one still says only 'wrong'."""
    user = make(directory, "alice")
    directory.disable(user.id)
    assert directory.get_user(user.id).enabled is False  # type: ignore[union-attr]
    with pytest.raises(AccountDisabled):
        directory.authenticate("alice", PW)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", "wrong-password")
    directory.enable(user.id)
    assert directory.authenticate("alice", PW).enabled is True


def test_new_users_are_created_disabled_by_default(directory: LocalDirectory) -> None:
    make(directory, "fresh", enabled=False)
    with pytest.raises(AccountDisabled):
        directory.authenticate("fresh", PW)


def test_locked_account_and_unlock(services: Services, directory: LocalDirectory) -> None:
    user = make(directory, "alice")
    with services.transaction() as s:
        s.execute(update(LocalUser).where(LocalUser.id == user.id).values(locked=True))
    with pytest.raises(AccountLocked):
        directory.authenticate("alice", PW)
    directory.unlock(user.id)
    assert directory.authenticate("alice", PW).locked is False


def test_must_change_password(directory: LocalDirectory) -> None:
    """AD 773: the password is right but must be changed; changing clears the flag."""
    make(directory, "alice", must_change=True)
    assert directory.find_user(username="alice").must_change_password  # type: ignore[union-attr]
    with pytest.raises(MustChangePassword):
        directory.authenticate("alice", PW)
    directory.change_password("alice", PW, NEW_PW)
    user = directory.authenticate("alice", NEW_PW)
    assert user.must_change_password is False


def test_expired_password(directory: LocalDirectory) -> None:
    """AD 532: expire_password makes the next sign-in report an expired password."""
    user = make(directory, "alice")
    clock.freeze()
    directory.expire_password(user.id)
    with pytest.raises(PasswordExpired):
        directory.authenticate("alice", PW)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", "wrong-password")
    directory.change_password("alice", PW, NEW_PW)
    assert directory.authenticate("alice", NEW_PW).password_expires_at is None


# -- passwords --------------------------------------------------------------------------------
def test_change_password(directory: LocalDirectory) -> None:
    make(directory, "alice")
    clock.freeze()
    directory.change_password("alice", PW, NEW_PW)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", PW)
    user = directory.authenticate("alice", NEW_PW)
    assert user.password_last_set == clock.now()


def test_change_password_with_wrong_old_password(directory: LocalDirectory) -> None:
    make(directory, "alice")
    with pytest.raises(InvalidCredentials):
        directory.change_password("alice", "not-the-password", NEW_PW)
    with pytest.raises(InvalidCredentials):
        directory.change_password("nobody", PW, NEW_PW)
    directory.authenticate("alice", PW)


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ("short", "The password must be at least 8 characters long."),
        (PW, "The new password must differ from the current one."),
    ],
)
def test_change_password_rejected_in_plain_words(directory: LocalDirectory, new: str, message: str) -> None:
    make(directory, "alice")
    with pytest.raises(PasswordRejected) as info:
        directory.change_password("alice", PW, new)
    assert str(info.value) == message
    directory.authenticate("alice", PW)


def test_disabled_user_cannot_change_password(directory: LocalDirectory) -> None:
    user = make(directory, "alice")
    directory.disable(user.id)
    with pytest.raises(AccountDisabled):
        directory.change_password("alice", PW, NEW_PW)


def test_set_password_checks_length_and_unknown_user(directory: LocalDirectory) -> None:
    user = make(directory, "alice")
    with pytest.raises(PasswordRejected, match="at least 8 characters"):
        directory.set_password(user.id, "1234567", must_change=False)
    directory.authenticate("alice", PW)
    with pytest.raises(NoSuchEntry):
        directory.set_password("00000000-0000-0000-0000-000000000000", PW, must_change=False)


# -- groups -----------------------------------------------------------------------------------
def test_nested_groups(directory: LocalDirectory) -> None:
    """user ∈ g1 ⊂ g2 ⊂ g3: nested lookups see g2 and g3, direct ones only g1."""
    user = make(directory, "alice", password=None)
    other = make(directory, "bob", password=None)
    for g in ("g1", "g2", "g3", "unrelated"):
        directory.create_group(g)
    directory.add_member("g1", user.id)
    directory.add_member("unrelated", other.id)
    directory.add_group_to_group("g1", "g2")
    directory.add_group_to_group("g2", "g3")
    assert directory.user_groups(user.id) == ["g1", "g2", "g3"]
    assert directory.user_groups(user.id, nested=False) == ["g1"]
    assert [u.username for u in directory.group_members("g3")] == ["alice"]
    assert directory.group_members("g3", nested=False) == []
    assert [u.username for u in directory.group_members("g1", nested=False)] == ["alice"]
    assert directory.user_groups(other.id) == ["unrelated"]


def test_group_cycle_terminates(directory: LocalDirectory) -> None:
    user = make(directory, "alice", password=None)
    for g in ("a", "b"):
        directory.create_group(g)
    directory.add_member("a", user.id)
    directory.add_group_to_group("a", "b")
    directory.add_group_to_group("b", "a")
    assert directory.user_groups(user.id) == ["a", "b"]
    assert [u.username for u in directory.group_members("b")] == ["alice"]


def test_group_members_lists_each_user_once(directory: LocalDirectory) -> None:
    alice = make(directory, "alice", password=None)
    bob = make(directory, "bob", password=None)
    for g in ("staff", "finance"):
        directory.create_group(g)
    directory.add_group_to_group("finance", "staff")
    directory.add_member("staff", alice.id)
    directory.add_member("finance", alice.id)
    directory.add_member("finance", bob.id)
    assert [u.username for u in directory.group_members("staff")] == ["alice", "bob"]


def test_add_and_remove_member_are_idempotent(services: Services, directory: LocalDirectory) -> None:
    user = make(directory, "alice", password=None)
    group = directory.create_group("staff")
    directory.add_member("staff", user.id)
    directory.add_member("staff", user.id)
    with services.transaction() as s:
        rows = s.scalar(
            select(func.count()).where(
                LocalGroupMember.group_id == group.id, LocalGroupMember.user_id == user.id
            )
        )
    assert rows == 1
    assert directory.user_groups(user.id) == ["staff"]
    directory.remove_member("staff", user.id)
    directory.remove_member("staff", user.id)
    assert directory.user_groups(user.id) == []
    assert directory.group_members("staff") == []


def test_unknown_group_or_user(directory: LocalDirectory) -> None:
    user = make(directory, "alice", password=None)
    directory.create_group("staff")
    with pytest.raises(NoSuchEntry, match="nope"):
        directory.add_member("nope", user.id)
    with pytest.raises(NoSuchEntry):
        directory.add_member("staff", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(NoSuchEntry):
        directory.group_members("nope")
    with pytest.raises(NoSuchEntry):
        directory.user_groups("00000000-0000-0000-0000-000000000000")
    assert directory.get_group("nope") is None
    assert directory.get_group("staff").name == "staff"  # type: ignore[union-attr]


def test_deleting_a_user_removes_memberships(directory: LocalDirectory) -> None:
    user = make(directory, "alice", password=None)
    directory.create_group("staff")
    directory.add_member("staff", user.id)
    directory.delete_user(user.id)
    assert directory.get_user(user.id) is None
    assert directory.group_members("staff") == []


# -- entries ----------------------------------------------------------------------------------
def test_duplicates_are_refused(directory: LocalDirectory) -> None:
    make(directory, "alice", password=None, upn="alice@example.test")
    with pytest.raises(EntryExists, match="alice"):
        directory.create_user(NewUser(username="alice"))
    with pytest.raises(EntryExists):
        directory.create_user(NewUser(username="alice2", upn="alice@example.test"))
    directory.create_group("staff")
    with pytest.raises(EntryExists, match="staff"):
        directory.create_group("staff")
    assert [u.username for u in directory.search_users()] == ["alice"]


def test_find_user_by_exactly_one_key(directory: LocalDirectory) -> None:
    alice = make(directory, "alice", password=None, upn="alice@example.test", employee_number="E-17")
    assert directory.find_user(username="alice").id == alice.id  # type: ignore[union-attr]
    assert directory.find_user(upn="alice@example.test").id == alice.id  # type: ignore[union-attr]
    assert directory.find_user(employee_number="E-17").id == alice.id  # type: ignore[union-attr]
    assert directory.find_user(username="nobody") is None
    with pytest.raises(ValueError, match="exactly one"):
        directory.find_user()
    with pytest.raises(ValueError, match="exactly one"):
        directory.find_user(username="alice", upn="alice@example.test")


@pytest.mark.parametrize("page_size", [1, 3, 7, 500])
def test_search_users_pages_through_everyone_once(directory: LocalDirectory, page_size: int) -> None:
    names = ["user-a", "user-b", "User-C", "user-d", "user-e", "user-f", "zed"]
    for n in names:
        directory.create_user(NewUser(username=n, display_name=f"Person {n}"))
    found = [u.username for u in directory.search_users(page_size=page_size)]
    assert sorted(found) == sorted(names)
    assert len(found) == len(set(found))


def test_search_users_filters_by_name_and_mail(directory: LocalDirectory) -> None:
    directory.create_user(NewUser(username="ana", display_name="Ana Popescu"))
    directory.create_user(NewUser(username="bob", email="bob@finance.example.test"))
    directory.create_user(NewUser(username="carol"))
    assert [u.username for u in directory.search_users(query="POPESCU")] == ["ana"]
    assert [u.username for u in directory.search_users(query="finance")] == ["bob"]
    assert [u.username for u in directory.search_users(query="o", page_size=1)] == [
        "ana",
        "bob",
        "carol",
    ]


def test_search_users_treats_wildcards_literally(directory: LocalDirectory) -> None:
    directory.create_user(NewUser(username="ann_lee"))
    directory.create_user(NewUser(username="annxlee"))
    assert [u.username for u in directory.search_users(query="n_l")] == ["ann_lee"]


def test_move_and_rename_keep_id_username_password_and_groups(directory: LocalDirectory) -> None:
    """Issue 10 item 12: the built-in directory places accounts in OUs like AD does."""
    user = make(directory, "jelena", given_name="Jelena", family_name="Petrović", ou="OU=Finance,DC=x")
    assert user.dn == "uid=jelena,OU=Finance,DC=x"
    directory.create_group("staff")
    directory.add_member("staff", user.id)
    moved = directory.move_user(user.id, "OU=IT,DC=x")
    assert (moved.id, moved.username, moved.dn) == (user.id, "jelena", "uid=jelena,OU=IT,DC=x")
    renamed = directory.rename_user(user.id, given_name="Jelena", family_name="Marković")
    assert (renamed.family_name, renamed.display_name, renamed.dn) == (
        "Marković",
        "Jelena Marković",
        "uid=jelena,OU=IT,DC=x",
    )
    assert directory.authenticate("jelena", PW).id == user.id
    assert directory.user_groups(user.id) == ["staff"]
    with pytest.raises(NoSuchEntry):
        directory.move_user("no-such-id", "OU=IT,DC=x")


def test_create_user_with_password_and_groups(directory: LocalDirectory) -> None:
    """Issue 18: NewUser may carry the initial password and groups (one call for a joiner)."""
    directory.create_group("joiners-x")
    user = directory.create_user(
        NewUser(username="nova", password=PW, must_change=True, enabled=True, groups=("joiners-x",))
    )
    assert user.enabled and user.must_change_password
    assert directory.user_groups(user.id, nested=False) == ["joiners-x"]
    with pytest.raises(MustChangePassword):
        directory.authenticate("nova", PW)
    ready = directory.create_user(NewUser(username="nova2", password=PW, must_change=False, enabled=True))
    assert directory.authenticate("nova2", PW).id == ready.id


def test_add_members_many_at_once_keeps_existing_and_reports_the_gone(directory: LocalDirectory) -> None:
    group = directory.create_group("batch")
    users = [directory.create_user(NewUser(username=f"batch{i}")) for i in range(4)]
    directory.add_member(group.name, users[0].id)  # already a member
    directory.delete_user(users[3].id)  # no longer exists
    assert directory.add_members(group.name, users) == [users[3].id]
    assert sorted(u.id for u in directory.group_members("batch", nested=False)) == sorted(
        u.id for u in users[:3]
    )
    with pytest.raises(NoSuchEntry):
        directory.add_members("no-such-group", users[:1])
