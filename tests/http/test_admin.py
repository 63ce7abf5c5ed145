"""/api/admin: only admins get in; disabling a user ends their sessions and tokens at once."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from keyturn.cli.main import main as keyturn_cli
from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, Login, bearer, error_of, login, refresh, register
from tests.support.environment import ApiFactory

AdminFactory = Callable[..., Login]


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> Callable[..., int]:
    """`keyturn ...` in this process, on the test's database (as an operator would run it)."""

    def run(*args: str, stdin: str = "") -> int:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("KEYTURN_DATABASE_URL", database_url)
        monkeypatch.setenv("KEYTURN_ARGON2_MEMORY_KIB", "1024")
        monkeypatch.setenv("KEYTURN_ARGON2_TIME_COST", "1")
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return keyturn_cli(list(args))

    return run


@pytest.fixture
async def admin(api: httpx.AsyncClient, run_cli: Callable[..., int]) -> Login:
    """An admin created with `keyturn users create --role admin`, logged in."""
    code = run_cli(
        "users", "create", "--email", "root@example.com", "--password-stdin", "--role", "admin",
        stdin=DEFAULT_PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0
    return await login(api, "root@example.com", create=False)


ADMIN_ROUTES = [
    ("GET", "/api/admin/users", None),
    ("GET", "/api/admin/users/{id}", None),
    ("POST", "/api/admin/users/{id}/disable", None),
    ("POST", "/api/admin/users/{id}/enable", None),
    ("POST", "/api/admin/users/{id}/unlock", None),
    ("PUT", "/api/admin/users/{id}/roles", {"roles": ["admin"]}),
    ("DELETE", "/api/admin/users/{id}", None),
    ("POST", "/api/admin/users/{id}/password", {"new_password": "a fresh long passphrase"}),
    ("DELETE", "/api/admin/users/{id}/mfa", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_other_users(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    """A plain user gets 403 insufficient_role; no token gets 401 missing_token."""
    user = await login(api)
    url = path.format(id=user.user["id"])

    refused = await api.request(method, url, json=body, headers=bearer(user.access_token))
    anonymous = await api.request(method, url, json=body)

    assert error_of(refused) == (403, "insufficient_role")
    assert error_of(anonymous) == (401, "missing_token")
    me = await api.get("/api/auth/me", headers=bearer(user.access_token))
    assert me.json()["user"]["roles"] == ["user"]  # nothing changed


async def test_admin_lists_users_in_pages(
    api: httpx.AsyncClient, admin: Login, clock: FrozenClock
) -> None:
    """Pages of users, oldest first, with the total; `email` filters; no password anywhere."""
    for name in ("ada", "bob", "cyd"):
        clock.advance(seconds=1)
        await register(api, f"{name}@example.com")
    auth = bearer(admin.access_token)

    first = await api.get("/api/admin/users", params={"limit": 2}, headers=auth)
    second = await api.get("/api/admin/users", params={"limit": 2, "offset": 2}, headers=auth)
    only_bob = await api.get("/api/admin/users", params={"email": "bob@"}, headers=auth)

    assert first.status_code == 200
    assert first.json()["total"] == 4
    emails = [u["email"] for u in first.json()["users"] + second.json()["users"]]
    assert emails == ["root@example.com", "ada@example.com", "bob@example.com", "cyd@example.com"]
    assert [u["email"] for u in only_bob.json()["users"]] == ["bob@example.com"]
    assert "password" not in first.text and "argon2" not in first.text


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "offset=-1", "offset=1e99"])
async def test_bad_paging_is_422(api: httpx.AsyncClient, admin: Login, query: str) -> None:
    response = await api.get(f"/api/admin/users?{query}", headers=bearer(admin.access_token))
    assert error_of(response) == (422, "invalid_request")


async def test_disable_ends_sessions_and_access_tokens_at_once(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """Disabling a user stops every access and refresh token of theirs on the next request
    and refuses their logins; enabling lets them log in again (old tokens stay dead)."""
    phone = await login(api, "ada@example.com")
    laptop = await login(api, "ada@example.com", create=False)
    user_id = phone.user["id"]
    auth = bearer(admin.access_token)

    disabled = await api.post(f"/api/admin/users/{user_id}/disable", headers=auth)

    assert disabled.status_code == 204
    for tokens in (phone, laptop):
        me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
        assert error_of(me) == (401, "invalid_token")
        assert error_of(await refresh(api, tokens.refresh_token))[0] == 401
    again = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(again) == (403, "account_disabled")
    shown = await api.get(f"/api/admin/users/{user_id}", headers=auth)
    assert shown.json()["disabled"] is True

    assert (await api.post(f"/api/admin/users/{user_id}/enable", headers=auth)).status_code == 204
    fresh = await login(api, "ada@example.com", create=False)
    assert (await api.get("/api/auth/me", headers=bearer(fresh.access_token))).status_code == 200
    old = await api.get("/api/auth/me", headers=bearer(phone.access_token))
    assert error_of(old) == (401, "invalid_token")


async def test_deleted_user_is_refused_at_once(
    api: httpx.AsyncClient, admin: Login, run_cli: Callable[..., int]
) -> None:
    """Deleting a user (API or CLI) ends their tokens at once; the email can be used again."""
    ada = await login(api, "ada@example.com")
    grace = await login(api, "grace@example.com")
    auth = bearer(admin.access_token)

    deleted = await api.delete(f"/api/admin/users/{ada.user['id']}", headers=auth)

    assert deleted.status_code == 204
    assert error_of(await api.get("/api/auth/me", headers=bearer(ada.access_token))) == (
        401,
        "invalid_token",
    )
    assert error_of(await refresh(api, ada.refresh_token)) == (401, "invalid_refresh_token")
    assert error_of(await api.delete(f"/api/admin/users/{ada.user['id']}", headers=auth)) == (
        404,
        "user_not_found",
    )
    assert (await register(api, "ada@example.com"))["id"] != ada.user["id"]

    # The CLI runs on the wall clock, this app on a frozen one: check what needs no feed.
    assert run_cli("users", "delete", "grace@example.com") == 0
    assert error_of(await refresh(api, grace.refresh_token)) == (401, "invalid_refresh_token")
    again = await api.post(
        "/api/auth/login", json={"email": "grace@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(again) == (401, "invalid_credentials")
    audit = await api.get("/api/admin/audit?event=user_deleted", headers=auth)
    assert {event["user_id"] for event in audit.json()["events"]} == {
        ada.user["id"],
        grace.user["id"],
    }


async def test_disable_reaches_another_instance_within_a_second(
    make_api: ApiFactory, admin: Login, api: httpx.AsyncClient
) -> None:
    """Disabled on instance A, the user's access token is refused on instance B within 1 s."""
    other = await make_api()
    ada = await login(other, "ada@example.com")
    assert (await other.get("/api/auth/me", headers=bearer(ada.access_token))).status_code == 200

    await api.post(f"/api/admin/users/{ada.user['id']}/disable", headers=bearer(admin.access_token))
    started = time.monotonic()
    while True:
        me = await other.get("/api/auth/me", headers=bearer(ada.access_token))
        if me.status_code == 401 or time.monotonic() - started > 1.0:
            break
        await asyncio.sleep(0.02)

    assert error_of(me) == (401, "invalid_token")


@pytest.mark.parametrize("user_id", ["nope", "0" * 32, "x" * 300, "%00", "ü"])
async def test_unknown_user_is_404(api: httpx.AsyncClient, admin: Login, user_id: str) -> None:
    auth = bearer(admin.access_token)
    for method, path, body in ADMIN_ROUTES[1:]:
        response = await api.request(method, path.format(id=user_id), json=body, headers=auth)
        assert error_of(response) == (404, "user_not_found"), (method, path)


async def test_roles_change_ends_sessions_and_shows_in_new_tokens(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """A new role takes effect at the next login: tokens carrying the old roles stop."""
    ada = await login(api, "ada@example.com")

    changed = await api.put(
        f"/api/admin/users/{ada.user['id']}/roles",
        json={"roles": ["admin"]},
        headers=bearer(admin.access_token),
    )

    assert changed.status_code == 200
    assert changed.json()["roles"] == ["admin", "user"]
    old = await api.get("/api/auth/me", headers=bearer(ada.access_token))
    assert error_of(old) == (401, "invalid_token")
    promoted = await login(api, "ada@example.com", create=False)
    assert promoted.user["roles"] == ["admin", "user"]
    listing = await api.get("/api/admin/users", headers=bearer(promoted.access_token))
    assert listing.status_code == 200


@pytest.mark.parametrize("body", [{"roles": ["root"]}, {"roles": "admin"}, {}, {"roles": [1]}])
async def test_bad_roles_are_422(
    api: httpx.AsyncClient, admin: Login, body: dict[str, object]
) -> None:
    response = await api.put(
        f"/api/admin/users/{admin.user['id']}/roles", json=body, headers=bearer(admin.access_token)
    )
    assert error_of(response)[0] == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/admin/users/{id}/disable", None),
        ("DELETE", "/api/admin/users/{id}", None),
        ("PUT", "/api/admin/users/{id}/roles", {"roles": ["user"]}),
    ],
)
async def test_the_last_admin_cannot_remove_themselves(
    api: httpx.AsyncClient,
    admin: Login,
    run_cli: Callable[..., int],
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    """Disabling, deleting or demoting the only enabled admin is 409 last_admin and changes
    nothing; once a second admin exists, the first may step down."""
    url = path.format(id=admin.user["id"])
    auth = bearer(admin.access_token)

    refused = await api.request(method, url, json=body, headers=auth)

    assert error_of(refused) == (409, "last_admin")
    me = await api.get("/api/auth/me", headers=auth)
    assert me.json()["user"]["roles"] == ["admin", "user"]
    code = run_cli(
        "users", "create", "--email", "second@example.com", "--password-stdin", "--role", "admin",
        stdin=DEFAULT_PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0
    assert (await api.request(method, url, json=body, headers=auth)).status_code in (200, 204)


async def test_a_disabled_admin_does_not_count_as_the_one_who_stays(
    api: httpx.AsyncClient, admin: Login, run_cli: Callable[..., int]
) -> None:
    code = run_cli(
        "users", "create", "--email", "second@example.com", "--password-stdin", "--role", "admin",
        stdin=DEFAULT_PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0
    assert run_cli("users", "disable", "second@example.com") == 0

    refused = await api.post(
        f"/api/admin/users/{admin.user['id']}/disable", headers=bearer(admin.access_token)
    )

    assert error_of(refused) == (409, "last_admin")


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    make_api: ApiFactory, run_cli: Callable[..., int]
) -> None:
    """Two instances, each taking the admin role from the other admin at the same moment:
    one change wins, the other is 409 last_admin."""
    first_api, second_api = await make_api(), await make_api()
    admins = []
    for name in ("ada", "bob"):
        code = run_cli(
            "users", "create", "--email", f"{name}@example.com", "--password-stdin",
            "--role", "admin", stdin=DEFAULT_PASSWORD + "\n",
        )  # fmt: skip
        assert code == 0
        admins.append(await login(first_api, f"{name}@example.com", create=False))
    ada, bob = admins

    answers = await asyncio.gather(
        first_api.put(
            f"/api/admin/users/{bob.user['id']}/roles",
            json={"roles": ["user"]},
            headers=bearer(ada.access_token),
        ),
        second_api.put(
            f"/api/admin/users/{ada.user['id']}/roles",
            json={"roles": ["user"]},
            headers=bearer(bob.access_token),
        ),
    )

    assert sorted(answer.status_code for answer in answers) == [200, 409]


async def test_admin_sets_a_password_ending_every_session(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """An admin sets a user's password: every session of that user ends at once, the old
    password stops working, the new one logs in, and the audit trail names the admin."""
    phone = await login(api, "ada@example.com")
    laptop = await login(api, "ada@example.com", create=False)
    user_id = phone.user["id"]
    auth = bearer(admin.access_token)

    response = await api.post(
        f"/api/admin/users/{user_id}/password",
        json={"new_password": "a fresh long passphrase"},
        headers=auth,
    )

    assert response.status_code == 204
    for tokens in (phone, laptop):
        me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
        assert error_of(me) == (401, "invalid_token")
        assert error_of(await refresh(api, tokens.refresh_token))[0] == 401
    old = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(old) == (401, "invalid_credentials")
    await login(api, "ada@example.com", "a fresh long passphrase", create=False)
    audit = await api.get("/api/admin/audit?event=password_set", headers=auth)
    [event] = audit.json()["events"]
    assert event["user_id"] == user_id
    assert event["detail"] == {"by": admin.user["id"]}


async def test_admin_set_password_follows_the_password_policy(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """A weak password is 422 weak_password with reasons and changes nothing; an unknown user
    is 404; a missing field is 422."""
    ada = await login(api, "ada@example.com")
    auth = bearer(admin.access_token)
    url = f"/api/admin/users/{ada.user['id']}/password"

    weak = await api.post(url, json={"new_password": "password"}, headers=auth)
    unknown = await api.post(
        "/api/admin/users/" + "0" * 32 + "/password",
        json={"new_password": "a fresh long passphrase"},
        headers=auth,
    )
    missing = await api.post(url, json={}, headers=auth)

    assert error_of(weak) == (422, "weak_password")
    assert weak.json()["reasons"]
    assert error_of(unknown) == (404, "user_not_found")
    assert error_of(missing) == (422, "invalid_request")
    assert (await api.get("/api/auth/me", headers=bearer(ada.access_token))).status_code == 200


async def test_the_last_admin_cannot_delete_their_own_account(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """The only enabled admin closing their account gets 409 last_admin and keeps it."""
    auth = bearer(admin.access_token)

    refused = await api.post(
        "/api/auth/account/delete", json={"current_password": DEFAULT_PASSWORD}, headers=auth
    )

    assert error_of(refused) == (409, "last_admin")
    assert (await api.get("/api/auth/me", headers=auth)).status_code == 200


async def test_unlock_lets_the_right_password_in_at_once_and_is_audited(
    make_api: ApiFactory, admin: Login, api: httpx.AsyncClient
) -> None:
    """An account locked by failed logins opens to the right password as soon as an admin
    unlocks it (here from an address it logged in from before, whose own allowance those
    failures used up too); the unlock is in the audit trail under the user's id."""
    locked_api = await make_api(login_max_failures=2)
    ada = await register(locked_api, "ada@example.com")
    wrong = {"email": "ada@example.com", "password": "not the right passphrase"}
    right = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    assert (await locked_api.post("/api/auth/login", json=right)).status_code == 200
    for _ in range(2):
        await locked_api.post("/api/auth/login", json=wrong)
    assert error_of(await locked_api.post("/api/auth/login", json=right))[0] == 429
    auth = bearer(admin.access_token)

    unlocked = await api.post(f"/api/admin/users/{ada['id']}/unlock", headers=auth)

    assert unlocked.status_code == 204
    assert (await locked_api.post("/api/auth/login", json=right)).status_code == 200
    audit = await api.get("/api/admin/audit?event=user_unlocked", headers=auth)
    assert [event["user_id"] for event in audit.json()["events"]] == [ada["id"]]
