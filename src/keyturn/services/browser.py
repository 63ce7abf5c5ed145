"""Browser mode: CSRF tokens bound to a session, and the origin check of cookie requests.

A cookie travels with every request the browser makes, including ones another site triggers,
so a request authenticated by cookie that changes state must also prove it was written by our
own pages: it echoes the readable `csrf_token` cookie in the `X-CSRF-Token` header (another
site cannot read our cookies), and that token carries an HMAC over the session id, so a token
planted from a sibling subdomain or copied from another session does not pass either
(OWASP CSRF Prevention Cheat Sheet, "signed double-submit cookie").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.sealing import Sealer
from keyturn.storage.db import Database
from keyturn.storage.secrets import get_or_create_secret

CSRF_SECRET_NAME = "csrf"  # noqa: S105 - the name of a row, not the secret
MAX_CSRF_TOKEN_CHARS = 256
_NONCE_BYTES = 16
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL as browsers send it in `Origin`; None when it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}"


class BrowserService:
    """Mints and checks the CSRF tokens of browser sessions; call `load_key()` once at start."""

    def __init__(
        self, settings: Settings, database: Database, clock: Clock, *, sealer: Sealer
    ) -> None:
        self._database = database
        self._sealer = sealer
        self._clock = clock
        self._key: bytes | None = None
        configured = settings.public_origin or settings.effective_issuer
        self.public_origin = origin_of(configured)
        self._accepted_origins = self._origins_accepted(settings)

    def load_key(self) -> None:
        """Read the shared CSRF key (creating it on first start); every instance uses the same."""
        with self._database.transaction() as connection:
            self._key = get_or_create_secret(
                connection, CSRF_SECRET_NAME, now=self._clock.now(), sealer=self._sealer
            )

    def _origins_accepted(self, settings: Settings) -> frozenset[str]:
        if self.public_origin is None:
            return frozenset()
        accepted = {self.public_origin}
        parts = urlsplit(self.public_origin)
        # In development over plain http, 127.0.0.1, localhost and [::1] are one machine: who
        # opens http://localhost:8000 of a server on 127.0.0.1:8000 is no attacker.
        is_local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if settings.env == "development" and is_local:
            port = f":{parts.port}" if parts.port else ""
            accepted |= {f"http://{host}{port}" for host in ("127.0.0.1", "localhost", "[::1]")}
        return frozenset(accepted)

    def _mac(self, session_id: str, nonce: bytes) -> bytes:
        if self._key is None:
            raise RuntimeError("BrowserService.load_key() was not called")
        message = b"keyturn-csrf\x00" + session_id.encode() + b"\x00" + nonce
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def new_csrf_token(self, session_id: str) -> str:
        """A fresh CSRF token for the session: a random nonce and the HMAC binding it."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return f"{_b64(nonce)}.{_b64(self._mac(session_id, nonce))}"

    def is_csrf_token_of(self, token: str | None, session_id: str) -> bool:
        """Whether `token` was minted by us for this session."""
        if not token or len(token) > MAX_CSRF_TOKEN_CHARS:
            return False
        nonce_text, dot, mac_text = token.partition(".")
        if not dot:
            return False
        try:
            nonce = base64.urlsafe_b64decode(nonce_text + "=" * (-len(nonce_text) % 4))
        except ValueError:
            return False
        if len(nonce) != _NONCE_BYTES:
            return False
        expected = _b64(self._mac(session_id, nonce)).encode()
        return hmac.compare_digest(expected, mac_text.encode("utf-8", "surrogateescape"))

    def is_origin_allowed(self, origin: str | None) -> bool:
        """Absent `Origin` passes (old browsers, same-origin GETs); present, it must be ours."""
        if origin is None:
            return True
        return origin_of(origin) in self._accepted_origins if origin != "null" else False

    def check_origin(self, origin: str | None) -> None:
        """Raises CsrfFailedError when a browser says the request comes from another site."""
        if not self.is_origin_allowed(origin):
            # The expected origin is public; naming it tells an operator what to configure.
            raise errors.CsrfFailedError(
                f"The request comes from another site: browsers must use {self.public_origin}"
                " (set KEYTURN_PUBLIC_ORIGIN when Keyturn is reached under another address)."
            )

    def check_csrf(
        self,
        *,
        session_id: str,
        header_token: str | None,
        cookie_token: str | None,
        origin: str | None,
    ) -> None:
        """Refuse a cookie-authenticated, state-changing request that our pages did not write.

        Raises CsrfFailedError when the Origin is foreign, the X-CSRF-Token header is missing or
        differs from the csrf cookie, or the token is not bound to this session.
        """
        self.check_origin(origin)
        if not header_token or not cookie_token:
            raise errors.CsrfFailedError(
                "Send the csrf_token cookie's value in the X-CSRF-Token header."
            )
        if not hmac.compare_digest(
            header_token.encode("utf-8", "surrogateescape"),
            cookie_token.encode("utf-8", "surrogateescape"),
        ):
            raise errors.CsrfFailedError("The X-CSRF-Token header does not match the cookie.")
        if not self.is_csrf_token_of(cookie_token, session_id):
            raise errors.CsrfFailedError("The CSRF token does not belong to this session.")
