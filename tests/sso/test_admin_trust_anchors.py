"""The console's card trust anchors page: the IT administrator uploads a CA (with a reason,
audited as critical) and stops trusting it; a non-CA certificate is refused, nothing stored."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from iam.admin import Role
from iam.models.audit import AuditEvent
from iam.services import Services
from sso.x509.models import UploadedCA
from tests.iam.admin.helpers import person, sign_in


def _cert(cn: str, *, ca: bool) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_upload_and_remove_a_ca(client: Any, services: Services) -> None:
    admin = person(services, Role.IT_ADMIN)
    sign_in(client, services, admin)
    html = client.get("/admin/operations/trust-anchors").get_data(as_text=True)
    token = _csrf(html)
    resp = client.post(
        "/admin/operations/trust-anchors/upload",
        data={
            "csrf_token": token,
            "reason": "leaf",
            "certificate": (io.BytesIO(_cert("Leaf", ca=False)), "l.pem"),
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    with services.transaction() as s:
        assert s.scalars(select(UploadedCA)).first() is None
    resp = client.post(
        "/admin/operations/trust-anchors/upload",
        data={
            "csrf_token": token,
            "reason": "new card issuer",
            "certificate": (io.BytesIO(_cert("Test Card CA", ca=True)), "ca.pem"),
        },
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    html = client.get("/admin/operations/trust-anchors").get_data(as_text=True)
    assert "CN=Test Card CA" in html
    with services.transaction() as s:
        row = s.scalars(select(UploadedCA)).one()
        sha = row.sha256
    resp = client.post(
        f"/admin/operations/trust-anchors/{sha}/remove",
        data={"csrf_token": token, "reason": "issuer retired"},
    )
    assert resp.status_code == 302
    with services.transaction() as s:
        assert s.get(UploadedCA, sha) is None
        events = {e.event: e for e in s.scalars(select(AuditEvent).where(AuditEvent.event.like("card.ca_%")))}
    assert (
        events["card.ca_added"].actor == admin.id
        and events["card.ca_added"].details["reason"] == "new card issuer"
    )
    assert events["card.ca_removed"].details["reason"] == "issuer retired"
    assert events["card.ca_removed"].severity == "critical"
