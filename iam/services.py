"""The services one process needs, built once from the settings and passed around explicitly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from iam.audit import Anchor, audit_key, install_anchor
from iam.config import Settings
from iam.crypto import Cipher, dev_secret
from iam.db import make_engine, make_sessionmaker, readonly, transaction
from iam.directory.base import Directory
from iam.errors import ConfigError

log = logging.getLogger("iam")


class Services:
    """Settings, database, directory and secrets of one process."""

    def __init__(self, settings: Settings) -> None:
        settings.check_production()
        self.settings = settings
        self.secret_key = self._secret(settings.secret_key.get_secret_value(), "secret_key.txt")
        self.cipher = Cipher.from_b64(
            self._secret(settings.encryption_key.get_secret_value(), "encryption.key")
        )
        self.extensions: dict[str, Any] = {}
        """Per-process objects of feature packages (e.g. the SSO key ring)."""
        from iam.passwords.profiles import profile_from_settings

        self.password_profile = profile_from_settings(settings.passwords, languages=settings.languages)
        """The organisation's password profile, validated at start (R-PW-1)."""
        self.engine: Engine = make_engine(settings.database)
        self.sessions: sessionmaker[Session] = make_sessionmaker(
            self.engine, info={"iam.audit_key": audit_key(self.secret_key)}
        )
        self.audit_anchor = Anchor(
            settings.audit.anchor_file or settings.var_dir / "audit-anchor.jsonl",
            audit_key(self.secret_key),
            syslog=settings.audit.anchor_syslog,
        )
        """The audit log's external anchor (iam.audit_anchor)."""
        install_anchor(self.sessions, self.audit_anchor)

    @cached_property
    def reader(self) -> sessionmaker[Session]:
        """Sessions for reading only (never wait for, nor take, SQLite's write lock)."""
        return readonly(self.sessions)

    def _secret(self, configured: str, filename: str) -> str:
        if configured:
            return configured
        if not self.settings.dev_mode:
            raise ConfigError(f"A secret is missing ({filename}); see `iam serve --help`.")
        return dev_secret(self.settings.var_dir, filename)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception."""
        with transaction(self.sessions) as session:
            yield session

    @cached_property
    def directory(self) -> Directory:
        kind = self.settings.directory.kind
        if kind == "ad":
            from iam.directory.ad import ActiveDirectory
            from iam.directory.ad_changes import WriteLedger

            ad = ActiveDirectory(self.settings.directory)
            ad.ledger = WriteLedger(self.sessions)  # our own writes, told apart from others'
            directory: Directory = ad
            return directory
        from iam.directory.local import LocalDirectory

        return LocalDirectory(self.sessions)  # it reads through its own read-only sessions

    def dispose(self) -> None:
        from iam import cluster

        cluster.stop_listening(self)
        self.engine.dispose()
