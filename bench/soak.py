"""A soak run: the mixed workload (me, refresh, login, logout) against a real `keyturn serve`
for minutes, watching what grows.

    .venv/bin/python -m bench.soak                     # 10 minutes, SQLite in a temp dir
    .venv/bin/python -m bench.soak --minutes 2 --users 8
    .venv/bin/python -m bench.soak --postgres          # a fresh PostgreSQL database

Prints, per minute, the requests, 5xx answers, p50/p99 latency and the server's memory
(anonymous: its heaps; file-backed: its libraries and SQLite's memory-mapped database); at
the end the 5xx count, the server's RSS at start and end (and growth, also of each kind),
the database file's size, and the sizes of the tables that grow with use (sessions, refresh
tokens, the revocation feed, the audit trail, rate-limit counters).
Not for CI: it takes minutes and its numbers mean something only on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import accounts
from bench.pyload import percentile
from bench.run import postgres_database
from bench.server import Server, running_server, split_cores
from keyturn.storage.db import normalize_database_url

TABLES = ("users", "sessions", "refresh_tokens", "revocations", "audit_events", "rate_limits")
# One user's cycle: reads, a refresh, and every few cycles a logout and a new login.
ACTIONS = ("me", "me", "refresh", "me", "me")
LOGOUT_EVERY = 10


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    server_errors: int = 0
    by_status: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    memory: Memory | None = None  # at the minute's end


@dataclass(frozen=True)
class Memory:
    """The server's resident memory in MB: `anonymous` is its heaps (what a leak grows),
    `file` the pages of files it maps, mostly SQLite's memory-mapped database, which grow
    with the database and which the kernel may drop at any time."""

    anonymous: float
    file: float

    @classmethod
    def of(cls, server: Server) -> Memory | None:
        anonymous, file = server.rss_mb("RssAnon"), server.rss_mb("RssFile")
        return None if anonymous is None or file is None else cls(anonymous, file)


@dataclass
class Soak:
    base_url: str
    seconds: float
    pause: float
    started: float = field(default_factory=time.monotonic)
    minutes: dict[int, Minute] = field(default_factory=lambda: defaultdict(Minute))

    def note(self, action: str, status: int, seconds: float) -> None:
        # Answers that arrive after the deadline belong to the last minute of the run.
        last = max(0, math.ceil(self.seconds / 60) - 1)
        minute = self.minutes[min(last, int((time.monotonic() - self.started) // 60))]
        minute.latencies.append(seconds)
        minute.by_status[f"{action} {status}"] += 1
        if status >= 500:
            minute.server_errors += 1

    async def call(
        self, client: httpx.AsyncClient, action: str, method: str, path: str, **kwargs: object
    ) -> httpx.Response | None:
        begun = time.perf_counter()
        try:
            response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError:
            self.note(action, 599, time.perf_counter() - begun)  # no answer at all
            return None
        self.note(action, response.status_code, time.perf_counter() - begun)
        return response

    async def user(self, client: httpx.AsyncClient, email: str) -> None:
        tokens: dict[str, str] | None = None
        cycle = 0
        deadline = self.started + self.seconds
        while time.monotonic() < deadline:
            if tokens is None:
                body = {"email": email, "password": accounts.PASSWORD}
                reply = await self.call(client, "login", "POST", "/api/auth/login", json=body)
                if reply is not None and reply.status_code == 200:
                    tokens = reply.json()
                await asyncio.sleep(self.pause)
                continue
            for action in ACTIONS:
                if action == "me":
                    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
                    await self.call(client, "me", "GET", "/api/auth/me", headers=headers)
                else:
                    body = {"refresh_token": tokens["refresh_token"]}
                    reply = await self.call(
                        client, "refresh", "POST", "/api/auth/refresh", json=body
                    )
                    if reply is not None and reply.status_code == 200:
                        tokens = reply.json()
                await asyncio.sleep(self.pause)
            cycle += 1
            if cycle % LOGOUT_EVERY == 0:
                headers = {"Authorization": f"Bearer {tokens['access_token']}"}
                await self.call(client, "logout", "POST", "/api/auth/logout", headers=headers)
                tokens = None

    async def run(self, emails: list[str], server: Server) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            await asyncio.gather(
                self.sample_memory(server), *(self.user(client, email) for email in emails)
            )

    async def sample_memory(self, server: Server) -> None:
        """The server's memory at the end of each minute."""
        minutes = math.ceil(self.seconds / 60)
        for index in range(minutes):
            wake = self.started + min((index + 1) * 60, self.seconds)
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            self.minutes[index].memory = Memory.of(server)


