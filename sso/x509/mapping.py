"""Certificate → account: ordered rules from ``x509.mapping``; the first rule that finds exactly
one account wins, a rule that finds two refuses (never guess between people)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam.config import X509MappingRule, X509Settings
from iam.directory.base import Directory, DirectoryUser
from sso.x509.certs import CardFacts, CertificateRefused, ext, name_oid, subject_values
from sso.x509.models import CardBinding

#: Attribute labels Windows uses in ``X509:<I>…`` (certutil / AD Users and Computers).
_WINDOWS_LABELS = {
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.GIVEN_NAME: "G",
    NameOID.SURNAME: "SN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.TITLE: "T",
}


@dataclass(frozen=True, slots=True)
class Mapped:
    user: DirectoryUser
    rule: str
    binding_id: str | None = None


def windows_dn(name: x509.Name, *, sep: str = ",") -> str:
    """A name as Windows writes it in altSecurityIdentities: RDNs in encoded (X.500) order,
    most significant first, e.g. ``DC=test,DC=example,CN=Example Issuing CA``."""
    return sep.join(rdn.rfc4514_string(_WINDOWS_LABELS) for rdn in name.rdns)


def _serial_reversed(cert: x509.Certificate) -> list[str]:
    """The serial number's bytes in reversed order, hex (KB5014754: ``<SR>`` is byte-reversed).
    When the top bit is set the DER integer carries a leading 00; both forms are tried."""
    n = cert.serial_number
    raw = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    forms = [raw[::-1].hex()]
    if raw[0] & 0x80:
        forms.append((b"\x00" + raw)[::-1].hex())
    return forms


def alt_security_identities(cert: x509.Certificate) -> list[str]:
    """The strong ``altSecurityIdentities`` values (KB5014754) that name this certificate:
    issuer + serial number, subject key identifier, SHA-1 of the certificate (``Cert
    Hash(sha1)`` in certutil, which AD calls SHA1-PUKEY) and, for tools that hash the public
    key instead, SHA-1 of the public key. Weak forms (subject, RFC822) are never used."""
    values: list[str] = []
    for sep in (",", ", "):
        issuer = windows_dn(cert.issuer, sep=sep)
        values.extend(f"X509:<I>{issuer}<SR>{sr}" for sr in _serial_reversed(cert))
    ski = ext(cert, x509.SubjectKeyIdentifier)
    if isinstance(ski, x509.SubjectKeyIdentifier):
        values.append(f"X509:<SKI>{ski.digest.hex()}")
    der = cert.public_bytes(serialization.Encoding.DER)
    values.append(f"X509:<SHA1-PUKEY>{hashlib.sha1(der).hexdigest()}")  # noqa: S324 — AD's format
    spki = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    values.append(f"X509:<SHA1-PUKEY>{spki.hex()}")
    return list(dict.fromkeys(values))


def _one(users: list[DirectoryUser], rule: str) -> DirectoryUser | None:
    unique = {u.id: u for u in users}
    if len(unique) > 1:
        raise CertificateRefused(
            "ambiguous", "The certificate matches more than one account; contact the help desk."
        )
    return next(iter(unique.values()), None)


def find_binding(session: Session, facts: CardFacts) -> CardBinding | None:
    """An active binding: the exact certificate (thumbprint) first, then issuer + serial for
    bindings made in that form."""
    row = session.scalar(
        select(CardBinding).where(
            CardBinding.thumbprint == facts.thumbprint, CardBinding.revoked_at.is_(None)
        )
    )
    if row is not None:
        return row
    return session.scalar(
        select(CardBinding).where(
            CardBinding.issuer == facts.issuer,
            CardBinding.serial == facts.serial,
            CardBinding.match == "issuer_serial",
            CardBinding.revoked_at.is_(None),
        )
    )


def apply_rule(
    rule: X509MappingRule,
    cert: x509.Certificate,
    facts: CardFacts,
    session: Session,
    directory: Directory,
) -> Mapped | None:
    if rule.kind == "binding":
        row = find_binding(session, facts)
        if row is None:
            return None
        user = directory.get_user(row.sub)
        return Mapped(user, "binding", row.id) if user else None
    if rule.kind == "upn":
        found = [u for upn in facts.upns if (u := directory.find_user(upn=upn)) is not None]
        user = _one(found, rule.kind)
    elif rule.kind == "email":
        user = _one(directory.find_users_by("mail", list(facts.emails)), rule.kind)
    elif rule.kind == "subject":
        values = subject_values(cert, name_oid(rule.field))
        user = _one(directory.find_users_by(rule.attribute, values), rule.kind)
    else:  # ad_alt_security_identities
        user = _one(
            directory.find_users_by("altSecurityIdentities", alt_security_identities(cert)), rule.kind
        )
    return Mapped(user, rule.kind) if user else None


def map_certificate(
    cert: x509.Certificate,
    settings: X509Settings,
    session: Session,
    directory: Directory,
) -> Mapped:
    facts = CardFacts.of(cert)
    for rule in settings.mapping:
        found = apply_rule(rule, cert, facts, session, directory)
        if found is not None:
            return found
    raise CertificateRefused("no_account", "No account is linked to this certificate.")
