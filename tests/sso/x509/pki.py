"""A test PKI made in the tests: root CA, intermediate, user certificates (good, expired,
revoked, foreign, wrong EKU, …), a CRL server and an OCSP responder on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UPN = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
SMARTCARD_LOGON = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
QSCD_POLICY = x509.ObjectIdentifier("0.4.0.194112.1.2")

Key = ec.EllipticCurvePrivateKey


def _utf8_other_name(value: str) -> bytes:
    body = value.encode()
    inner = b"\x0c" + _len(len(body)) + body
    return b"\xa0" + _len(len(inner)) + inner


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _name(cn: str, *extra: x509.NameAttribute) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "RS"), *extra, x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: Key
    name: str

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass
class Responder:
    """CRL files and OCSP answers served over http; counts requests; can be switched off."""

    pki: CardPki
    down: bool = False
    ocsp_down: bool = False
    """OCSP only answers 503 (the CRL is still served): the provider falls back to the CRL."""
    ocsp_requests: int = 0
    crl_requests: int = 0
    bad_nonce: bool = False
    delay: float = 0.0
    delegate: Issued | None = None
    """Sign OCSP answers with this delegated responder certificate instead of the CA."""
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    def start(self) -> int:
        responder = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                responder.crl_requests += 1
                if responder.down or not self.path.endswith(".crl"):
                    self.send_error(503)
                    return
                issuer = responder.pki.root if self.path == "/root.crl" else responder.pki.inter
                body = responder.pki.crl(issuer).public_bytes(serialization.Encoding.DER)
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                responder.ocsp_requests += 1
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if responder.delay:
                    time.sleep(responder.delay)  # a hung responder (network time, not business time)
                if responder.down or responder.ocsp_down:
                    self.send_error(503)
                    return
                body = responder.pki.ocsp_answer(
                    ocsp.load_der_ocsp_request(raw),
                    bad_nonce=responder.bad_nonce,
                    delegate=responder.delegate,
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class CardPki:
    base: str  # http://127.0.0.1:port
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    revoked: set[int] = field(default_factory=set)
    issued: dict[str, Issued] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = self._ca("Test Root CA", None, path_len=1)
        self.inter = self._ca("Test Issuing CA", self.root, path_len=0, revocation=True)
        self.foreign_root = self._ca("Foreign Root CA", None, path_len=1)

    # -- building blocks -----------------------------------------------------------------------
    def _key(self) -> Key:
        return ec.generate_private_key(ec.SECP256R1())

    def _ca(self, cn: str, parent: Issued | None, *, path_len: int, revocation: bool = False) -> Issued:
        key = self._key()
        subject = _name(cn, x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test City"))
        issuer_cert = parent.cert if parent else None
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=30))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if parent is not None:
            b = b.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False
            )
        if revocation:
            b = self._revocation_exts(b, "root.crl")
        cert = b.sign(parent.key if parent else key, hashes.SHA256())
        return Issued(cert, key, cn)

    def _revocation_exts(self, b: x509.CertificateBuilder, crl: str) -> x509.CertificateBuilder:
        return b.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(f"{self.base}/{crl}")], None, None, None
                    )
                ]
            ),
            critical=False,
        ).add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(f"{self.base}/ocsp"),
                    )
                ]
            ),
            critical=False,
        )

    def user(
        self,
        name: str,
        *,
        upn: str | None = None,
        email: str | None = None,
        cn: str | None = None,
        subject_serial: str | None = None,
        given: str | None = None,
        surname: str | None = None,
        eku: list[x509.ObjectIdentifier] | None = None,
        issuer: Issued | None = None,
        days: tuple[int, int] = (-1, 365),
        hardware: bool = False,
        revoked: bool = False,
        digital_signature: bool = True,
    ) -> Issued:
        issuer = issuer or self.inter
        key = self._key()
        attrs = []
        if subject_serial:
            attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, subject_serial))
        if given:
            attrs.append(x509.NameAttribute(NameOID.GIVEN_NAME, given))
        if surname:
            attrs.append(x509.NameAttribute(NameOID.SURNAME, surname))
        serial = x509.random_serial_number()
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn or name, *attrs))
            .issuer_name(issuer.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(self.now + dt.timedelta(days=days[0]))
            .not_valid_after(self.now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature, False, not digital_signature, False, False, False, False, False, False
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    eku if eku is not None else [ExtendedKeyUsageOID.CLIENT_AUTH, SMARTCARD_LOGON]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
            )
        )
        sans: list[x509.GeneralName] = []
        if upn:
            sans.append(x509.OtherName(UPN, _utf8_other_name(upn)))
        if email:
            sans.append(x509.RFC822Name(email))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if hardware:
            b = b.add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(QSCD_POLICY, None)]), critical=False
            )
        if issuer is self.inter:
            b = self._revocation_exts(b, "inter.crl")
        cert = b.sign(issuer.key, hashes.SHA256())
        if revoked:
            self.revoked.add(serial)
        issued = Issued(cert, key, name)
        self.issued[name] = issued
        return issued

    def server_cert(self) -> Issued:
        key = self._key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(self.root.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.root.key, hashes.SHA256())
        )
        return Issued(cert, key, "server")

    # -- revocation ----------------------------------------------------------------------------
    def crl(self, issuer: Issued) -> x509.CertificateRevocationList:
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(self.now - dt.timedelta(minutes=5))
            .next_update(self.now + dt.timedelta(days=1))
        )
        for issued in self.issued.values():
            if issued.cert.serial_number in self.revoked and issued.cert.issuer == issuer.cert.subject:
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(issued.cert.serial_number)
                    .revocation_date(self.now - dt.timedelta(hours=1))
                    .build()
                )
        return b.sign(issuer.key, hashes.SHA256())

    def ocsp_signer(self, *, ocsp_signing: bool = True) -> Issued:
        """A delegated OCSP responder certificate issued by the issuing CA (RFC 6960 §4.2.2.2)."""
        key = self._key()
        eku = [ExtendedKeyUsageOID.OCSP_SIGNING] if ocsp_signing else [ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"OCSP Responder {ocsp_signing}"))
            .issuer_name(self.inter.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .sign(self.inter.key, hashes.SHA256())
        )
        return Issued(cert, key, "ocsp")

    def ocsp_answer(
        self, req: ocsp.OCSPRequest, *, bad_nonce: bool = False, delegate: Issued | None = None
    ) -> bytes:
        target = next(
            (i for i in [*self.issued.values(), self.inter] if i.cert.serial_number == req.serial_number),
            None,
        )
        if target is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        issuer = self.inter if target.cert.issuer == self.inter.cert.subject else self.root
        revoked = target.cert.serial_number in self.revoked
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=target.cert,
            issuer=issuer.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=self.now - dt.timedelta(minutes=1),
            next_update=self.now + dt.timedelta(hours=1),
            revocation_time=self.now - dt.timedelta(hours=1) if revoked else None,
            revocation_reason=None,
        )
        signer = delegate if delegate is not None and issuer is self.inter else issuer
        b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        if signer is not issuer:
            b = b.certificates([signer.cert])
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            b = b.add_extension(x509.OCSPNonce(b"x" * 16 if bad_nonce else nonce), critical=False)
        except x509.ExtensionNotFound:
            pass
        return b.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # -- files ---------------------------------------------------------------------------------
    def write(self, folder: Path) -> dict[str, Path]:
        """CA folder (root only: the intermediate is sent by the client or found here below),
        a bundle for TLS verification, the server's certificate and every user's files."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ca").mkdir(exist_ok=True)
        (folder / "ca" / "root.pem").write_bytes(self.root.pem)
        (folder / "ca" / "issuing.pem").write_bytes(self.inter.pem)
        (folder / "tls-ca.pem").write_bytes(self.root.pem + self.inter.pem)
        (folder / "tls-ca-all.pem").write_bytes(self.root.pem + self.inter.pem + self.foreign_root.pem)
        server = self.server_cert()
        (folder / "server.pem").write_bytes(server.pem)
        (folder / "server.key").write_bytes(server.key_pem)
        out = {"ca": folder / "ca", "tls_ca": folder / "tls-ca.pem", "server": folder / "server.pem"}
        for name, issued in self.issued.items():
            (folder / f"{name}.pem").write_bytes(issued.pem)
            (folder / f"{name}.key").write_bytes(issued.key_pem)
            out[name] = folder / f"{name}.pem"
        return out