def table_sizes(database_url: str) -> dict[str, int]:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as connection:
            return {
                table: int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())  # noqa: S608 - fixed names
                for table in TABLES
            }
    finally:
        engine.dispose()


def growth(start: float | None, end: float | None) -> str:
    if not start or end is None:
        return "?"
    return f"{(end - start) / start * 100:+.1f}%"


def report(soak: Soak, server: Server, memory: tuple[Memory | None, Memory | None],
           tables: tuple[dict[str, int], dict[str, int]]) -> dict[str, object]:  # fmt: skip
    print(f"{'minute':>6} {'requests':>9} {'5xx':>5} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'anon MB':>8} {'file MB':>8}")  # fmt: skip
    total_errors = 0
    per_minute = []
    for index in sorted(soak.minutes):
        minute = soak.minutes[index]
        ordered = sorted(minute.latencies)
        p50, p99 = percentile(ordered, 0.50) * 1000, percentile(ordered, 0.99) * 1000
        total_errors += minute.server_errors
        anonymous = f"{minute.memory.anonymous:.1f}" if minute.memory else "?"
        file = f"{minute.memory.file:.1f}" if minute.memory else "?"
        per_minute.append(
            {
                "minute": index + 1,
                "requests": len(ordered),
                "server_errors": minute.server_errors,
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "anonymous_mb": minute.memory.anonymous if minute.memory else None,
                "file_mb": minute.memory.file if minute.memory else None,
                "by_status": dict(minute.by_status),
            }
        )
        print(f"{index + 1:>6} {len(ordered):>9} {minute.server_errors:>5} {p50:>8.2f} "
              f"{p99:>8.2f} {anonymous:>8} {file:>8}")  # fmt: skip
    print(f"5xx (and no answer) in all: {total_errors}")
    start, end = memory
    if start and end:
        print(f"server RSS: {start.anonymous + start.file:.1f} MB at start, "
              f"{end.anonymous + end.file:.1f} MB at end "
              f"({growth(start.anonymous + start.file, end.anonymous + end.file)})")  # fmt: skip
        print(f"  of which anonymous (heaps): {start.anonymous:.1f} -> {end.anonymous:.1f} MB "
              f"({growth(start.anonymous, end.anonymous)}); file-backed (the mapped "
              f"database): {start.file:.1f} -> {end.file:.1f} MB")  # fmt: skip
    else:
        print("server RSS: unavailable")
    database_file = sqlite_file_mb(server.database_url)
    if database_file is not None:
        print(f"database file at the end: {database_file:.1f} MB")
    print(f"{'table':<16} {'start':>9} {'end':>9}")
    for table in TABLES:
        print(f"{table:<16} {tables[0][table]:>9} {tables[1][table]:>9}")
    return {"per_minute": per_minute, "server_errors": total_errors,
            "memory_mb": [vars(m) if m else None for m in memory],
            "tables": {"start": tables[0], "end": tables[1]}}  # fmt: skip


def sqlite_file_mb(database_url: str) -> float | None:
    """The size of a SQLite database with its write-ahead log; None for another database."""
    url = make_url(normalize_database_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    files = [Path(url.database), Path(url.database + "-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1024 / 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=16, help="concurrent simulated users")
    parser.add_argument(
        "--pause", type=float, default=0.02, help="seconds between a user's requests"
    )
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_cores, _load_cores = split_cores()
    with (
        postgres_database(args.postgres) as database_url,
        running_server(database_url=database_url, cores=server_cores) as server,
    ):
        emails = accounts.register_users(server.base_url, args.users, tag="soak")
        soak = Soak(server.base_url, seconds=args.minutes * 60, pause=args.pause)
        tables_at_start = table_sizes(server.database_url)
        memory_at_start = Memory.of(server)
        soak.started = time.monotonic()
        asyncio.run(soak.run(emails, server))
        memory_at_end = Memory.of(server)
        tables_at_end = table_sizes(server.database_url)
        results = report(
            soak, server, (memory_at_start, memory_at_end), (tables_at_start, tables_at_end)
        )
    if args.json:
        print(json.dumps(results))
    return 0 if results["server_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
