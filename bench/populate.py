"""Fill a PostgreSQL database with a million users and three million sessions, then show the
query plans of the lookups Keyturn runs per request. Never run by CI: it takes minutes.

    .venv/bin/python -m bench.populate --database-url postgresql://postgres@127.0.0.1:5432/keyturn_bench_scale

Rows go in through COPY (psycopg 3). Every generated user shares ONE precomputed Argon2id hash
(OWASP parameters) of SCALE_PASSWORD: a million real hashes would take hours and measure
nothing new. Their emails are scale-<n>@example.com, so they can log in. Each session gets one
live refresh token (a random digest: its raw token is unknown, so it is only there to be
looked past). A fifth of the sessions are ended or expired, as in a real table.
Then `python -m bench --scale URL` compares login, refresh and me against an empty database.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql

from keyturn.config import OWASP_ARGON2_MEMORY_KIB, OWASP_ARGON2_TIME_COST
from keyturn.core.passwords import Argon2Parameters, PasswordHashing
from keyturn.core.sessions import new_session_id
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database
from keyturn.storage.models import sessions, users

SCALE_PASSWORD = "keyturn scale benchmark password"  # noqa: S105 - generated test users
CHUNK = 50_000


def scale_email(n: int) -> str:
    return f"scale-{n}@example.com"


def _ts(moment: datetime) -> str:
    return moment.isoformat()


def _user_rows(count: int, ids: list[str], password_hash: str, now: datetime) -> Iterator[str]:
    lines = []
    for n in range(count):
        created = _ts(now - timedelta(seconds=random.randrange(86400 * 365)))
        email = scale_email(n)
        lines.append(
            f"{ids[n]}\t{email}\t{email}\tscale_{n}\tscale_{n}\t{password_hash}\tuser\t\\N\t"
            f"{created}\t{created}\n"
        )
        if len(lines) == CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def _session_rows(count: int, user_ids: list[str], now: datetime) -> Iterator[tuple[str, str]]:
    """(sessions chunk, refresh_tokens chunk) in COPY text format."""
    session_lines: list[str] = []
    token_lines: list[str] = []
    for n in range(count):
        created_at = now - timedelta(seconds=random.randrange(86400 * 30))
        session_id = new_session_id(created_at)
        last_used_at = created_at + timedelta(seconds=random.randrange(3600))
        fate = random.random()
        ended = f"{_ts(last_used_at)}\tlogout" if fate < 0.1 else "\\N\t\\N"
        idle = now - timedelta(hours=1) if 0.1 <= fate < 0.2 else now + timedelta(days=30)
        session_lines.append(
            f"{session_id}\t{random.choice(user_ids)}\t{_ts(created_at)}\t{_ts(last_used_at)}\t"
            f"{_ts(idle)}\t{_ts(created_at + timedelta(days=90))}\t{ended}\tt\t"
            f"scale-bench/1.0\t10.{n % 250}.{n // 250 % 250}.{n % 7}\tkeyturn\n"
        )
        token_lines.append(
            f"{session_id}\t{random.getrandbits(256):064x}\t{_ts(last_used_at)}\t{_ts(idle)}\t"
            "\\N\t\\N\n"
        )
        if len(session_lines) == CHUNK:
            yield "".join(session_lines), "".join(token_lines)
            session_lines, token_lines = [], []
    if session_lines:
        yield "".join(session_lines), "".join(token_lines)


def populate(url: str, *, user_count: int, session_count: int) -> None:
    database = Database(url)
    upgrade_database(database)
    database.dispose()
    now = datetime.now(UTC)
    random.seed(20261124)
    started = time.perf_counter()
    hashing = PasswordHashing(
        Argon2Parameters(
            memory_kib=OWASP_ARGON2_MEMORY_KIB, time_cost=OWASP_ARGON2_TIME_COST, parallelism=1
        )
    )
    password_hash = hashing.hash_password(SCALE_PASSWORD)
    user_ids = [f"{random.getrandbits(128):032x}" for _ in range(user_count)]
    with psycopg.connect(_libpq(url)) as connection:
        connection.execute("SET synchronous_commit = off")
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY users (id, email, email_key, username, username_key, password_hash,"
                " roles, disabled_at, created_at, updated_at) FROM STDIN"
            ) as copy:
                for chunk in _user_rows(user_count, user_ids, password_hash, now):
                    copy.write(chunk)
            print(f"users: {user_count} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
            for session_chunk, token_chunk in _session_rows(session_count, user_ids, now):
                with cursor.copy(
                    "COPY sessions (id, user_id, created_at, last_used_at, idle_expires_at,"
                    " absolute_expires_at, ended_at, end_reason, remember_me, user_agent, ip,"
                    " client_id) FROM STDIN"
                ) as copy:
                    copy.write(session_chunk)
                with cursor.copy(
                    "COPY refresh_tokens (session_id, token_hash, created_at, expires_at,"
                    " rotated_at, sealed_successor) FROM STDIN"
                ) as copy:
                    copy.write(token_chunk)
        connection.commit()
        print(
            f"sessions and refresh tokens: {session_count} in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
        # The load leaves gigabytes of pages written but not yet on disk; a benchmark started
        # right after would share the disk with that writeback. Settle it first.
        connection.execute("CHECKPOINT")
    print(f"done in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def explain(url: str) -> bool:
    """Print the plans of the per-request lookups; False when any of them scans a table."""
    database = Database(url)
    now = datetime.now(UTC)
    with database.snapshot() as connection:
        token_hash = connection.exec_driver_sql(
            "SELECT token_hash FROM refresh_tokens ORDER BY id DESC LIMIT 1"
        ).scalar_one()
        user_id = connection.exec_driver_sql("SELECT user_id FROM sessions LIMIT 1").scalar_one()
    live_sessions = (
        select(sessions)
        .where(
            sessions.c.user_id == bindparam("user_id"),
            sessions.c.ended_at.is_(None),
            sessions.c.idle_expires_at > bindparam("now"),
            sessions.c.absolute_expires_at > bindparam("now"),
        )
        .order_by(sessions.c.last_used_at.desc())
    )
    checks = {
        "login lookup (users by email_key)": (
            select(users).where(users.c.email_key == bindparam("email_key")),
            {"email_key": scale_email(123_456)},
        ),
        "refresh lookup (refresh_tokens by token_hash, join sessions and users)": (
            refresh_token_store._FIND_REFRESH_TOKEN_WITH_USER.statement,
            {"token_hash": token_hash},
        ),
        "me on a user-cache miss (users by id)": (
            select(users).where(users.c.id == bindparam("user_id")),
            {"user_id": user_id},
        ),
        "session listing (live sessions of a user)": (
            live_sessions,
            {"user_id": user_id, "now": now},
        ),
    }
    dialect = postgresql.psycopg.dialect()  # type: ignore[attr-defined]
    good = True
    with database.snapshot() as connection:
        for title, (statement, values) in checks.items():
            compiled = statement.compile(dialect=dialect)
            plan = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, compiled.construct_params(values)
            ).scalars()
            text = "\n".join(f"    {line}" for line in plan)
            scans = "Seq Scan" in text
            good = good and not scans
            print(f"{title}: {'SEQUENTIAL SCAN' if scans else 'index, no sequential scan'}\n{text}")
    database.dispose()
    return good


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="postgresql://… (created if missing)")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=3_000_000)
    parser.add_argument("--explain-only", action="store_true", help="only print the plans")
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        raise SystemExit("bench.populate: PostgreSQL only (COPY)")
    if not args.explain_only:
        _create_database(args.database_url)
        populate(args.database_url, user_count=args.users, session_count=args.sessions)
    return 0 if explain(args.database_url) else 1


def _create_database(url: str) -> None:
    base, _, name = _libpq(url).rpartition("/")
    with psycopg.connect(base + "/postgres", autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if exists:
            raise SystemExit(f"bench.populate: database {name} exists; drop it or pick another")
        connection.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    raise SystemExit(main())
