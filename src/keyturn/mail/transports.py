"""How a message leaves Keyturn: over SMTP, or, in development without SMTP, into a file.

A transport raises TemporaryDeliveryError when trying again later may work (connection
refused or lost, timeout, TLS or login failure, a 4xx reply) and PermanentDeliveryError when
it will not (a 5xx reply, RFC 5321 §4.2.1).
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

logger = logging.getLogger("keyturn.mail")
DEVELOPMENT_MAIL_DIR: Final = Path(".keyturn") / "mail"


class DeliveryError(Exception):
    """A delivery that did not happen; `reason` is a short metric label, str() the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class TemporaryDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class Transport(Protocol):
    kind: str

    async def send(self, message: bytes, *, envelope_from: str, recipient: str, label: str) -> str:
        """Deliver one message; returns where it went (safe to log: no link, no token)."""
        ...

    async def close(self) -> None: ...


class SmtpTransport:
    """aiosmtplib over `smtp://` (plain, or STARTTLS required with `?starttls=true`) or
    `smtps://` (TLS from the first byte), logging in when the URL names a user. One connection
    serves a batch and is closed by `close()`; any error drops it, the next send reconnects."""

    kind = "smtp"

    def __init__(
        self, url: str, *, timeout: float, tls_context: ssl.SSLContext | None = None
    ) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._implicit_tls = parts.scheme == "smtps"
        self._start_tls = not self._implicit_tls and query.get("starttls", ["false"])[0] in (
            "true",
            "1",
            "yes",
        )
        self._hostname = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout = timeout
        self._tls_context = tls_context or (
            ssl.create_default_context() if (self._implicit_tls or self._start_tls) else None
        )
        self._client: aiosmtplib.SMTP | None = None

    @property
    def description(self) -> str:
        """The server, without the user or password."""
        mode = "smtps" if self._implicit_tls else "smtp+starttls" if self._start_tls else "smtp"
        return f"{mode}://{self._hostname}:{self._port}"

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self._hostname,
            port=self._port,
            username=self._username,
            password=self._password,
            timeout=self._timeout,
            use_tls=self._implicit_tls,
            # Required when asked for, never opportunistic: a downgrade would go unnoticed.
            start_tls=self._start_tls,
            tls_context=self._tls_context,
        )
        try:
            await client.connect()
        except BaseException as error:
            client.close()
            raise classify_smtp_error(error) from error
        self._client = client
        return client

    async def send(self, message: bytes, *, envelope_from: str, recipient: str, label: str) -> str:
        client = await self._connected()
        try:
            await client.sendmail(envelope_from, [recipient], message)
        except BaseException as error:
            # After an error the session's state is unknown: start the next one afresh.
            await self.close()
            raise classify_smtp_error(error) from error
        return self.description

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


def classify_smtp_error(error: BaseException) -> DeliveryError:
    """Which failures are worth another try (RFC 5321 §4.2.1: 4yz transient, 5yz permanent)."""
    if isinstance(error, DeliveryError):
        return error
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        error = error.recipients[0]
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        # A wrong password is the operator's to fix; the mail waits for it, within the bound.
        return TemporaryDeliveryError("auth", f"login refused: {error.code} {error.message}")
    if isinstance(error, aiosmtplib.SMTPResponseException) and 400 <= error.code < 600:
        detail = f"{error.code} {error.message}"
        if error.code >= 500:
            return PermanentDeliveryError("rejected", detail)
        return TemporaryDeliveryError("deferred", detail)
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TemporaryDeliveryError("timeout", "the SMTP server did not answer in time")
    if isinstance(error, ssl.SSLError | aiosmtplib.SMTPNotSupported):
        return TemporaryDeliveryError("tls", f"TLS failed: {error}")
    if isinstance(error, aiosmtplib.SMTPException | OSError):
        return TemporaryDeliveryError("connection", f"SMTP connection failed: {error}")
    raise error


class FileTransport:
    """Development without SMTP: each message becomes an `.eml` file a mail client opens.

    The folder is 0700 and each file 0600: they hold working reset links.
    """

    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def description(self) -> str:
        return f".eml files in {self.directory.resolve()}"

    async def send(self, message: bytes, *, envelope_from: str, recipient: str, label: str) -> str:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.chmod(0o700)
            path = self.directory / f"{label}.eml"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(message)
        except OSError as error:
            raise TemporaryDeliveryError("file", f"cannot write the .eml file: {error}") from error
        return str(path.resolve())

    async def close(self) -> None:
        return None
