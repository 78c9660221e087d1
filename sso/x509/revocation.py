"""Revocation by OCSP (RFC 6960) and CRL (RFC 5280 §5), cached, with fail-open/closed.

OCSP: the responder from ``x509.ocsp_responder`` or the certificate's AIA; a nonce (when
configured) must come back; the response must be signed by the issuer or by a responder the
issuer delegated (EKU OCSPSigning); thisUpdate/nextUpdate must hold now. Answers are cached
until nextUpdate (or ``ocsp_max_age`` without one).

CRL: configured files and the certificate's http distribution points; the CRL must be signed
by the issuer and be current (nextUpdate not passed). Downloads are cached and fetched again
at nextUpdate or every ``crl_refresh_interval`` seconds, whichever comes first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from iam.config import X509Settings
from sso.x509.certs import CertificateRefused, crl_urls, ext, ocsp_urls, thumbprint, verify_signature

log = logging.getLogger("sso.x509.revocation")

Status = Literal["good", "revoked"]
Fetch = Callable[[str, bytes | None, float], bytes]


def http_fetch(url: str, body: bytes | None, timeout: float) -> bytes:
    """GET (CRL) or POST an OCSP request; raises on any failure or a non-200 answer."""
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        if body is None:
            resp = client.get(url)
        else:
            resp = client.post(url, content=body, headers={"Content-Type": "application/ocsp-request"})
    resp.raise_for_status()
    return resp.content


class Unknown(Exception):  # noqa: N818
    """This method could not give an answer (detail says why; never shown to users)."""


@dataclass
class _CachedCrl:
    crl: x509.CertificateRevocationList
    fetched_at: dt.datetime


@dataclass
class _CachedOcsp:
    status: Status
    until: dt.datetime


@dataclass
class RevocationOutcome:
    """What the check found: per-certificate method used, and warnings when failing open."""

    checked: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class RevocationChecker:
    def __init__(self, settings: X509Settings, fetch: Fetch = http_fetch) -> None:
        self.settings = settings
        self.fetch = fetch
        self._lock = threading.Lock()
        self._crls: dict[str, _CachedCrl] = {}
        self._files: dict[Path, tuple[int, list[x509.CertificateRevocationList]]] = {}
        self._ocsp: dict[tuple[str, int], _CachedOcsp] = {}

    def clear(self) -> None:
        with self._lock:
            self._crls.clear()
            self._files.clear()
            self._ocsp.clear()

    # ------------------------------------------------------------------ the check
    def check(self, path: list[x509.Certificate], now: dt.datetime) -> RevocationOutcome:
        """Every certificate of the path but the trusted one at its end; raises
        :class:`CertificateRefused` (``revoked`` or ``revocation_unknown``)."""
        outcome = RevocationOutcome()
        mode = self.settings.revocation
        if mode == "none":
            return outcome
        methods = {
            "ocsp_then_crl": ("ocsp", "crl"),
            "crl_then_ocsp": ("crl", "ocsp"),
            "ocsp": ("ocsp",),
            "crl": ("crl",),
        }[mode]
        for index, cert in enumerate(path[:-1]):
            issuer = path[index + 1]
            leaf = index == 0
            reasons: list[str] = []
            status: Status | None = None
            for method in methods:
                try:
                    status = (
                        self._ocsp_status(cert, issuer, now)
                        if method == "ocsp"
                        else self._crl_status(cert, issuer, now)
                    )
                except Unknown as exc:
                    reasons.append(f"{method}: {exc}")
                    continue
                outcome.checked.append(f"{method}:{'leaf' if leaf else 'ca'}:{status}")
                break
            if status == "revoked":
                raise CertificateRefused(
                    "revoked" if leaf else "ca_revoked",
                    "The certificate has been revoked."
                    if leaf
                    else "A CA certificate in the chain has been revoked.",
                )
            if status is None:
                detail = "; ".join(reasons)
                if not self.settings.fail_open:
                    log.warning("revocation status unknown (fail-closed): %s", detail)
                    raise CertificateRefused(
                        "revocation_unknown",
                        "The certificate's revocation status cannot be checked right now; try again later.",
                    )
                log.warning("revocation status unknown (fail-open): %s", detail)
                outcome.warnings.append(detail)
        return outcome

    # ------------------------------------------------------------------ OCSP
    def _ocsp_status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> Status:
        key = (thumbprint(issuer), cert.serial_number)
        with self._lock:
            cached = self._ocsp.get(key)
        if cached is not None and now <= cached.until:
            return cached.status
        urls = [self.settings.ocsp_responder] if self.settings.ocsp_responder else []
        if self.settings.ocsp_from_aia and not urls:
            urls = ocsp_urls(cert)
        if not urls:
            raise Unknown("no OCSP responder")
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303 — RFC 6960 CertID
        nonce = secrets.token_bytes(16) if self.settings.ocsp_nonce else None
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        request = builder.build().public_bytes(_DER)
        errors: list[str] = []
        for url in urls:
            try:
                raw = self.fetch(url, request, self.settings.fetch_timeout)
            except Exception as exc:  # noqa: BLE001 — network: any failure is "no answer"
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            try:
                status, until = self._read_ocsp(raw, cert, issuer, nonce, now)
            except Unknown as exc:
                errors.append(f"{url}: {exc}")
                continue
            with self._lock:
                self._ocsp[key] = _CachedOcsp(status, until)
            return status
        raise Unknown(", ".join(errors))

    def _read_ocsp(
        self,
        raw: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        nonce: bytes | None,
        now: dt.datetime,
    ) -> tuple[Status, dt.datetime]:
        try:
            resp = ocsp.load_der_ocsp_response(raw)
        except ValueError:
            raise Unknown("unreadable response") from None
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise Unknown(f"responder said {resp.response_status.name}")
        single = next(
            (r for r in resp.responses if r.serial_number == cert.serial_number and _same_issuer(r, issuer)),
            None,
        )
        if single is None:
            raise Unknown("response is about another certificate")
        signer = self._ocsp_signer(resp, issuer, now)
        if not verify_signature(
            signer.public_key(), resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
        ):
            raise Unknown("bad response signature")
        if nonce is not None:
            try:
                got = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            except x509.ExtensionNotFound:
                raise Unknown("nonce missing from response") from None
            if got != nonce:
                raise Unknown("nonce mismatch")
        skew = dt.timedelta(seconds=self.settings.ocsp_max_age)
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > now + skew:
            raise Unknown("response from the future")
        until = next_update if next_update is not None else this_update + skew
        if now > until:
            raise Unknown("response is stale")
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return "good", until
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return "revoked", until
        raise Unknown("responder does not know the certificate")

    @staticmethod
    def _ocsp_signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime) -> x509.Certificate:
        """The issuer itself, or a delegated responder certificate issued by it (RFC 6960 §4.2.2.2)."""
        if _responder_is(resp, issuer):
            return issuer
        for cand in resp.certificates:
            if not _responder_is(resp, cand):
                continue
            eku = ext(cand, x509.ExtendedKeyUsage)
            if not isinstance(eku, x509.ExtendedKeyUsage) or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
                raise Unknown("responder certificate lacks OCSPSigning")
            try:
                cand.verify_directly_issued_by(issuer)
            except Exception:  # noqa: BLE001
                raise Unknown("responder certificate not issued by the CA") from None
            if not cand.not_valid_before_utc <= now <= cand.not_valid_after_utc:
                raise Unknown("responder certificate not valid now")
            return cand
        raise Unknown("response signed by an unknown responder")

    # ------------------------------------------------------------------ CRL
    def _crl_status(self, cert: x509.Certificate, issuer: x509.Certificate, now: dt.datetime) -> Status:
        crls: list[x509.CertificateRevocationList] = []
        errors: list[str] = []
        for path in self.settings.crl_files:
            crls.extend(self._file_crls(path, errors))
        if self.settings.crl_from_cdp:
            for url in crl_urls(cert):
                crl = self._url_crl(url, issuer, now, errors)
                if crl is not None:
                    crls.append(crl)
        usable = [c for c in crls if c.issuer == issuer.subject]
        for crl in usable:
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                errors.append("CRL signature invalid")
                continue
            if crl.next_update_utc is not None and now > crl.next_update_utc:
                errors.append("CRL is stale")
                continue
            if crl.last_update_utc > now + dt.timedelta(seconds=self.settings.ocsp_max_age):
                errors.append("CRL from the future")
                continue
            return "revoked" if crl.get_revoked_certificate_by_serial_number(cert.serial_number) else "good"
        raise Unknown(", ".join(errors) or "no CRL for this issuer")

    def _file_crls(self, path: Path, errors: list[str]) -> list[x509.CertificateRevocationList]:
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            errors.append(f"{path.name}: missing")
            return []
        with self._lock:
            cached = self._files.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            loaded = [_load_crl(path.read_bytes())]
        except (OSError, ValueError):
            errors.append(f"{path.name}: unreadable")
            return []
        with self._lock:
            self._files[path] = (mtime, loaded)
        return loaded

    def _url_crl(
        self, url: str, issuer: x509.Certificate, now: dt.datetime, errors: list[str]
    ) -> x509.CertificateRevocationList | None:
        with self._lock:
            cached = self._crls.get(url)
        fresh_until = None
        if cached is not None:
            nu = cached.crl.next_update_utc
            refresh_at = cached.fetched_at + dt.timedelta(seconds=self.settings.crl_refresh_interval)
            fresh_until = min(refresh_at, nu) if nu is not None else refresh_at
            if now < fresh_until:
                return cached.crl
        try:
            crl = _load_crl(self.fetch(url, None, self.settings.fetch_timeout))
        except Exception as exc:  # noqa: BLE001 — network or parse failure: keep the cached one
            errors.append(f"{url}: {type(exc).__name__}")
            return cached.crl if cached is not None else None
        if crl.issuer == issuer.subject and not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            errors.append(f"{url}: CRL signature invalid")
            return cached.crl if cached is not None else None
        with self._lock:
            self._crls[url] = _CachedCrl(crl, now)
        log.info("CRL fetched from %s (%d entries)", url, len(crl))
        return crl


_DER = Encoding.DER


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _same_issuer(single: ocsp.OCSPSingleResponse, issuer: x509.Certificate) -> bool:
    algo = single.hash_algorithm
    h = hashes.Hash(algo)
    h.update(issuer.subject.public_bytes())
    name_hash = h.finalize()
    return bool(name_hash == single.issuer_name_hash and _key_hash(issuer, algo) == single.issuer_key_hash)


def _key_hash(cert: x509.Certificate, algo: hashes.HashAlgorithm) -> bytes:
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    # the BIT STRING content of subjectPublicKey: SubjectKeyIdentifier.from_public_key does the
    # same parsing; reuse its digest for SHA-1 and re-hash for other algorithms
    if isinstance(algo, hashes.SHA1):
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    raw = _spki_bits(spki)
    h = hashes.Hash(algo)
    h.update(raw)
    return h.finalize()


def _spki_bits(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a DER SubjectPublicKeyInfo (skip SEQUENCE, AlgorithmIdentifier,
    BIT STRING header and its unused-bits byte)."""

    def header(data: bytes, at: int) -> tuple[int, int]:
        length = data[at + 1]
        if length & 0x80:
            n = length & 0x7F
            return at + 2 + n, int.from_bytes(data[at + 2 : at + 2 + n], "big")
        return at + 2, length

    start, _ = header(spki, 0)
    alg_start, alg_len = header(spki, start)
    bits_start, bits_len = header(spki, alg_start + alg_len)
    return spki[bits_start + 1 : bits_start + bits_len]


def _responder_is(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if resp.responder_name is not None:
        return bool(resp.responder_name == cert.subject)
    if resp.responder_key_hash is not None:
        return bool(
            resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        )
    return False
