"""Validating a presented card and signing its holder in: the per-process validator (trust
anchors, revocation caches), then mapping and the account's state. Every refusal is audited."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from iam import audit, clock, events
from iam.config import Settings
from iam.directory.base import Directory, DirectoryUser
from sso.x509 import mapping
from sso.x509.certs import CardFacts, CertificateRefused, hardware_bound
from sso.x509.models import CardBinding, CardHolder
from sso.x509.revocation import Fetch, RevocationChecker, http_fetch
from sso.x509.trust import TrustStore, build_path

log = logging.getLogger("sso.x509")


def trust_dir(settings: Settings) -> Path:
    return settings.x509.trust_dir or settings.var_dir / "x509" / "ca"


@dataclass
class Validated:
    """A certificate that passed every check: its path to a trusted CA and what it says."""

    cert: x509.Certificate
    path: list[x509.Certificate]
    facts: CardFacts
    hardware: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def amr(self) -> list[str]:
        """RFC 8176: ``sc`` always; ``hwk`` when the CA states the key is hardware-bound."""
        return ["sc", "hwk"] if self.hardware else ["sc"]


class CardValidator:
    """Per process: the trust anchors and the revocation caches."""

    def __init__(self, settings: Settings, sessions: Any, fetch: Fetch = http_fetch) -> None:
        self.settings = settings
        self.trust = TrustStore(settings.x509, trust_dir(settings), sessions)
        self.revocation = RevocationChecker(settings.x509, fetch)

    def validate(self, certs: list[x509.Certificate], now: dt.datetime | None = None) -> Validated:
        """``certs[0]`` is the client's certificate, the rest intermediates it sent."""
        if not certs:
            raise CertificateRefused("no_certificate", "No certificate was presented.")
        now = now or clock.now()
        leaf, extra = certs[0], certs[1:]
        path = build_path(leaf, extra, self.trust.anchors(), self.settings.x509, now)
        outcome = self.revocation.check(path, now)
        return Validated(
            cert=leaf,
            path=path,
            facts=CardFacts.of(leaf),
            hardware=hardware_bound(leaf, self.settings.x509.hardware_key_policies),
            warnings=outcome.warnings,
        )


def validator_for(services: Any) -> CardValidator:
    """The process's validator (kept in ``services.extensions``)."""
    current = services.extensions.get("sso.x509.validator")
    if current is None:
        current = CardValidator(services.settings, services.reader)
        services.extensions["sso.x509.validator"] = current
    return current  # type: ignore[no-any-return]


def cert_details(facts: CardFacts) -> dict[str, str]:
    return {
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serial": facts.serial,
        "thumbprint": facts.thumbprint,
    }


# -- sign-in ----------------------------------------------------------------------------------
def sign_in(
    session: Session,
    validator: CardValidator,
    directory: Directory,
    certs: list[x509.Certificate],
    *,
    ip: str | None,
    user_agent: str | None,
    proxy_verify: str | None = None,
) -> tuple[DirectoryUser, Validated]:
    """Validate, map and check the account; every refusal is audited with its reason (and,
    behind nginx, with nginx's own verdict ``$ssl_client_verify`` as ``proxy_verify``)."""
    facts: CardFacts | None = None
    try:
        if certs:
            facts = CardFacts.of(certs[0])
        checked = validator.validate(certs)
        found = mapping.map_certificate(checked.cert, validator.settings.x509, session, directory)
        _check_account(found.user)
    except CertificateRefused as exc:
        audit.record(
            session,
            "card.login_refused",
            outcome="failure",
            severity=_severity(exc.reason),
            ip=ip,
            user_agent=user_agent,
            details={
                "reason": exc.reason,
                **(cert_details(facts) if facts else {}),
                **({"proxy_verify": proxy_verify[:200]} if proxy_verify else {}),
            },
        )
        raise
    now = clock.now()
    if found.binding_id:
        row = session.get(CardBinding, found.binding_id)
        if row is not None:
            row.last_used_at = now
    holder = session.get(CardHolder, found.user.id)
    if holder is None:
        session.add(
            CardHolder(
                sub=found.user.id,
                first_used_at=now,
                last_used_at=now,
                last_thumbprint=checked.facts.thumbprint,
            )
        )
    else:
        holder.last_used_at, holder.last_thumbprint = now, checked.facts.thumbprint
    if checked.warnings:
        audit.record(
            session,
            "card.revocation_unknown_accepted",
            severity=audit.Severity.SIGNIFICANT,
            actor=found.user.id,
            subject=found.user.id,
            ip=ip,
            details={**cert_details(checked.facts), "fail_open": True},
        )
    audit.record(
        session,
        "card.verified",
        actor=found.user.id,
        subject=found.user.id,
        ip=ip,
        user_agent=user_agent,
        details={**cert_details(checked.facts), "rule": found.rule, "amr": checked.amr},
    )
    return found.user, checked


def _severity(reason: str) -> audit.Severity:
    if reason in ("revoked", "ca_revoked", "untrusted", "disabled", "locked"):
        return audit.Severity.SIGNIFICANT
    return audit.Severity.NORMAL


#: OpenSSL's verification errors (X509_V_ERR_*) → the reasons of ``card.login_refused``.
TLS_REASONS: dict[int, str] = {
    2: "untrusted",  # unable to get issuer certificate
    7: "untrusted",  # certificate signature failure
    9: "not_yet_valid",
    10: "expired",
    18: "untrusted",  # self-signed certificate
    19: "untrusted",  # self-signed certificate in chain
    20: "untrusted",  # unable to get local issuer certificate
    21: "untrusted",  # unable to verify the first certificate
    22: "path_too_long",  # certificate chain too long
    23: "revoked",
    24: "not_a_ca",  # invalid CA certificate
    25: "path_too_long",  # path length constraint exceeded
    26: "wrong_purpose",  # unsuitable certificate purpose: EKU without clientAuth, or key usage
    # without digitalSignature (OpenSSL does not say which)
    27: "untrusted",  # certificate not trusted
    28: "untrusted",  # certificate rejected
}


def tls_refused(session: Session, *, peer: str, verify_code: int, verify_message: str) -> str:
    """A card the TLS handshake refused (gunicorn terminating TLS): no request, no page — only
    this audit event, with the same reason codes as ``card.login_refused`` (``tls_error`` for
    anything else) and OpenSSL's own words. Returns the reason."""
    reason = TLS_REASONS.get(verify_code, "tls_error")
    audit.record(
        session,
        "card.tls_refused",
        outcome="failure",
        severity=_severity(reason),
        ip=peer or None,
        details={
            "reason": reason,
            "peer": peer,
            "tls_verify_code": verify_code,
            "tls_message": verify_message[:200],
        },
    )
    return reason


def _on_tls_refused(peer: str, *, session: Session, verify_code: int, verify_message: str, **_: Any) -> None:
    tls_refused(session, peer=peer, verify_code=verify_code, verify_message=verify_message)


events.client_certificate_refused.connect(_on_tls_refused)


def _check_account(user: DirectoryUser) -> None:
    if not user.enabled:
        raise CertificateRefused("disabled", "Your account is disabled. Contact the help desk.")
    if user.locked:
        raise CertificateRefused(
            "locked", "Your account is locked. Try again later or contact the help desk."
        )