def make_pki() -> tuple[CardPki, Responder]:
    """Start the responder first (the certificates name its URL), then issue."""
    responder = Responder(pki=None)  # type: ignore[arg-type]
    port = responder.start()
    pki = CardPki(base=f"http://127.0.0.1:{port}")
    responder.pki = pki
    pki.user(
        "good", upn="card.user@example.test", email="card.user@example.test", given="Card", surname="User"
    )
    pki.user("hardware", upn="card.user@example.test", hardware=True)
    pki.user("expired", upn="card.user@example.test", days=(-400, -10))
    pki.user("revoked", upn="card.user@example.test", revoked=True)
    pki.user("foreign", upn="card.user@example.test", issuer=pki.foreign_root)
    pki.user("not_yet_valid", upn="card.user@example.test", days=(10, 400))
    pki.user("wrong_eku", upn="card.user@example.test", eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    pki.user("server_eku", upn="card.user@example.test", eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    pki.user("no_signature", upn="card.user@example.test", digital_signature=False)
    pki.user("unmapped", upn="nobody@example.test")
    pki.user("email_only", email="mail.user@example.test")
    pki.user("serial_only", subject_serial="PNORS-1234567", cn="Serial Person")
    pki.user(
        "newcomer", cn="Jelena Đorđević", given="Jelena", surname="Đorđević", subject_serial="PNORS-7777"
    )
    return pki, responder
