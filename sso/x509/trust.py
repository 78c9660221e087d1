"""Trust anchors and certification-path validation (RFC 5280 §6, the parts a client-certificate
sign-in needs), done by us with ``cryptography`` against ``iam.clock.now()``.

The trust anchors are the self-signed certificates in the CA folder (``x509.trust_dir``) plus
the CAs an administrator uploaded (``x509_uploaded_cas``, trusted whatever they are); the
folder's other certificates are intermediates offered for path building. A path is built
from the client's certificate through intermediates the client sent or the folder holds, up
to a trusted certificate; each link's signature, validity, basicConstraints (cA,
pathLenConstraint) and keyCertSign are checked; the client certificate must carry
digitalSignature and an allowed EKU.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from iam import cluster
from iam.config import X509Settings
from sso.x509.certs import CertificateRefused, ext, is_self_issued, load_pem_or_der, thumbprint
from sso.x509.models import UploadedCA

log = logging.getLogger("sso.x509.trust")

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")


@dataclass
class Anchors:
    """The trusted certificates and the folder's intermediates, by subject name."""

    trusted: dict[str, x509.Certificate] = field(default_factory=dict)  # by thumbprint
    by_subject: dict[x509.Name, list[x509.Certificate]] = field(default_factory=dict)
    loaded_at: float = 0.0
    signature: tuple[object, ...] = ()

    def add(self, cert: x509.Certificate, *, anchor: bool) -> None:
        """``anchor``: trusted as the end of a path; otherwise only offered for path building."""
        tp = thumbprint(cert)
        if anchor:
            self.trusted[tp] = cert
        if not any(thumbprint(c) == tp for c in self.by_subject.get(cert.subject, [])):
            self.by_subject.setdefault(cert.subject, []).append(cert)

    def is_trusted(self, cert: x509.Certificate) -> bool:
        return thumbprint(cert) in self.trusted


_stores: weakref.WeakSet[TrustStore] = weakref.WeakSet()


def _trust_changed(key: str) -> None:
    for store in list(_stores):
        store.expire(key)


cluster.on("trust", _trust_changed)


