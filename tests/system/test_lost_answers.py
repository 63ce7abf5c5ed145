"""A rotation committed, its answer lost (kill -9 before the client read it), the client
retries with the token it still holds 15 s later: the user must stay logged in. A parent
presented after its successor was used stays theft, crash or no crash."""

from __future__ import annotations

import time

import pytest

from tests.support.api import bearer
from tests.support.instances import HttpxCaller, log_in, new_user
from tests.support.processes import KeyturnServer, ServerFactory

pytestmark = [pytest.mark.system]

SESSIONS = 5
RETRY_AFTER_SECONDS = 15.0  # past the default 10 s grace window


def rotate_and_lose_answers(server: KeyturnServer) -> list[tuple[str, str]]:
    """(parent, lost successor) for each session: the answer is read here only to compare
    it with what the retry gets; the client behaves as if it never arrived."""
    caller = HttpxCaller(server.url, server.url)
    new_user(caller, "ada@example.com")
    lost = []
    for _ in range(SESSIONS):
        parent = log_in(caller, "ada@example.com").body["refresh_token"]
        answer = caller.call("POST", "/api/auth/refresh", json_body={"refresh_token": parent})
        assert answer.status == 200, answer.body
        lost.append((parent, answer.body["refresh_token"]))
    caller.close()
    return lost


def test_a_retry_15_s_after_a_crash_does_not_log_the_user_out(
    make_server: ServerFactory,
) -> None:
    """Two servers, each on its own database: one as shipped (recovery after a restart), one
    with KEYTURN_REFRESH_RECOVERY_SECONDS=0 (the rule before it). Both are killed right after
    the rotations commit and restarted; the clients retry with their parents 15 s after."""
    shipped = make_server()
    strict = make_server(KEYTURN_REFRESH_RECOVERY_SECONDS="0")
    lost = {server.url: rotate_and_lose_answers(server) for server in (shipped, strict)}
    rotated_at = time.monotonic()
    for server in (shipped, strict):
        server.kill_hard()
        server.process = None
        server.start()
    time.sleep(max(0.0, rotated_at + RETRY_AFTER_SECONDS - time.monotonic()))

    logged_out: dict[str, int] = {}
    for server in (shipped, strict):
        caller = HttpxCaller(server.url, server.url)
        logged_out[server.url] = 0
        for parent, successor in lost[server.url]:
            retry = caller.call("POST", "/api/auth/refresh", json_body={"refresh_token": parent})
            if retry.error == (401, "refresh_token_reused"):
                logged_out[server.url] += 1
                continue
            assert retry.status == 200, retry.body
            assert retry.body["refresh_token"] == successor  # the same one, never a new branch
            me = caller.call("GET", "/api/auth/me", headers=bearer(retry.body["access_token"]))
            assert me.status == 200
        caller.close()

    assert logged_out == {shipped.url: 0, strict.url: SESSIONS}


def test_after_a_crash_a_parent_whose_successor_was_used_is_still_theft(
    make_server: ServerFactory,
) -> None:
    """The client got its answer and moved on; a thief replays the parent after a restart:
    the session ends, and the client's newest token stops working."""
    server = make_server(KEYTURN_REFRESH_REUSE_GRACE_SECONDS="1")
    caller = HttpxCaller(server.url, "A")
    parent = new_user(caller, "ada@example.com")["refresh_token"]
    child = caller.call("POST", "/api/auth/refresh", json_body={"refresh_token": parent}).body
    grandchild = caller.call(
        "POST", "/api/auth/refresh", json_body={"refresh_token": child["refresh_token"]}
    ).body
    server.kill_hard()
    server.process = None
    server.start()
    time.sleep(1.5)  # past the grace window, well within the recovery window

    replay = caller.call("POST", "/api/auth/refresh", json_body={"refresh_token": parent})

    assert replay.error == (401, "refresh_token_reused")
    newest = {"refresh_token": grandchild["refresh_token"]}
    assert caller.call("POST", "/api/auth/refresh", json_body=newest).status == 401
    me = caller.call("GET", "/api/auth/me", headers=bearer(grandchild["access_token"]))
    assert me.status == 401
    caller.close()
