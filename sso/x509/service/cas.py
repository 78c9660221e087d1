"""CAs an administrator uploads (third-party authorities): trusted by every process, audited
as critical."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from iam import audit
from iam.errors import NotFound, ValidationFailed
from sso.x509.certs import CertificateRefused, is_self_issued, load_pem_or_der, thumbprint, to_pem
from sso.x509.models import UploadedCA


def add_ca(
    session: Session, data: bytes, *, actor: str, ip: str | None = None, reason: str = ""
) -> list[UploadedCA]:
    """Trust the CA certificate(s) in ``data`` (PEM or DER). Critical: it decides who can sign in."""
    try:
        certs = load_pem_or_der(data)
    except CertificateRefused:
        raise ValidationFailed("The file is not a certificate (PEM or DER).") from None
    added: list[UploadedCA] = []
    for cert in certs:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise ValidationFailed(f"{cert.subject.rfc4514_string()} is not a CA certificate.")
        tp = thumbprint(cert)
        if session.get(UploadedCA, tp) is not None:
            continue
        row = UploadedCA(
            sha256=tp,
            subject=cert.subject.rfc4514_string(),
            pem=to_pem(cert),
            not_after=cert.not_valid_after_utc,
            added_by=actor,
        )
        session.add(row)
        added.append(row)
        audit.record(
            session,
            "card.ca_added",
            severity=audit.Severity.CRITICAL,
            actor=actor,
            ip=ip,
            details={
                "subject": row.subject,
                "sha256": tp,
                "self_signed": is_self_issued(cert),
                **({"reason": reason} if reason else {}),
            },
        )
    session.flush()
    return added


def list_anchors(session: Session, anchors: Any) -> list[dict[str, Any]]:
    """The trust anchors and intermediates now in effect (``anchors``: a loaded
    :class:`sso.x509.trust.Anchors`), each with its source (folder or uploaded)."""
    uploaded = set(session.scalars(select(UploadedCA.sha256)))
    rows: list[dict[str, Any]] = []
    for certs in anchors.by_subject.values():
        for cert in certs:
            tp = thumbprint(cert)
            rows.append(
                {
                    "subject": cert.subject.rfc4514_string(),
                    "sha256": tp,
                    "anchor": anchors.is_trusted(cert),
                    "source": "uploaded" if tp in uploaded else "folder",
                    "not_after": cert.not_valid_after_utc.isoformat(),
                }
            )
    return rows


def remove_ca(session: Session, sha256: str, *, actor: str, ip: str | None = None, reason: str = "") -> None:
    row = session.get(UploadedCA, sha256.lower())
    if row is None:
        raise NotFound("There is no uploaded CA with this SHA-256 fingerprint.")
    session.delete(row)
    audit.record(
        session,
        "card.ca_removed",
        severity=audit.Severity.CRITICAL,
        actor=actor,
        ip=ip,
        details={"subject": row.subject, "sha256": row.sha256, **({"reason": reason} if reason else {})},
    )
