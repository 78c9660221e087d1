"""The built-in directory: users and groups in our own database, passwords as argon2id hashes.

It serves the embedded default (``make run`` with no Active Directory) and small sites. It
behaves like AD where the sign-in flow can tell: disabled, locked, expired and must-change
accounts raise the same exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from iam import clock
from iam.db import readonly, transaction
from iam.directory.base import (
    DirectoryGroup,
    DirectoryUser,
    GroupNode,
    MembershipGraph,
    NewUser,
    PasswordPolicy,
    lookup_key,
)
from iam.directory.errors import (
    AccountDisabled,
    AccountLocked,
    DirectoryUnavailable,
    EntryExists,
    InvalidCredentials,
    MustChangePassword,
    NoSuchEntry,
    PasswordExpired,
    PasswordRejected,
)
from iam.i18n import N_
from iam.models.identity import LocalGroup, LocalGroupMember, LocalUser
from iam.passwords import hash_password, verify_password

log = logging.getLogger("iam.directory.local")

MIN_LENGTH = 8


def _to_user(row: LocalUser) -> DirectoryUser:
    return DirectoryUser(
        id=row.id,
        username=row.username,
        dn=f"uid={row.username},{row.ou}" if row.ou else f"uid={row.username}",
        upn=row.upn,
        given_name=row.given_name,
        family_name=row.family_name,
        display_name=row.display_name,
        email=row.email,
        employee_number=row.employee_number,
        phone=row.phone,
        enabled=row.enabled,
        locked=row.locked,
        must_change_password=row.must_change_password,
        password_expires_at=row.password_expires_at,
        password_last_set=row.password_changed_at,
    )


class LocalDirectory:
    kind = "local"

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._reader = readonly(sessions)

    # -- reads -------------------------------------------------------------------------------
    def ping(self) -> None:
        try:
            with self._reader() as s:
                s.execute(select(1))
        except OperationalError as exc:
            raise DirectoryUnavailable("The built-in directory's database is unreachable.") from exc

    def _by_login(self, s: Session, username: str) -> LocalUser | None:
        return s.scalar(
            select(LocalUser).where(or_(LocalUser.username == username, LocalUser.upn == username))
        )

    def find_login(self, username: str) -> DirectoryUser | None:
        with self._reader() as s:
            row = self._by_login(s, username.strip()) if username.strip() else None
            return _to_user(row) if row else None

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        with self._reader() as s:
            row = self._by_login(s, username.strip()) if username else None
            ok = verify_password(row.password_hash if row else None, password)
            if row is None or not ok or not password:
                raise InvalidCredentials("Wrong username or password.")
            if not row.enabled:
                raise AccountDisabled("The account is disabled.")
            if row.locked:
                raise AccountLocked("The account is locked.")
            if row.must_change_password:
                raise MustChangePassword("The password must be changed.")
            if row.password_expires_at and row.password_expires_at <= clock.now():
                raise PasswordExpired("The password has expired.")
            return _to_user(row)

    def get_user(self, user_id: str) -> DirectoryUser | None:
        with self._reader() as s:
            row = s.get(LocalUser, user_id)
            return _to_user(row) if row else None

    def find_user(
        self,
        *,
        username: str | None = None,
        upn: str | None = None,
        employee_number: str | None = None,
    ) -> DirectoryUser | None:
        name, value = lookup_key(username=username, upn=upn, employee_number=employee_number)
        col = getattr(LocalUser, name)
        with self._reader() as s:
            row = s.scalar(select(LocalUser).where(col == value))
            return _to_user(row) if row else None

    #: Directory attribute (AD name, lower-case) → column, for :meth:`find_users_by`.
    _BY_ATTRIBUTE = {
        "samaccountname": "username",
        "userprincipalname": "upn",
        "mail": "email",
        "employeenumber": "employee_number",
    }

    def find_users_by(self, attribute: str, values: Sequence[str]) -> list[DirectoryUser]:
        name = self._BY_ATTRIBUTE.get(attribute.lower())
        wanted = [v.lower() for v in values if v]
        if name is None or not wanted:
            return []
        col = getattr(LocalUser, name)
        with self._reader() as s:
            rows = s.scalars(select(LocalUser).where(func.lower(col).in_(wanted)).limit(10))
            return [_to_user(r) for r in rows]

    def search_users(self, *, query: str | None = None, page_size: int = 500) -> Iterator[DirectoryUser]:
        last = ""
        while True:
            with self._reader() as s:
                stmt = select(LocalUser).where(LocalUser.username > last)
                if query:
                    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    like = f"%{escaped}%"
                    stmt = stmt.where(
                        or_(
                            LocalUser.username.ilike(like, escape="\\"),
                            LocalUser.display_name.ilike(like, escape="\\"),
                            LocalUser.email.ilike(like, escape="\\"),
                            LocalUser.given_name.ilike(like, escape="\\"),
                            LocalUser.family_name.ilike(like, escape="\\"),
                            LocalUser.employee_number.ilike(like, escape="\\"),
                            LocalUser.upn.ilike(like, escape="\\"),
                        )
                    )
                rows = s.scalars(stmt.order_by(LocalUser.username).limit(page_size)).all()
                users = [_to_user(r) for r in rows]
            yield from users
            if len(users) < page_size:
                return
            last = users[-1].username

    def _group(self, s: Session, name: str) -> LocalGroup:
        group = s.scalar(select(LocalGroup).where(LocalGroup.name == name))
        if group is None:
            raise NoSuchEntry(N_("There is no group named '%(name)s'."), name=name)
        return group

    def _user(self, s: Session, user_id: str) -> LocalUser:
        row = s.get(LocalUser, user_id)
        if row is None:
            raise NoSuchEntry(N_("There is no such user."))
        return row

    def _parents(self, s: Session, group_ids: set[str]) -> set[str]:
        """All groups that contain any of ``group_ids``, transitively (cycle-safe)."""
        seen: set[str] = set()
        frontier = set(group_ids)
        while frontier:
            rows = s.scalars(
                select(LocalGroupMember.group_id).where(LocalGroupMember.member_group_id.in_(frontier))
            ).all()
            frontier = set(rows) - seen - group_ids
            seen |= frontier
        return seen

    def membership_graph(self, *, base_dn: str | None = None) -> MembershipGraph:
        # The built-in directory has no OUs: ``base_dn`` does not narrow it.
        with self._reader() as s:
            names = dict(s.execute(select(LocalGroup.id, LocalGroup.name)).all())
            direct: dict[str, list[str]] = {}
            parents: dict[str, list[str]] = {}
            for group_id, user_id, member_group_id in s.execute(
                select(LocalGroupMember.group_id, LocalGroupMember.user_id, LocalGroupMember.member_group_id)
            ):
                if user_id:
                    direct.setdefault(user_id, []).append(f"cn={names[group_id]}")
                elif member_group_id:
                    parents.setdefault(member_group_id, []).append(f"cn={names[group_id]}")
            users = [
                (_to_user(row), tuple(sorted(direct.get(row.id, ()))))
                for row in s.scalars(select(LocalUser).order_by(LocalUser.username))
            ]
        groups = {
            f"cn={name}".casefold(): GroupNode(
                dn=f"cn={name}", name=name, parents=tuple(sorted(parents.get(gid, ())))
            )
            for gid, name in names.items()
        }
        return MembershipGraph(users=users, groups=groups)

    def user_groups(self, user_id: str, *, nested: bool = True) -> list[str]:
        with self._reader() as s:
            self._user(s, user_id)
            direct = set(
                s.scalars(select(LocalGroupMember.group_id).where(LocalGroupMember.user_id == user_id)).all()
            )
            ids = direct | (self._parents(s, direct) if nested else set())
            if not ids:
                return []
            names = s.scalars(select(LocalGroup.name).where(LocalGroup.id.in_(ids))).all()
            return sorted(names)

    def group_members(self, group: str, *, nested: bool = True) -> list[DirectoryUser]:
        with self._reader() as s:
            root = self._group(s, group)
            groups = {root.id}
            frontier = {root.id}
            while nested and frontier:
                children = set(
                    s.scalars(
                        select(LocalGroupMember.member_group_id).where(
                            LocalGroupMember.group_id.in_(frontier),
                            LocalGroupMember.member_group_id.is_not(None),
                        )
                    ).all()
                )
                frontier = {c for c in children if c} - groups
                groups |= frontier
            rows = s.scalars(
                select(LocalUser)
                .join(LocalGroupMember, LocalGroupMember.user_id == LocalUser.id)
                .where(LocalGroupMember.group_id.in_(groups))
                .distinct()
                .order_by(LocalUser.username)
            ).all()
            return [_to_user(r) for r in rows]

    def get_group(self, group: str) -> DirectoryGroup | None:
        with self._reader() as s:
            g = s.scalar(select(LocalGroup).where(LocalGroup.name == group))
            return DirectoryGroup(id=g.id, name=g.name, dn=f"cn={g.name}") if g else None

    # -- writes ------------------------------------------------------------------------------
    def create_group(self, name: str, *, ou: str | None = None) -> DirectoryGroup:
        try:
            with transaction(self._sessions) as s:
                g = LocalGroup(name=name)
                s.add(g)
                s.flush()
                return DirectoryGroup(id=g.id, name=g.name, dn=f"cn={g.name}")
        except IntegrityError:
            raise EntryExists(N_("A group named '%(name)s' already exists."), name=name) from None

    def add_group_to_group(self, child: str, parent: str) -> None:
        """Nest ``child`` in ``parent`` (the built-in equivalent of AD group nesting)."""
        with transaction(self._sessions) as s:
            c, p = self._group(s, child), self._group(s, parent)
            exists = s.scalar(
                select(LocalGroupMember.id).where(
                    LocalGroupMember.group_id == p.id, LocalGroupMember.member_group_id == c.id
                )
            )
            if not exists:
                s.add(LocalGroupMember(group_id=p.id, member_group_id=c.id))

    def create_user(self, new: NewUser) -> DirectoryUser:
        try:
            with transaction(self._sessions) as s:
                row = LocalUser(
                    username=new.username,
                    upn=new.upn,
                    given_name=new.given_name,
                    family_name=new.family_name,
                    display_name=new.display_name,
                    email=new.email,
                    employee_number=new.employee_number,
                    phone=new.phone,
                    ou=new.ou or None,
                    enabled=new.enabled,
                )
                s.add(row)
                s.flush()
                user = _to_user(row)
        except IntegrityError:
            raise EntryExists(
                N_("A user named '%(username)s' already exists."), username=new.username
            ) from None
        if new.password is not None:
            self.set_password(user.id, new.password, must_change=new.must_change)
        for group in new.groups:
            self.add_member(group, user.id)
        if new.password is None and not new.groups:
            return user
        fresh = self.get_user(user.id)
        if fresh is None:  # pragma: no cover - just created
            raise NoSuchEntry("The new user vanished.")
        return fresh

    def _check_new_password(self, row: LocalUser, password: str) -> None:
        if len(password) < MIN_LENGTH:
            raise PasswordRejected(
                N_("The password must be at least %(MIN_LENGTH)s characters long."), MIN_LENGTH=MIN_LENGTH
            )

    def set_password(self, user_id: str, password: str, *, must_change: bool) -> None:
        with transaction(self._sessions) as s:
            row = self._user(s, user_id)
            self._check_new_password(row, password)
            row.password_hash = hash_password(password)
            row.must_change_password = must_change
            row.password_changed_at = clock.now()
            row.password_expires_at = None

    def change_password(self, username: str, old_password: str, new_password: str) -> None:
        with transaction(self._sessions) as s:
            row = self._by_login(s, username)
            if row is None or not verify_password(row.password_hash, old_password):
                raise InvalidCredentials("Wrong username or password.")
            if not row.enabled:
                raise AccountDisabled("The account is disabled.")
            if row.locked:
                raise AccountLocked("The account is locked.")
            self._check_new_password(row, new_password)
            if verify_password(row.password_hash, new_password):
                raise PasswordRejected(N_("The new password must differ from the current one."))
            row.password_hash = hash_password(new_password)
            row.must_change_password = False
            row.password_changed_at = clock.now()
            row.password_expires_at = None

    def _set(self, user_id: str, **values: object) -> None:
        with transaction(self._sessions) as s:
            row = self._user(s, user_id)
            for k, v in values.items():
                setattr(row, k, v)

    def enable(self, user_id: str) -> None:
        self._set(user_id, enabled=True)

    def disable(self, user_id: str) -> None:
        self._set(user_id, enabled=False)

    def unlock(self, user_id: str) -> None:
        self._set(user_id, locked=False)

    def expire_password(self, user_id: str) -> None:
        """Mark the password as expired now (the built-in equivalent of AD's 532)."""
        self._set(user_id, password_expires_at=clock.now())

    def add_member(self, group: str, user_id: str) -> None:
        with transaction(self._sessions) as s:
            g = self._group(s, group)
            self._user(s, user_id)
            exists = s.scalar(
                select(LocalGroupMember.id).where(
                    LocalGroupMember.group_id == g.id, LocalGroupMember.user_id == user_id
                )
            )
            if not exists:
                s.add(LocalGroupMember(group_id=g.id, user_id=user_id))

    def add_members(self, group: str, users: Sequence[DirectoryUser]) -> list[str]:
        gone: list[str] = []
        with transaction(self._sessions) as s:
            g = self._group(s, group)
            ids = {u.id for u in users}
            have = set(
                s.scalars(
                    select(LocalGroupMember.user_id).where(
                        LocalGroupMember.group_id == g.id, LocalGroupMember.user_id.in_(ids)
                    )
                )
            )
            for user_id in sorted(ids - have):
                if s.get(LocalUser, user_id) is None:
                    gone.append(user_id)
                    continue
                s.add(LocalGroupMember(group_id=g.id, user_id=user_id))
        return gone

    def remove_member(self, group: str, user_id: str) -> None:
        with transaction(self._sessions) as s:
            g = self._group(s, group)
            s.execute(
                delete(LocalGroupMember).where(
                    LocalGroupMember.group_id == g.id, LocalGroupMember.user_id == user_id
                )
            )

    def move_user(self, user_id: str, ou: str) -> DirectoryUser:
        with transaction(self._sessions) as s:
            row = self._user(s, user_id)
            row.ou = ou.strip() or None
            s.flush()
            return _to_user(row)

    def rename_user(
        self, user_id: str, *, given_name: str, family_name: str, display_name: str | None = None
    ) -> DirectoryUser:
        with transaction(self._sessions) as s:
            row = self._user(s, user_id)
            row.given_name, row.family_name = given_name, family_name
            row.display_name = display_name or f"{given_name} {family_name}"
            s.flush()
            return _to_user(row)

    def password_policies(self) -> list[PasswordPolicy]:
        return []  # the profile is the built-in directory's only policy

    def delete_user(self, user_id: str) -> None:
        with transaction(self._sessions) as s:
            s.delete(self._user(s, user_id))
