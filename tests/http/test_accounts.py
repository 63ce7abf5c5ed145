"""Registration and login: the contract's answers, bcrypt imports, and what is never shown."""

from __future__ import annotations

from datetime import UTC, datetime

import bcrypt
import httpx
from sqlalchemy import create_engine, insert, select

from keyturn.storage.db import normalize_database_url
from keyturn.storage.models import users
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, register
from tests.support.environment import ApiFactory


async def test_duplicate_email_and_username_are_409_case_insensitively(
    api: httpx.AsyncClient,
) -> None:
    await register(api, "Ada@Example.com", username="ada")
    again = await api.post(
        "/api/auth/register", json={"email": "ada@example.COM", "password": DEFAULT_PASSWORD}
    )
    assert error_of(again) == (409, "email_taken")
    taken = await api.post(
        "/api/auth/register",
        json={"email": "other@example.com", "password": DEFAULT_PASSWORD, "username": "ADA"},
    )
    assert error_of(taken) == (409, "username_taken")


async def test_weak_password_and_bad_email_are_422_with_reasons(api: httpx.AsyncClient) -> None:
    weak = await api.post(
        "/api/auth/register", json={"email": "a@example.com", "password": "password1"}
    )
    assert error_of(weak) == (422, "weak_password")
    assert weak.json()["reasons"]
    short = await api.post("/api/auth/register", json={"email": "a@example.com", "password": "abc"})
    assert "at least 8" in " ".join(short.json()["reasons"])
    bad = await api.post(
        "/api/auth/register", json={"email": "not-an-email", "password": DEFAULT_PASSWORD}
    )
    assert error_of(bad) == (422, "invalid_email")
    assert bad.json()["reasons"]


async def test_a_one_character_password_is_too_short_however_it_normalises(
    api: httpx.AsyncClient,
) -> None:
    """U+FDFA is one typed character that NFKC expands into eighteen."""
    response = await api.post(
        "/api/auth/register", json={"email": "a@example.com", "password": "\ufdfa"}
    )
    assert error_of(response) == (422, "weak_password")


async def test_a_password_logs_in_however_the_keyboard_composed_it(api: httpx.AsyncClient) -> None:
    """Full-width digits from an IME are the same password as the ASCII digits."""
    await register(api, password="correct horse 2024")
    response = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": "correct horse \uff12\uff10\uff12\uff14"},
    )
    assert response.status_code == 200


async def test_wrong_password_and_unknown_account_get_the_same_answer(
    api: httpx.AsyncClient,
) -> None:
    await register(api)
    wrong = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "wrong password"}
    )
    unknown = await api.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
    )
    assert error_of(wrong) == error_of(unknown) == (401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert "www-authenticate" not in wrong.headers or wrong.headers == unknown.headers


async def test_no_password_or_hash_in_any_response(api: httpx.AsyncClient) -> None:
    await register(api)
    tokens = await login(api, create=False)
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    for text in (me.text, str(tokens.user)):
        assert DEFAULT_PASSWORD not in text
        assert "argon2" not in text and "password" not in text


async def test_bcrypt_user_imported_from_a_node_app_logs_in_and_is_upgraded(
    api: httpx.AsyncClient, database_url: str
) -> None:
    """A $2b$ hash written by a Node app works at login and is replaced by Argon2id."""
    node_hash = bcrypt.hashpw(b"imported secret pass", bcrypt.gensalt(rounds=4)).decode()
    engine = create_engine(normalize_database_url(database_url))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(users).values(
                id="1mported000000000000000000000001",
                email="legacy@example.com",
                email_key="legacy@example.com",
                password_hash=node_hash.replace("$2b$", "$2a$", 1),
                roles="user",
                created_at=now,
                updated_at=now,
            )
        )
    response = await api.post(
        "/api/auth/login", json={"email": "legacy@example.com", "password": "imported secret pass"}
    )
    assert response.status_code == 200, response.text
    with engine.connect() as connection:
        stored = connection.execute(
            select(users.c.password_hash).where(users.c.email_key == "legacy@example.com")
        ).scalar_one()
    engine.dispose()
    assert stored.startswith("$argon2id$")
    again = await api.post(
        "/api/auth/login", json={"email": "legacy@example.com", "password": "imported secret pass"}
    )
    assert again.status_code == 200


