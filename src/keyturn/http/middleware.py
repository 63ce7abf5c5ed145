"""One pure-ASGI middleware for every request: a request id, a bound on body size, no
caching of what the API answers, and one access-log line.

Pure ASGI (not BaseHTTPMiddleware) because it runs on the hot path of every token check.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyturn import wire
from keyturn.http.client_ip import IPNetwork, client_ip
from keyturn.observability.logging import PREFORMATTED_FIELDS, json_string, redact

_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_REQUEST_ID_HEADER = wire.HEADER_REQUEST_ID.encode()
# A request id needs to be unique, not secret: a random prefix per process and a counter
# cost no system call on every request, as os.urandom would.
_PROCESS_PREFIX = os.urandom(4).hex()
_SEQUENCE = itertools.count()
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Where the body read here is kept for the hot routes, which take it without another pass
# through receive(); everything else reads it from the replayed stream as usual.
BODY_SCOPE_KEY = "keyturn.body"
# Everything under these answers for one caller (an account, its sessions, tokens, the admin's
# lists): no cache on the way may keep a copy, unless the route itself says otherwise.
_PRIVATE_PREFIXES = ("/api/", "/oauth/")
_NO_STORE = (b"cache-control", b"no-store")
ACCESS_LOGGER = "keyturn.access"
_ACCESS_MESSAGE = "request"
_FORWARDED_FOR = b"x-forwarded-for"


class RequestEnvelope:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        access_log: bool = True,
        trusted_networks: Sequence[IPNetwork] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._access = logging.getLogger(ACCESS_LOGGER) if access_log else None
        self._trusted_networks = trusted_networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        header_value = request_id.encode()

        private = scope["path"].startswith(_PRIVATE_PREFIXES)
        access = self._access
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", header_value)]
                if private and not any(name == b"cache-control" for name, _value in headers):
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)
            # Logged once the last of the body is sent: every answer, the 413 here and the
            # 500 the framework sends for an unexpected error included.
            if (
                access is not None
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and access.isEnabledFor(logging.INFO)
            ):
                self._log_access(access, scope, request_id, status, started)

        if scope["method"] in _BODY_METHODS:
            body = await self._read_bounded_body(scope, receive)
            if body is None:
                await _too_large(send_with_id, self.max_body_bytes)
                return
            scope[BODY_SCOPE_KEY] = body
            receive = _replay(body, receive)
        await self.app(scope, receive, send_with_id)

    def _log_access(
        self, access: logging.Logger, scope: Scope, request_id: str, status: int, started: float
    ) -> None:
        """One line per request. The path only: the query string and the headers are left
        out, since a client may put a token in either (`?access_token=`, Authorization); the
        path is redacted like any logged text."""
        duration_ms = (time.perf_counter() - started) * 1000
        fields = (
            f'"method":{json_string(scope["method"])},"path":{json_string(redact(scope["path"]))},'
            f'"status":{status},"duration_ms":{duration_ms:.3f},'
            f'"request_id":{json_string(request_id)},"client":{json_string(self._client(scope))}'
        )
        # The record made directly: `info()` would walk the stack for the caller's file and
        # line, the same for every line of this logger, on every request.
        record = access.makeRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, _ACCESS_MESSAGE, (), None
        )
        record.__dict__[PREFORMATTED_FIELDS] = fields
        access.handle(record)

    def _client(self, scope: Scope) -> str:
        peer = scope.get("client")
        host: str | None = peer[0] if peer else None
        if not self._trusted_networks:
            return host or "unknown"
        forwarded_for = None
        for name, value in scope["headers"]:
            if name == _FORWARDED_FOR:
                forwarded_for = value.decode("latin-1")
                break
        return client_ip(host, forwarded_for, self._trusted_networks)

    async def _read_bounded_body(self, scope: Scope, receive: Receive) -> bytes | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_HEADER and _SAFE_REQUEST_ID.fullmatch(value):
            return str(value.decode())
    return f"{_PROCESS_PREFIX}{next(_SEQUENCE) & 0xFFFFFFFF:08x}"


def _replay(body: bytes, then: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, the server's own receive: it tells when the client hangs up, so a
        # request waiting for a password hash can be dropped (services/hashing.py).
        return await then()

    return receive


async def _too_large(send: Send, limit: int) -> None:
    body: dict[str, Any] = {
        "error": wire.PAYLOAD_TOO_LARGE,
        "message": f"The request body is larger than {limit} bytes.",
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
