"""Signing keys: generation, encrypted storage, rotation and the published JWKS.

Rotation is two-phase so no relying party ever meets an unknown ``kid``: every algorithm
always has a *next* key that is already published in the JWKS. ``iam keys rotate`` makes the
next key active, retires the active one (still published until every token it signed has
expired) and prepares a new next key. Key objects are imported once per process and reloaded
only when the set of keys changed (the peers' lesson: re-importing a key per token costs 50 ms).
While the database is unreachable a process keeps signing with, and publishing (discovery,
JWKS), the keys it has loaded.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc import jwk
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from iam import audit, clock
from iam.crypto import Cipher
from sso.models import KeyStatus, SigningKey

ALGORITHMS = ("ES256", "RS256")
RELOAD_SECONDS = 10.0
"""How long a process keeps its loaded keys before it looks at the table again: a rotation
reaches every process within this bound (``iam keys rotate`` says so)."""

log = logging.getLogger("sso.keys")

Key = jwk.ECKey | jwk.RSAKey


def _generate(alg: str) -> Key:
    if alg == "ES256":
        return jwk.ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return jwk.RSAKey.generate_key(2048, private=True)
    raise ValueError(f"unsupported algorithm {alg}")


def _new_key(session: Session, cipher: Cipher, alg: str, status: KeyStatus) -> SigningKey:
    key = _generate(alg)
    kid = f"{alg.lower()}-{clock.now():%Y%m%d}-{secrets.token_hex(4)}"
    pem = key.as_pem(private=True)
    public = dict(key.as_dict(private=False))
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    row = SigningKey(
        kid=kid,
        alg=alg,
        status=status,
        public_jwk=public,
        private_key=cipher.encrypt(pem, context=kid.encode()),
        activated_at=clock.now() if status == KeyStatus.ACTIVE else None,
    )
    session.add(row)
    session.flush()
    return row


def ensure_keys(session: Session, cipher: Cipher) -> list[str]:
    """Create the active and next key of each algorithm where missing; return new kids."""
    created: list[str] = []
    rows = session.scalars(select(SigningKey).where(SigningKey.status.in_(["active", "next"])))
    have = {(r.alg, r.status) for r in rows}
    for alg in ALGORITHMS:
        for status in (KeyStatus.ACTIVE, KeyStatus.NEXT):
            if (alg, status) not in have:
                created.append(_new_key(session, cipher, alg, status).kid)
    if created:
        audit.record(
            session,
            "keys.created",
            severity=audit.Severity.SIGNIFICANT,
            actor="system",
            details={"kids": created},
        )
    return created


def rotation_grace(settings: Any) -> int:
    """Seconds a retired key stays published: until every token it signed has expired."""
    t = settings.tokens
    return int(max(t.key_rotation_grace, t.access_token_lifetime, t.id_token_lifetime))


def rotate(
    session: Session,
    cipher: Cipher,
    *,
    grace: int,
    actor: str,
    algs: tuple[str, ...] = ALGORITHMS,
    reason: str = "",
    ip: str | None = None,
) -> dict[str, str]:
    """Promote each algorithm's next key, retire the active one, prepare a new next key."""
    ensure_keys(session, cipher)
    now = clock.now()
    promoted: dict[str, str] = {}
    for alg in algs:
        active = session.scalars(
            select(SigningKey).where(SigningKey.alg == alg, SigningKey.status == "active")
        ).all()
        nxt = session.scalars(
            select(SigningKey).where(SigningKey.alg == alg, SigningKey.status == "next")
        ).first()
        assert nxt is not None
        for old in active:
            old.status = KeyStatus.RETIRED
            old.retired_at = now
            old.publish_until = now + dt.timedelta(seconds=grace)
        nxt.status = KeyStatus.ACTIVE
        nxt.activated_at = now
        _new_key(session, cipher, alg, KeyStatus.NEXT)
        promoted[alg] = nxt.kid
    audit.record(
        session,
        "keys.rotated",
        severity=audit.Severity.SIGNIFICANT,
        actor=actor,
        ip=ip,
        details={
            "active": promoted,
            "retired_publish_seconds": grace,
            **({"reason": reason} if reason else {}),
        },
    )
    return promoted


