"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, plain, STARTTLS or implicit TLS,
with AUTH, and scripted replies (4xx a few times, 5xx for an address)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER = "keyturn"
PASSWORD = "s3cret pass"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Certificate:
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, tmp_path: Any) -> ssl.SSLContext:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.cert_pem.decode())


def self_signed_certificate() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    defer_next: int = 0  # answer 451 to this many RCPT commands
    reject: set[str] = field(default_factory=set)  # answer 550 for these recipients
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if self.defer_next > 0:
                self.defer_next -= 1
                return "451 4.3.0 Try again later"
        if address in self.reject:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself (its default, True, sends nothing).
    return AuthResult(success=ok, handled=False)


class SmtpServer:
    """One aiosmtpd server; `start()` may be called after the sender first tried it."""

    def __init__(
        self,
        *,
        port: int,
        mode: str = "plain",
        tls: ssl.SSLContext | None = None,
        auth: bool = True,
    ) -> None:
        self.port = port
        self.handler = Handler()
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs.update(authenticator=_authenticate, auth_required=True)
            # aiosmtpd counts only STARTTLS as TLS; an smtps connection is TLS from the start.
            kwargs["auth_require_tls"] = mode == "starttls"
        if mode == "starttls":
            kwargs.update(tls_context=tls, require_starttls=True)
        elif mode == "smtps":
            kwargs["ssl_context"] = tls
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=port, server_hostname="127.0.0.1", **kwargs
        )
        self.running = False

    def start(self) -> None:
        with warnings.catch_warnings():
            # aiosmtpd warns when AUTH is allowed without TLS: the plain-SMTP test wants it.
            warnings.simplefilter("ignore")
            self._controller.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._controller.stop()
            self.running = False

    @property
    def received(self) -> list[Received]:
        return self.handler.received
