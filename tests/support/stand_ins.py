"""Two small HTTP servers the provider tests run in-process: an OpenID Connect issuer whose ID
tokens each test writes itself (to prove what Keyturn refuses: a wrong nonce, audience,
signature…), and a stand-in for GitHub's OAuth endpoints and API (GitHub cannot be reached from
a test). Both are real HTTP on 127.0.0.1; Keyturn talks to them as it would to the real ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

Route = Callable[["_Handler"], tuple[int, Any, dict[str, str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def path_only(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def form(self) -> dict[str, str]:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length).decode()
        return {k: v[0] for k, v in parse_qs(body).items()}

    def _answer(self) -> None:
        self.server.calls.append(f"{self.command} {self.path_only}")
        route = self.server.routes.get((self.command, self.path_only))
        if route is None:
            status, body, headers = 404, {"message": "Not Found"}, {}
        else:
            status, body, headers = route(self)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[tuple[str, str], Route] = {}
        self.calls: list[str] = []

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def _serving(server: _Server) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key())
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm="ES256", headers={"kid": self.kid, **header}
        )


class TestIssuer:
    """Discovery, keys, and a token endpoint answering whatever ID token the test set."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self.server = _Server()
        self.issuer = self.server.origin
        self.keys = [SigningKey("key-1")]
        self.id_token: str | None = None
        self.server.routes.update(
            {
                ("GET", "/.well-known/openid-configuration"): self._discovery,
                ("GET", "/jwks"): lambda _h: (
                    200,
                    {"keys": [k.public_jwk() for k in self.keys]},
                    {},
                ),
                ("POST", "/token"): self._token,
            }
        )

    def _discovery(self, _handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        return (
            200,
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["ES256", "RS256"],
            },
            {},
        )

    def _token(self, handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        form = handler.form()
        if form.get("grant_type") != "authorization_code" or not form.get("code_verifier"):
            return 400, {"error": "invalid_request"}, {}
        return 200, {"access_token": "at", "token_type": "Bearer", "id_token": self.id_token}, {}

    @property
    def calls(self) -> list[str]:
        return self.server.calls

    @contextmanager
    def running(self) -> Iterator[TestIssuer]:
        with _serving(self.server):
            yield self


@dataclass
class GitHubUser:
    id: int
    login: str
    emails: list[dict[str, Any]]


class GitHubStandIn:
    """GitHub's authorize redirect, token endpoint (with PKCE), /user and /user/emails."""

    CLIENT_ID = "gh-client-id"
    CLIENT_SECRET = "gh-client-secret-0123456789"

    def __init__(self) -> None:
        self.server = _Server()
        self.origin = self.server.origin
        self.next_user: GitHubUser | None = None
        self._codes: dict[str, tuple[str, str, GitHubUser]] = {}
        self._tokens: dict[str, GitHubUser] = {}
        self.server.routes.update(
            {
                ("GET", "/login/oauth/authorize"): self._authorize,
                ("POST", "/login/oauth/access_token"): self._token,
                ("GET", "/api/user"): self._user,
                ("GET", "/api/user/emails"): self._emails,
            }
        )

    def settings(self) -> dict[str, str]:
        return {
            "github_client_id": self.CLIENT_ID,
            "github_client_secret": self.CLIENT_SECRET,
            "github_authorize_url": f"{self.origin}/login/oauth/authorize",
            "github_token_url": f"{self.origin}/login/oauth/access_token",
            "github_api_url": f"{self.origin}/api",
        }

    def _authorize(self, handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        query = handler.query
        assert self.next_user is not None
        assert query["client_id"] == self.CLIENT_ID and query["code_challenge_method"] == "S256"
        code = secrets.token_hex(10)
        self._codes[code] = (query["code_challenge"], query["redirect_uri"], self.next_user)
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        return 302, None, {"location": target}

    def _token(self, handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        form = handler.form()
        # GitHub answers 200 with an error member, as the real one does.
        if (form.get("client_id"), form.get("client_secret")) != (
            self.CLIENT_ID,
            self.CLIENT_SECRET,
        ):
            return 200, {"error": "incorrect_client_credentials"}, {}
        found = self._codes.pop(form.get("code", ""), None)
        if found is None:
            return 200, {"error": "bad_verification_code"}, {}
        challenge, redirect_uri, user = found
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            return 200, {"error": "bad_verification_code"}, {}
        if form.get("redirect_uri") != redirect_uri:
            return 200, {"error": "redirect_uri_mismatch"}, {}
        token = secrets.token_hex(20)
        self._tokens[token] = user
        return (
            200,
            {"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"},
            {},
        )

    def _authorized(self, handler: _Handler) -> GitHubUser | None:
        scheme, _, token = handler.headers.get("authorization", "").partition(" ")
        return self._tokens.get(token) if scheme.lower() == "bearer" else None

    def _user(self, handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        user = self._authorized(handler)
        if user is None:
            return 401, {"message": "Requires authentication"}, {}
        return 200, {"id": user.id, "login": user.login, "email": None}, {}

    def _emails(self, handler: _Handler) -> tuple[int, Any, dict[str, str]]:
        user = self._authorized(handler)
        if user is None:
            return 401, {"message": "Requires authentication"}, {}
        return 200, user.emails, {}

    @contextmanager
    def running(self) -> Iterator[GitHubStandIn]:
        with _serving(self.server):
            yield self
