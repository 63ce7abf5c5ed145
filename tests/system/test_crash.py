"""kill -9 in the middle of a refresh storm, on SQLite and PostgreSQL, cycle after cycle.

Every refresh answered 200 before the crash stays good after it: its successor is stored,
and the token each client holds (or the token it sent and never heard back about) still
works. Every session keeps at most one live refresh token, ended sessions stay ended, and
nothing is corrupt. KEYTURN_TEST_CRASH_CYCLES sets the number of crashes per database (2 by
default, a few seconds each); e.g. 50 for a longer run.
"""

from __future__ import annotations

import os
import random
import time

import httpx
import pytest

from tests.support.api import bearer
from tests.support.instances import HttpxCaller, log_in, session_id_of
from tests.support.processes import KeyturnServer, ServerFactory
from tests.support.storm import (
    REFRESH,
    Chain,
    Storm,
    missing_token_hashes,
    soundness_problems,
    token_hash,
)

pytestmark = [pytest.mark.system, pytest.mark.serial]

CYCLES = int(os.environ.get("KEYTURN_TEST_CRASH_CYCLES", "2"))
USERS = 4
SESSIONS_PER_USER = 8
STORM_ENV = {
    "KEYTURN_ISSUER": "http://auth.keyturn.test",
    "KEYTURN_REFRESH_MAX_PER_IP": "1000000",
}


def open_chains(caller: HttpxCaller) -> list[Chain]:
    chains = []
    for n in range(USERS):
        email = f"storm{n}@example.com"
        created = caller.call(
            "POST",
            "/api/auth/register",
            json_body={"email": email, "password": "correct horse battery staple"},
        )
        assert created.status == 201, created.body
        for _ in range(SESSIONS_PER_USER):
            tokens = log_in(caller, email).body
            chains.append(
                Chain(
                    session_id=session_id_of(tokens["access_token"]),
                    access_token=tokens["access_token"],
                    current=tokens["refresh_token"],
                )
            )
    return chains


def restart(server: KeyturnServer) -> None:
    server.process = None
    server.start()


def refresh(client: httpx.Client, token: str) -> httpx.Response:
    return client.post(REFRESH, json={"refresh_token": token})


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_during_a_refresh_storm_loses_no_answered_rotation(
    backend: str, make_server: ServerFactory, request: pytest.FixtureRequest
) -> None:
    env = dict(STORM_ENV)
    if backend == "postgres":
        env["KEYTURN_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    server = make_server(**env)
    database_url = server.env["KEYTURN_DATABASE_URL"]
    caller = HttpxCaller(server.url, "A")
    chains = open_chains(caller)
    ended: list[Chain] = []
    rng = random.Random(7)  # noqa: S311 - where in the storm the kill lands, not a secret
    answered_total = 0
    in_flight = 0  # refreshes sent when the server died, their outcome unknown to the client

    for cycle in range(CYCLES):
        # Two sessions end by logout before each storm: they must stay ended through crashes.
        for chain in (chains.pop(), chains.pop()):
            body = {"refresh_token": chain.current}
            assert caller.call("POST", "/api/auth/logout", json_body=body).status == 204
            ended.append(chain)
        storm = Storm(server.url, chains).start()
        deadline = time.monotonic() + 10
        while storm.answered() < 40 * (cycle + 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.4))

        server.kill_hard()

        storm.join()
        assert storm.refusals == [], storm.refusals[:3]
        answered_total = storm.answered()
        in_flight += sum(chain.unknown is not None for chain in chains)
        restart(server)
        caller.client.close()
        caller = HttpxCaller(server.url, "A")

        assert soundness_problems(database_url) == []
        answered = [token_hash(t) for chain in chains for t in chain.answered]
        assert missing_token_hashes(database_url, answered) == []
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for chain in chains:
                # The token sent when the server died may have rotated: the retry gets the
                # successor its lost answer held (or a first rotation if it never committed).
                reply = refresh(client, chain.current)
                assert reply.status_code == 200, (cycle, chain.unknown is not None, reply.text)
                chain.current = reply.json()["refresh_token"]
                chain.access_token = reply.json()["access_token"]
                chain.answered.append(chain.current)
                chain.unknown = None
                me = client.get("/api/auth/me", headers=bearer(chain.access_token))
                assert me.status_code == 200, me.text
            for chain in ended:
                replay = refresh(client, chain.current)
                assert replay.status_code == 401, replay.text
                me = client.get("/api/auth/me", headers=bearer(chain.access_token))
                assert me.status_code == 401, me.text
        assert soundness_problems(database_url) == []

    assert answered_total >= 40 * CYCLES
    print(
        f"\n{backend}: {CYCLES} crashes, {answered_total} refreshes answered, {in_flight} in flight"
    )
    caller.client.close()
