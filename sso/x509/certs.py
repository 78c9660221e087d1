"""Reading certificates: parsing, names, fingerprints, the fields mapping rules look at."""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
QC_STATEMENTS_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
QC_SSCD_DER = bytes.fromhex("0606040081980104")  # OID 0.4.0.1862.1.4 (QcSSCD), DER-encoded

#: Subject attribute names accepted in settings (case-insensitive), besides dotted OIDs.
NAME_OIDS: dict[str, x509.ObjectIdentifier] = {
    "cn": NameOID.COMMON_NAME,
    "serialnumber": NameOID.SERIAL_NUMBER,
    "uid": NameOID.USER_ID,
    "emailaddress": NameOID.EMAIL_ADDRESS,
    "e": NameOID.EMAIL_ADDRESS,
    "givenname": NameOID.GIVEN_NAME,
    "sn": NameOID.SURNAME,
    "surname": NameOID.SURNAME,
    "o": NameOID.ORGANIZATION_NAME,
    "ou": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "title": NameOID.TITLE,
}


class CertificateRefused(Exception):  # noqa: N818 — reads as the outcome
    """A presented certificate is not accepted. ``reason`` is a stable code for audit and
    tests; the message is one sentence safe to show to the person at the card reader."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unparseable(CertificateRefused):
    def __init__(self) -> None:
        super().__init__("malformed", "The certificate could not be read.")


def load_pem_or_der(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, or the one DER certificate."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise Unparseable() from None


def from_escaped_pem(value: str) -> list[x509.Certificate]:
    """nginx ``$ssl_client_escaped_cert``: the URL-encoded PEM (chain, if any, after it)."""
    return load_pem_or_der(urllib.parse.unquote(value).encode())


def thumbprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def to_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        raise Unparseable() from None


def is_self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def verify_signature(issuer_key: object, signature: bytes, data: bytes, hash_alg: object) -> bool:
    """A signature by ``issuer_key`` over ``data`` (RSA PKCS#1 v1.5, ECDSA, EdDSA)."""
    try:
        if isinstance(issuer_key, rsa.RSAPublicKey):
            issuer_key.verify(signature, data, padding.PKCS1v15(), hash_alg)  # type: ignore[arg-type]
        elif isinstance(issuer_key, ec.EllipticCurvePublicKey):
            issuer_key.verify(signature, data, ec.ECDSA(hash_alg))  # type: ignore[arg-type]
        elif isinstance(issuer_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            issuer_key.verify(signature, data)
        else:
            return False
    except Exception:  # noqa: BLE001 — any failure means "not signed by this key"
        return False
    return True


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the mapping rules and the account request read from a certificate."""

    subject: str
    issuer: str
    serial: str
    thumbprint: str
    upns: tuple[str, ...]
    emails: tuple[str, ...]
    common_name: str | None
    given_name: str | None
    family_name: str | None
    subject_serial: str | None

    @classmethod
    def of(cls, cert: x509.Certificate) -> CardFacts:
        upns: list[str] = []
        emails: list[str] = []
        san = ext(cert, x509.SubjectAlternativeName)
        if isinstance(san, x509.SubjectAlternativeName):
            for other in san.get_values_for_type(x509.OtherName):
                if other.type_id == UPN_OID:
                    value = _der_utf8(other.value)
                    if value:
                        upns.append(value)
            emails.extend(san.get_values_for_type(x509.RFC822Name))
        return cls(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=serial_hex(cert),
            thumbprint=thumbprint(cert),
            upns=tuple(upns),
            emails=tuple(emails) + tuple(subject_values(cert, NameOID.EMAIL_ADDRESS)),
            common_name=_first(subject_values(cert, NameOID.COMMON_NAME)),
            given_name=_first(subject_values(cert, NameOID.GIVEN_NAME)),
            family_name=_first(subject_values(cert, NameOID.SURNAME)),
            subject_serial=_first(subject_values(cert, NameOID.SERIAL_NUMBER)),
        )


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def subject_values(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def name_oid(field: str) -> x509.ObjectIdentifier:
    """A subject attribute from settings: a known name (``serialNumber``) or a dotted OID."""
    known = NAME_OIDS.get(field.casefold())
    if known is not None:
        return known
    return x509.ObjectIdentifier(field)


def _der_utf8(value: bytes) -> str | None:
    """The UPN otherName value: an explicit [0] wrapper around a UTF8String (or the bare
    UTF8String, as some issuers write it)."""
    data = value
    for _ in range(2):
        if len(data) < 2:
            return None
        tag, length, offset = data[0], data[1], 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[2 : 2 + n], "big")
            offset = 2 + n
        body = data[offset : offset + length]
        if tag == 0x0C:  # UTF8String
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if tag != 0xA0:  # [0] EXPLICIT
            return None
        data = body
    return None


def hardware_bound(cert: x509.Certificate, policies: list[str]) -> bool:
    """Does the issuing CA state that the key lives in a hardware token (a smart card, a
    QSCD)? A certificate policy from ``policies`` or the QcSSCD qcStatement says so."""
    wanted = set(policies)
    cp = ext(cert, x509.CertificatePolicies)
    if isinstance(cp, x509.CertificatePolicies) and any(
        p.policy_identifier.dotted_string in wanted for p in cp
    ):
        return True
    try:
        qc = cert.extensions.get_extension_for_oid(QC_STATEMENTS_OID).value
    except x509.ExtensionNotFound:
        return False
    raw = getattr(qc, "value", b"")
    return isinstance(raw, bytes) and QC_SSCD_DER in raw


def crl_urls(cert: x509.Certificate) -> list[str]:
    cdp = ext(cert, x509.CRLDistributionPoints)
    urls: list[str] = []
    if isinstance(cdp, x509.CRLDistributionPoints):
        for point in cdp:
            for name in point.full_name or []:
                if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith("http"):
                    urls.append(name.value)
    return urls


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    aia = ext(cert, x509.AuthorityInformationAccess)
    urls: list[str] = []
    if isinstance(aia, x509.AuthorityInformationAccess):
        for desc in aia:
            if desc.access_method == AuthorityInformationAccessOID.OCSP and isinstance(
                desc.access_location, x509.UniformResourceIdentifier
            ):
                urls.append(desc.access_location.value)
    return urls


__all__ = [
    "CardFacts",
    "CertificateRefused",
    "ExtensionOID",
    "crl_urls",
    "from_escaped_pem",
    "hardware_bound",
    "load_pem_or_der",
    "ocsp_urls",
    "thumbprint",
    "verify_signature",
]