def remove_expired(session: Session) -> list[str]:
    """Stop publishing retired keys whose tokens have all expired."""
    now = clock.now()
    rows = session.scalars(
        select(SigningKey).where(SigningKey.status == "retired", SigningKey.publish_until <= now)
    ).all()
    for r in rows:
        r.status = KeyStatus.REMOVED
    if rows:
        audit.record(session, "keys.removed", actor="system", details={"kids": [r.kid for r in rows]})
    return [r.kid for r in rows]


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    status: str
    key: Key
    public_jwk: dict[str, Any]
    publish_until: dt.datetime | None


def keyring_for(services: Any) -> KeyRing:
    """The process-wide key ring of ``services`` (created on first use)."""
    ring = services.extensions.get("sso.keyring")
    if ring is None:
        ring = KeyRing(services.reader, services.cipher)
        services.extensions["sso.keyring"] = ring
    return ring  # type: ignore[no-any-return]


class KeyRing:
    """The keys of this process, imported once, reloaded when the table changes."""

    def __init__(self, sessions: Any, cipher: Cipher) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._keys: dict[str, LoadedKey] = {}
        self._signature: tuple[tuple[str, str], ...] = ()
        self._loaded_at = 0.0
        self._forced_at = 0.0
        self._stale = False
        self._lock = threading.Lock()

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._loaded_at < RELOAD_SECONDS:
            return
        with self._lock:
            if not force and time.monotonic() - self._loaded_at < RELOAD_SECONDS:
                return
            try:
                with self._sessions() as s:
                    rows = s.scalars(select(SigningKey).where(SigningKey.status != KeyStatus.REMOVED)).all()
                    signature = tuple(sorted((r.kid, r.status) for r in rows))
                    if signature != self._signature:
                        keys: dict[str, LoadedKey] = {}
                        for r in rows:
                            cached = self._keys.get(r.kid)
                            key = cached.key if cached else self._import(r)
                            keys[r.kid] = LoadedKey(
                                r.kid, r.alg, r.status, key, dict(r.public_jwk), r.publish_until
                            )
                        self._keys = keys
                        self._signature = signature
            except DBAPIError:
                if not self._keys:
                    raise  # nothing loaded yet: nothing to serve
                # The database is unreachable: keep signing with and publishing the keys this
                # process holds (they change only by rotation, which needs the database too)
                # and look again after the same interval.
                if not self._stale:
                    log.warning(
                        "signing keys cannot be reloaded (database unreachable); using the loaded keys"
                    )
                self._stale = True
                self._loaded_at = time.monotonic()
                return
            if self._stale:
                log.info("signing keys reloaded from the database again")
                self._stale = False
            self._loaded_at = time.monotonic()

    def _import(self, row: SigningKey) -> Key:
        pem = self._cipher.decrypt(row.private_key, context=row.kid.encode())
        private = serialization.load_pem_private_key(pem, password=None)
        return jwk.ECKey.import_key(private) if row.alg == "ES256" else jwk.RSAKey.import_key(private)  # type: ignore[arg-type]

    def reload(self) -> None:
        self._refresh(force=True)

    def signing_key(self, alg: str) -> LoadedKey:
        self._refresh()
        for k in self._keys.values():
            if k.alg == alg and k.status == KeyStatus.ACTIVE:
                return k
        self._refresh(force=True)
        for k in self._keys.values():
            if k.alg == alg and k.status == KeyStatus.ACTIVE:
                return k
        raise LookupError(f"no active {alg} signing key; run `iam db upgrade`")

    def verification_key(self, kid: str) -> LoadedKey | None:
        self._refresh()
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._forced_at > 1.0:
            # a kid we don't know: maybe rotated in another process. At most one forced
            # reload a second, so tokens with made-up kids can't hammer the database.
            self._forced_at = time.monotonic()
            self._refresh(force=True)
            key = self._keys.get(kid)
        if key is None or not self._published(key):
            return None
        return key

    @staticmethod
    def _published(k: LoadedKey) -> bool:
        if k.status == KeyStatus.RETIRED:
            return k.publish_until is not None and k.publish_until > clock.now()
        return k.status in (KeyStatus.ACTIVE, KeyStatus.NEXT)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        self._refresh()
        return {
            "keys": [
                k.public_jwk for k in sorted(self._keys.values(), key=lambda k: k.kid) if self._published(k)
            ]
        }