async def test_disabled_account_is_told_only_with_the_right_password(
    api: httpx.AsyncClient,
) -> None:
    """A wrong password on a disabled account looks like any wrong password."""
    await register(api)
    services = api.app.state.services  # type: ignore[attr-defined]
    user = services.admin.find_user("ada@example.com")
    services.admin.set_disabled(user.id, True)
    wrong = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "nope nope nope"}
    )
    assert error_of(wrong) == (401, "invalid_credentials")
    right = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(right) == (403, "account_disabled")


async def test_deleting_ones_account_needs_the_password_and_ends_everything(
    api: httpx.AsyncClient,
) -> None:
    """A wrong password is 401 invalid_credentials and changes nothing; the right one deletes
    the account: every session and access token stops at once and the login fails."""
    phone = await login(api, "ada@example.com")
    laptop = await login(api, "ada@example.com", create=False)

    wrong = await api.post(
        "/api/auth/account/delete",
        json={"current_password": "not the password"},
        headers=bearer(phone.access_token),
    )
    assert error_of(wrong) == (401, "invalid_credentials")
    assert (await api.get("/api/auth/me", headers=bearer(laptop.access_token))).status_code == 200

    deleted = await api.post(
        "/api/auth/account/delete",
        json={"current_password": DEFAULT_PASSWORD},
        headers=bearer(phone.access_token),
    )

    assert deleted.status_code == 204
    for tokens in (phone, laptop):
        me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
        assert error_of(me) == (401, "invalid_token")
        refreshed = await api.post(
            "/api/auth/refresh", json={"refresh_token": tokens.refresh_token}
        )
        assert refreshed.status_code == 401
    again = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(again) == (401, "invalid_credentials")
    assert (await register(api, "ada@example.com"))["id"] != phone.user["id"]


async def test_deleting_ones_account_by_cookie_clears_the_cookies(
    api: httpx.AsyncClient,
) -> None:
    """In browser mode the deletion needs the CSRF token and clears the session cookies."""
    await register(api)
    signed_in = await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "cookie"},
    )
    assert signed_in.status_code == 200
    body = {"current_password": DEFAULT_PASSWORD}

    forged = await api.post("/api/auth/account/delete", json=body)
    assert error_of(forged) == (403, "csrf_failed")

    deleted = await api.post(
        "/api/auth/account/delete",
        json=body,
        headers={"X-CSRF-Token": api.cookies.get("csrf_token") or ""},
    )

    assert deleted.status_code == 204
    cleared = {header.split("=", 1)[0] for header in deleted.headers.get_list("set-cookie")}
    assert {"access_token", "refresh_token", "csrf_token"} <= cleared
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_deleting_ones_account_is_locked_after_max_wrong_passwords(
    make_api: ApiFactory,
) -> None:
    """Past KEYTURN_LOGIN_MAX_FAILURES wrong passwords the deletion is 429 with Retry-After,
    even with the right password, and the account stays."""
    api = await make_api(login_max_failures=2)
    ada = await login(api, "ada@example.com")
    auth = bearer(ada.access_token)

    for _ in range(2):
        wrong = await api.post(
            "/api/auth/account/delete", json={"current_password": "not it"}, headers=auth
        )
        assert error_of(wrong) == (401, "invalid_credentials")
    locked = await api.post(
        "/api/auth/account/delete", json={"current_password": DEFAULT_PASSWORD}, headers=auth
    )

    assert error_of(locked) == (429, "too_many_requests")
    assert int(locked.headers["Retry-After"]) > 0
    assert (await api.get("/api/auth/me", headers=auth)).status_code == 200


async def test_deletion_and_login_guesses_share_one_allowance(make_api: ApiFactory) -> None:
    """Wrong passwords at the login form and at account deletion use up the same allowance:
    switching forms gives a guesser no fresh count."""
    api = await make_api(login_max_failures=3)
    ada = await login(api, "ada@example.com")
    auth = bearer(ada.access_token)
    for _ in range(2):
        wrong_login = await api.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": "not it"}
        )
        assert error_of(wrong_login) == (401, "invalid_credentials")
    wrong = await api.post(
        "/api/auth/account/delete", json={"current_password": "not it"}, headers=auth
    )
    assert error_of(wrong) == (401, "invalid_credentials")

    locked = await api.post(
        "/api/auth/account/delete", json={"current_password": DEFAULT_PASSWORD}, headers=auth
    )

    assert error_of(locked) == (429, "too_many_requests")
    assert (await api.get("/api/auth/me", headers=auth)).status_code == 200
