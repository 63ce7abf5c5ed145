"""A mixed load (me, refresh, login, logout) from a few threads across several instances,
and a checker that keeps trying every revoked token on every instance."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.support.api import DEFAULT_PASSWORD, bearer

# A logout reaches the other instances through Redis at once, or through the revocation feed
# within its poll interval when Redis is away; the instance that logged out refuses at once.
PROPAGATION_SECONDS = 1.0


@dataclass(frozen=True)
class Revoked:
    access_token: str
    refresh_token: str
    instance: str
    at: float


@dataclass
class MixedLoad:
    instances: list[str]
    emails: list[str]
    phase: str = "before"
    outcomes: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    by_phase: Counter[tuple[str, str, int, str]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    revoked: list[Revoked] = field(default_factory=list)
    accepted_revoked: list[str] = field(default_factory=list)
    revoked_checks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> MixedLoad:
        for n, email in enumerate(self.emails):
            thread = threading.Thread(target=self._user, args=(n, email), daemon=True)
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._check_revoked, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hangs"

    def count(self, action: str, reply: httpx.Response) -> None:
        error = ""
        if reply.status_code >= 400 and reply.content:
            body = reply.json()
            error = str(body.get("error", ""))
            if reply.status_code >= 500 and not (
                reply.status_code == 503
                and error == "service_unavailable"
                and body.get("message")
                and "traceback" not in reply.text.lower()
            ):
                self.unexpected.append(f"{action}: {reply.status_code} {reply.text[:200]}")
        with self._lock:
            self.outcomes[(action, reply.status_code, error)] += 1
            self.by_phase[(self.phase, action, reply.status_code, error)] += 1

    def _user(self, n: int, email: str) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.instances]
        tokens: dict[str, str] | None = None
        logout_unknown = False
        try:
            for step in itertools.count(n):
                if self._stop.is_set():
                    return
                index = step % len(clients)
                client = clients[index]
                if tokens is None:
                    reply = client.post(
                        "/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
                    )
                    self.count("login", reply)
                    if reply.status_code == 200:
                        tokens = reply.json()
                    else:
                        time.sleep(0.05)
                    continue
                action = ("me", "refresh", "me", "me", "logout")[step % 5]
                if action == "me":
                    reply = client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
                elif action == "refresh":
                    reply = client.post(
                        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                    )
                    if reply.status_code == 200:
                        tokens = {**tokens, **reply.json()}
                else:
                    reply = client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
                    if reply.status_code == 204:
                        with self._lock:
                            self.revoked.append(
                                Revoked(
                                    tokens["access_token"],
                                    tokens["refresh_token"],
                                    self.instances[index],
                                    time.monotonic(),
                                )
                            )
                        tokens = None
                self.count(action, reply)
                if action == "logout" and reply.status_code != 204:
                    # Refused by the outage, or committed and its answer lost on the way
                    # out: either way the session may have ended, the client cannot know.
                    logout_unknown = True
                if reply.status_code in (401, 403):
                    if not logout_unknown:
                        self.unexpected.append(
                            f"{self.phase}: {action} of a live session: {reply.text[:120]}"
                        )
                    tokens = None
                if tokens is None:
                    logout_unknown = False
                if reply.status_code >= 500:
                    time.sleep(0.05)
        finally:
            for client in clients:
                client.close()

    def _check_revoked(self) -> None:
        clients = {url: httpx.Client(base_url=url, timeout=10) for url in self.instances}
        try:
            while not self._stop.is_set():
                self.sweep_revoked(clients)
                time.sleep(0.02)
        finally:
            for client in clients.values():
                client.close()

    def sweep_revoked(self, clients: dict[str, httpx.Client]) -> None:
        """Try every revoked token on every instance once; count any that is accepted."""
        with self._lock:
            revoked = list(self.revoked)
        for token in revoked:
            for url, client in clients.items():
                me = client.get("/api/auth/me", headers=bearer(token.access_token))
                settled = url == token.instance or time.monotonic() - token.at > (
                    PROPAGATION_SECONDS
                )
                if me.status_code == 200 and settled:
                    self.accepted_revoked.append(f"access token on {url}")
                refresh = client.post(
                    "/api/auth/refresh", json={"refresh_token": token.refresh_token}
                )
                if refresh.status_code == 200:
                    self.accepted_revoked.append(f"refresh token on {url}")
                self.revoked_checks += 2
