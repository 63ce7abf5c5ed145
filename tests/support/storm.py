"""A refresh storm against a real server: many sessions, each rotated by its own client thread
after thread, as their clients see them; and the rows a crash must leave sound."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine, text

from keyturn.storage.db import normalize_database_url

REFRESH = "/api/auth/refresh"


@dataclass
class Chain:
    """One session as its client knows it: the refresh token it holds, every successor it was
    answered with, and a token it sent whose answer never came (the server died)."""

    session_id: str
    access_token: str
    current: str
    answered: list[str] = field(default_factory=list)
    unknown: str | None = None


@dataclass
class Storm:
    """Threads that refresh their chains round and round until the server stops answering."""

    base_url: str
    chains: list[Chain]
    threads: int = 8
    refusals: list[tuple[int, str]] = field(default_factory=list)
    _workers: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Storm:
        for n in range(self.threads):
            mine = self.chains[n :: self.threads]
            worker = threading.Thread(target=self._run, args=(mine,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def answered(self) -> int:
        return sum(len(chain.answered) for chain in self.chains)

    def join(self, timeout: float = 30) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout)
        assert not any(worker.is_alive() for worker in self._workers), "a storm thread hangs"

    def _run(self, chains: list[Chain]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.is_set():
                for chain in chains:
                    try:
                        reply = client.post(REFRESH, json={"refresh_token": chain.current})
                    except httpx.TransportError:
                        chain.unknown = chain.current  # sent; whether it committed is unknown
                        return
                    if reply.status_code != 200:
                        self.refusals.append((reply.status_code, reply.text))
                        return
                    body = reply.json()
                    chain.answered.append(body["refresh_token"])
                    chain.current = body["refresh_token"]
                    chain.access_token = body["access_token"]


def token_hash(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def soundness_problems(database_url: str) -> list[str]:
    """What is wrong in the rows: corruption, a session with two live refresh tokens, an
    ended session that can still be replayed, a token without its session."""
    engine = create_engine(normalize_database_url(database_url))
    problems: list[str] = []
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                integrity = connection.execute(text("PRAGMA integrity_check")).scalars().all()
                if integrity != ["ok"]:
                    problems.append(f"integrity_check: {integrity}")
                orphans = connection.execute(text("PRAGMA foreign_key_check")).all()
                if orphans:
                    problems.append(f"foreign_key_check: {orphans}")
            checks = {
                "sessions with more than one live refresh token": """
                    SELECT session_id FROM refresh_tokens WHERE rotated_at IS NULL
                    GROUP BY session_id HAVING COUNT(*) > 1""",
                "ended sessions still holding a sealed successor": """
                    SELECT r.id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                    WHERE s.ended_at IS NOT NULL AND r.sealed_successor IS NOT NULL""",
                "rotated tokens of live sessions without their successor": """
                    SELECT r.id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                    WHERE s.ended_at IS NULL AND r.rotated_at IS NOT NULL
                    AND r.sealed_successor IS NULL""",
                "live sessions without a live refresh token": """
                    SELECT s.id FROM sessions s WHERE s.ended_at IS NULL AND NOT EXISTS (
                      SELECT 1 FROM refresh_tokens r
                      WHERE r.session_id = s.id AND r.rotated_at IS NULL)""",
                "refresh tokens without their session": """
                    SELECT r.id FROM refresh_tokens r
                    LEFT JOIN sessions s ON s.id = r.session_id WHERE s.id IS NULL""",
                "ended sessions without a reason": """
                    SELECT id FROM sessions WHERE ended_at IS NOT NULL AND end_reason IS NULL""",
            }
            for what, query in checks.items():
                rows = connection.execute(text(query)).all()
                if rows:
                    problems.append(f"{what}: {rows[:5]}")
    finally:
        engine.dispose()
    return problems


def missing_token_hashes(database_url: str, hashes: list[str]) -> list[str]:
    """The digests among `hashes` that no refresh_tokens row holds."""
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            stored = set(
                connection.execute(text("SELECT token_hash FROM refresh_tokens")).scalars()
            )
    finally:
        engine.dispose()
    return [digest for digest in hashes if digest not in stored]
