"""The backup file: a tar of the dump and files, encrypted to recipients with age.

``age`` (X25519, ChaCha20-Poly1305 in 64 KiB authenticated chunks; https://age-encryption.org)
is the standard tool for encrypting a file to a public key: the host that stores backups holds
only the recipient (``age1…``) and can neither read nor alter a backup unnoticed; the identity
(``AGE-SECRET-KEY-1…``) that decrypts it stays offline with whoever restores. The files are
interoperable: ``age -d -i identity.txt FILE | tar t`` lists a backup without this program.

Inside the tar::

    manifest.json               what, when, which revision, rows per table, SHA-256 of every member
    database/<table>.jsonl.gz   the rows (iam.backup.dump)
    secrets.json                secret_key and encryption_key (the audit chain's key, the key
                                that encrypts signing keys and other secrets at rest)
    settings.json               the effective settings, secrets masked
    files/policies/…            the policies folder
    files/trust-anchors/…       the smart-card trust anchors folder (when configured)

Beside the file, ``FILE.sha256`` lets the backup host check the file without the identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage

MANIFEST = "manifest.json"
FORMAT = 1


class BackupError(Exception):
    """A backup cannot be written, read or trusted; the message says why in one sentence."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def new_identity() -> tuple[str, str]:
    """A new age key pair: (identity — secret, keep offline; recipient — public)."""
    ident = pyrage.x25519.Identity.generate()
    return str(ident), str(ident.to_public())


def parse_recipients(values: list[str]) -> list[Any]:
    out = []
    for value in values:
        try:
            out.append(pyrage.x25519.Recipient.from_str(value.strip()))
        except Exception:
            raise BackupError(f"{value.strip()[:12]}… is not an age recipient (age1…)") from None
    if not out:
        raise BackupError("No recipient to encrypt the backup to: set backup.recipients (age1… public keys).")
    return out


def read_identities(path: Path) -> list[Any]:
    """The ``AGE-SECRET-KEY-1…`` lines of an identity file (as ``age-keygen`` writes it)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise BackupError(f"The identity file {path} cannot be read ({exc.strerror}).") from None
    keys = [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
    try:
        return [pyrage.x25519.Identity.from_str(k) for k in keys] or _no_identity(path)
    except pyrage.IdentityError:
        raise BackupError(f"The identity file {path} holds no valid age identity.") from None


def _no_identity(path: Path) -> list[Any]:
    raise BackupError(f"The identity file {path} holds no AGE-SECRET-KEY line.")


@dataclass
class Staging:
    """A private folder where a backup is put together before it is encrypted."""

    root: Path

    def member(self, name: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add_tree(self, src: Path, name: str) -> int:
        if not src.is_dir():
            return 0
        n = 0
        for file in sorted(p for p in src.rglob("*") if p.is_file()):
            dest = self.member(f"{name}/{file.relative_to(src).as_posix()}")
            shutil.copyfile(file, dest)
            n += 1
        return n

    def write_json(self, name: str, data: Any) -> None:
        self.member(name).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))

    def seal(self, manifest: dict[str, Any], out: Path, recipients: list[str]) -> str:
        """Write the manifest (with every member's SHA-256), tar, encrypt to ``out``; return the
        encrypted file's SHA-256 (also written to ``out.sha256``)."""
        members = sorted(p for p in self.root.rglob("*") if p.is_file() and p.name != MANIFEST)
        manifest = {
            **manifest,
            "format": FORMAT,
            "files": {p.relative_to(self.root).as_posix(): sha256_file(p) for p in members},
        }
        self.write_json(MANIFEST, manifest)
        keys = parse_recipients(recipients)
        tar_path = self.root.parent / "backup.tar"
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(self.root / MANIFEST, arcname=MANIFEST)
            for p in members:
                tar.add(p, arcname=p.relative_to(self.root).as_posix())
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        pyrage.encrypt_file(str(tar_path), str(partial), keys)
        os.replace(partial, out)
        digest = sha256_file(out)
        out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
        return digest


@contextmanager
def staging() -> Iterator[Staging]:
    with tempfile.TemporaryDirectory(prefix="iam-backup-") as tmp:
        os.chmod(tmp, 0o700)
        root = Path(tmp) / "content"
        root.mkdir()
        yield Staging(root)


@dataclass
class Opened:
    """A decrypted backup, unpacked into a private temporary folder (gone after the ``with``)."""

    root: Path
    manifest: dict[str, Any]
    sha256: str

    def table_files(self) -> dict[str, Path]:
        folder = self.root / "database"
        return {p.name.removesuffix(".jsonl.gz"): p for p in folder.glob("*.jsonl.gz")}

    def secrets(self) -> dict[str, str]:
        data = json.loads((self.root / "secrets.json").read_text())
        return {str(k): str(v) for k, v in data.items()}


def check_sidecar(path: Path) -> str | None:
    """Compare ``path`` with ``path.sha256`` (written beside it); None when they agree or there
    is no sidecar, else the problem."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return None
    expected = sidecar.read_text().split()[0] if sidecar.read_text().split() else ""
    if sha256_file(path) != expected:
        return f"{path.name} does not match {sidecar.name}: the file was changed or damaged"
    return None


@contextmanager
def open_backup(path: Path, identity_file: Path) -> Iterator[Opened]:
    """Decrypt and unpack ``path`` and check every member against the manifest."""
    if not path.is_file():
        raise BackupError(f"There is no backup file {path}.")
    identities = read_identities(identity_file)
    digest = sha256_file(path)
    with tempfile.TemporaryDirectory(prefix="iam-restore-") as tmp:
        os.chmod(tmp, 0o700)
        tar_path = Path(tmp) / "backup.tar"
        try:
            pyrage.decrypt_file(str(path), str(tar_path), identities)
        except Exception:
            raise BackupError(
                f"{path.name} cannot be decrypted with {identity_file.name}: the file was changed or "
                "damaged, or it was encrypted to another key."
            ) from None
        root = Path(tmp) / "content"
        root.mkdir()
        try:
            with tarfile.open(tar_path) as tar:
                tar.extractall(root, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{path.name} is not a backup of this program ({exc}).") from None
        tar_path.unlink()
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except (OSError, ValueError):
            raise BackupError(f"{path.name} has no readable manifest.") from None
        if manifest.get("format") != FORMAT:
            raise BackupError(
                f"{path.name} is in backup format {manifest.get('format')}, this program reads {FORMAT}."
            )
        for name, expected in sorted(manifest.get("files", {}).items()):
            member = root / name
            if not member.is_file():
                raise BackupError(f"{path.name} lacks {name}, which its manifest lists.")
            if sha256_file(member) != expected:
                raise BackupError(f"{name} in {path.name} does not match its checksum in the manifest.")
        yield Opened(root, manifest, digest)