class TrustStore:
    """The per-process view of the trust anchors, reloaded when the folder or the uploaded set
    changes (checked at most every ``reload_interval`` seconds) or on :meth:`reload`."""

    def __init__(self, settings: X509Settings, folder: Path, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.folder = folder
        self.sessions = sessions
        self._lock = threading.Lock()
        self._anchors: Anchors | None = None
        _stores.add(self)

    def expire(self, _key: str = "") -> None:
        """Compare the folder and the uploaded set again on next use (another process changed it)."""
        anchors = self._anchors
        if anchors is not None:
            anchors.loaded_at = float("-inf")

    def _signature(self) -> tuple[object, ...]:
        files: list[tuple[str, int, int]] = []
        if self.folder.is_dir():
            for path in sorted(self.folder.iterdir()):
                if path.suffix.lower() in CERT_SUFFIXES and path.is_file():
                    st = path.stat()
                    files.append((path.name, st.st_mtime_ns, st.st_size))
        with self.sessions() as s:
            uploaded = tuple(s.scalars(select(UploadedCA.sha256).order_by(UploadedCA.sha256)))
        return (tuple(files), uploaded)

    def anchors(self) -> Anchors:
        with self._lock:
            current = self._anchors
            stale = current is None or time.monotonic() - current.loaded_at >= self.settings.reload_interval
            if stale:
                sig = self._signature()
                if current is None or sig != current.signature:
                    current = self._load(sig)
                    self._anchors = current
                else:
                    current.loaded_at = time.monotonic()
            assert current is not None
            return current

    def reload(self) -> Anchors:
        with self._lock:
            self._anchors = self._load(self._signature())
            return self._anchors

    def _load(self, sig: tuple[object, ...]) -> Anchors:
        anchors = Anchors(loaded_at=time.monotonic(), signature=sig)
        if self.folder.is_dir():
            for path in sorted(self.folder.iterdir()):
                if path.suffix.lower() not in CERT_SUFFIXES or not path.is_file():
                    continue
                try:
                    for cert in load_pem_or_der(path.read_bytes()):
                        anchors.add(cert, anchor=is_self_issued(cert))
                except CertificateRefused:
                    log.warning("CA folder: %s is not a certificate; skipped", path.name)
        with self.sessions() as s:
            for row in s.scalars(select(UploadedCA)):
                for cert in load_pem_or_der(row.pem.encode()):
                    anchors.add(cert, anchor=True)
        log.info("trust anchors loaded: %d certificate(s)", len(anchors.trusted))
        return anchors


def _check_dates(cert: x509.Certificate, now: dt.datetime, *, leaf: bool) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateRefused(
            "not_yet_valid" if leaf else "ca_not_yet_valid",
            "The certificate is not valid yet."
            if leaf
            else "A CA certificate in the chain is not valid yet.",
        )
    if now > cert.not_valid_after_utc:
        raise CertificateRefused(
            "expired" if leaf else "ca_expired",
            "The certificate has expired." if leaf else "A CA certificate in the chain has expired.",
        )


def _is_ca(cert: x509.Certificate) -> tuple[bool, int | None]:
    bc = ext(cert, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints):
        return bc.ca, bc.path_length
    return False, None


def _may_sign_certificates(cert: x509.Certificate) -> bool:
    is_ca, _ = _is_ca(cert)
    if not is_ca:
        return False
    ku = ext(cert, x509.KeyUsage)
    return not isinstance(ku, x509.KeyUsage) or ku.key_cert_sign


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    if child.issuer != parent.subject:
        return False
    aki = ext(child, x509.AuthorityKeyIdentifier)
    ski = ext(parent, x509.SubjectKeyIdentifier)
    if (
        isinstance(aki, x509.AuthorityKeyIdentifier)
        and aki.key_identifier
        and isinstance(ski, x509.SubjectKeyIdentifier)
        and aki.key_identifier != ski.digest
    ):
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    except Exception:  # noqa: BLE001 — unsupported key types are "not issued by"
        return False
    return True


def check_leaf(cert: x509.Certificate, settings: X509Settings, now: dt.datetime) -> None:
    """The client certificate itself: dates, not a CA, key usage, extended key usage."""
    _check_dates(cert, now, leaf=True)
    is_ca, _ = _is_ca(cert)
    if is_ca:
        raise CertificateRefused("wrong_key_usage", "A CA certificate cannot be used to sign in.")
    ku = ext(cert, x509.KeyUsage)
    if settings.require_digital_signature and isinstance(ku, x509.KeyUsage) and not ku.digital_signature:
        raise CertificateRefused(
            "wrong_key_usage", "The certificate's key usage does not allow signing in (digitalSignature)."
        )
    eku = ext(cert, x509.ExtendedKeyUsage)
    allowed = set(settings.allowed_eku)
    usages = {u.dotted_string for u in eku} if isinstance(eku, x509.ExtendedKeyUsage) else set()
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string in usages and allowed:
        return
    if allowed and not usages & allowed:
        raise CertificateRefused(
            "wrong_eku",
            "The certificate is not meant for signing in (no client-authentication or "
            "smart-card-logon usage).",
        )


def build_path(
    leaf: x509.Certificate,
    extra: list[x509.Certificate],
    anchors: Anchors,
    settings: X509Settings,
    now: dt.datetime,
) -> list[x509.Certificate]:
    """[leaf, intermediate…, trusted] or :class:`CertificateRefused`. Candidates are tried
    depth-first; a path is accepted only if every link is valid now."""
    check_leaf(leaf, settings, now)
    if anchors.is_trusted(leaf):
        # a certificate placed in the CA folder is trusted only as a CA, never as a login
        raise CertificateRefused("untrusted", "The certificate was not issued by a trusted authority.")
    pool: dict[x509.Name, list[x509.Certificate]] = {}
    for cert in extra:
        pool.setdefault(cert.subject, []).append(cert)
    problems: list[CertificateRefused] = []

    def candidates(name: x509.Name) -> list[x509.Certificate]:
        seen: set[str] = set()
        out: list[x509.Certificate] = []
        for cert in anchors.by_subject.get(name, []) + pool.get(name, []):
            tp = thumbprint(cert)
            if tp not in seen:
                seen.add(tp)
                out.append(cert)
        return out

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        child = path[-1]
        if len(path) >= settings.max_chain_length:
            return None
        for parent in candidates(child.issuer):
            if any(thumbprint(parent) == thumbprint(p) for p in path):
                continue
            if not _issued_by(child, parent):
                continue
            try:
                _check_dates(parent, now, leaf=False)
            except CertificateRefused as exc:
                problems.append(exc)
                continue
            if not _may_sign_certificates(parent):
                problems.append(
                    CertificateRefused(
                        "not_a_ca", "A certificate in the chain is not allowed to issue others."
                    )
                )
                continue
            _, path_len = _is_ca(parent)
            below = sum(1 for c in path[1:] if not is_self_issued(c))  # intermediates under parent
            if path_len is not None and below > path_len:
                problems.append(CertificateRefused("path_too_long", "The certificate chain is too long."))
                continue
            candidate = [*path, parent]
            if anchors.is_trusted(parent):
                return candidate
            found = extend(candidate)
            if found:
                return found
        return None

    path = extend([leaf])
    if path is None:
        if problems:
            raise problems[0]
        raise CertificateRefused("untrusted", "The certificate was not issued by a trusted authority.")
    return path
