"""Passkeys over the API, with a software authenticator (tests/support/authenticator.py):
registration, the list, renaming and removal, and password-less login, with every way an
attacker could bend an assertion refused as 401 `invalid_credential`."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyturn.cli.main import main as keyturn_cli
from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, Login, bearer, error_of, login
from tests.support.authenticator import SoftwareAuthenticator, b64url
from tests.support.environment import TEST_ISSUER, ApiFactory
from tests.support.mfa import claims_of, start_login

ORIGIN = TEST_ISSUER  # the API client's own origin, so browser mode's cookies come back
CHROME_ON_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
async def api(make_api: ApiFactory) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(public_origin=ORIGIN)
    return client


async def add_passkey(
    api: httpx.AsyncClient, user: Login, authenticator: SoftwareAuthenticator, **body: Any
) -> dict[str, Any]:
    auth = bearer(user.access_token)
    options = await api.post("/api/auth/passkeys/register/options", headers=auth)
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json())
    response = await api.post(
        "/api/auth/passkeys/register", json={"credential": credential, **body}, headers=auth
    )
    assert response.status_code == 201, response.text
    passkey: dict[str, Any] = response.json()["passkey"]
    return passkey


async def login_options(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.post("/api/auth/passkeys/login/options")
    assert response.status_code == 200, response.text
    options: dict[str, Any] = response.json()
    return options


async def passkey_login(
    api: httpx.AsyncClient, credential: dict[str, Any], **headers: str
) -> httpx.Response:
    return await api.post(
        "/api/auth/passkeys/login", json={"credential": credential}, headers=headers
    )


async def listed(api: httpx.AsyncClient, user: Login) -> list[dict[str, Any]]:
    response = await api.get("/api/auth/passkeys", headers=bearer(user.access_token))
    assert response.status_code == 200, response.text
    passkeys: list[dict[str, Any]] = response.json()["passkeys"]
    return passkeys


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
    code = run_cli(
        "users", "create", "--email", "root@example.com", "--password-stdin", "--role", "admin",
        stdin=DEFAULT_PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0
    return await login(api, "root@example.com", create=False)


async def audited(api: httpx.AsyncClient, admin: Login, event: str) -> list[dict[str, Any]]:
    response = await api.get(f"/api/admin/audit?event={event}", headers=bearer(admin.access_token))
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


# Registration and the list.


async def test_registration_options_ask_for_a_discoverable_verified_credential(
    api: httpx.AsyncClient,
) -> None:
    """The creation options name Keyturn as relying party (the public origin's host), ask for
    a resident key and user verification, and exclude the account's passkeys."""
    ada = await login(api)
    first = await api.post("/api/auth/passkeys/register/options", headers=bearer(ada.access_token))
    options = first.json()

    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    assert options["rp"] == {"id": "keyturn.test", "name": "Keyturn"}
    assert options["user"]["name"] == "ada@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    assert len(options["challenge"]) >= 43  # 32 random bytes

    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)
    again = await api.post("/api/auth/passkeys/register/options", headers=bearer(ada.access_token))
    assert again.json()["excludeCredentials"] == [
        {
            "id": b64url(authenticator.credential_id),
            "type": "public-key",
            "transports": ["internal"],
        }
    ]


async def test_register_list_rename_and_remove(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """A passkey is registered (named after where it was made unless named), listed with its
    times, renamed, and removed; several per account."""
    ada = await login(api)
    api.headers["User-Agent"] = CHROME_ON_MAC
    laptop = await add_passkey(api, ada, SoftwareAuthenticator(origin=ORIGIN))
    clock.advance(seconds=60)
    phone = await add_passkey(api, ada, SoftwareAuthenticator(origin=ORIGIN), name="  My   phone ")

    assert laptop["name"] == "Chrome on macOS"
    assert phone["name"] == "My phone"
    assert [p["id"] for p in await listed(api, ada)] == [laptop["id"], phone["id"]]
    assert set((await listed(api, ada))[0]) == {"id", "name", "created_at", "last_used_at"}
    assert (await listed(api, ada))[0]["last_used_at"] is None

    auth = bearer(ada.access_token)
    renamed = await api.patch(
        f"/api/auth/passkeys/{laptop['id']}", json={"name": "Work laptop"}, headers=auth
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["passkey"]["name"] == "Work laptop"
    blank = await api.patch(f"/api/auth/passkeys/{laptop['id']}", json={"name": " "}, headers=auth)
    assert blank.status_code == 422

    removed = await api.delete(f"/api/auth/passkeys/{laptop['id']}", headers=auth)
    assert removed.status_code == 204
    assert [p["name"] for p in await listed(api, ada)] == ["My phone"]
    again = await api.delete(f"/api/auth/passkeys/{laptop['id']}", headers=auth)
    assert error_of(again) == (404, "passkey_not_found")


async def test_another_users_passkey_is_not_found(api: httpx.AsyncClient) -> None:
    """Bob can neither rename nor remove Ada's passkey: 404, as for one that does not exist."""
    ada = await login(api)
    bob = await login(api, "bob@example.com")
    passkey = await add_passkey(api, ada, SoftwareAuthenticator(origin=ORIGIN))
    auth = bearer(bob.access_token)

    renamed = await api.patch(
        f"/api/auth/passkeys/{passkey['id']}", json={"name": "mine now"}, headers=auth
    )
    removed = await api.delete(f"/api/auth/passkeys/{passkey['id']}", headers=auth)
    odd = await api.delete("/api/auth/passkeys/..%2F..%2Fx", headers=auth)

    assert error_of(renamed) == (404, "passkey_not_found")
    assert error_of(removed) == (404, "passkey_not_found")
    assert odd.status_code == 404
    assert await listed(api, bob) == []
    assert [p["name"] for p in await listed(api, ada)] == [passkey["name"]]


async def test_the_passkey_routes_need_an_access_token(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/api/auth/passkeys/register/options"),
        ("POST", "/api/auth/passkeys/register"),
        ("GET", "/api/auth/passkeys"),
        ("PATCH", "/api/auth/passkeys/abc"),
        ("DELETE", "/api/auth/passkeys/abc"),
    ]:
        response = await api.request(method, path, json={"credential": {}, "name": "x"})
        assert error_of(response) == (401, "missing_token"), (method, path)


async def test_a_registration_is_refused_when_it_proves_nothing(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """400 `invalid_credential` for a credential made for another origin, without user
    verification, for another account's challenge, after the challenge expired, with a used
    challenge, or registered already; nothing is stored."""
    ada = await login(api)
    bob = await login(api, "bob@example.com")
    auth = bearer(ada.access_token)

    async def options_for(user: Login) -> dict[str, Any]:
        response = await api.post(
            "/api/auth/passkeys/register/options", headers=bearer(user.access_token)
        )
        return dict(response.json())

    async def register(credential: dict[str, Any]) -> httpx.Response:
        return await api.post(
            "/api/auth/passkeys/register", json={"credential": credential}, headers=auth
        )

    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    elsewhere = await register(
        authenticator.create(await options_for(ada), origin="https://evil.example")
    )
    unverified = await register(authenticator.create(await options_for(ada), verified=False))
    bobs_challenge = await register(authenticator.create(await options_for(bob)))
    stale_options = await options_for(ada)
    clock.advance(seconds=301)
    expired = await register(authenticator.create(stale_options))
    used_options = await options_for(ada)
    accepted = await register(authenticator.create(used_options))
    replayed = await register(SoftwareAuthenticator(origin=ORIGIN).create(used_options))
    twice = await register(authenticator.create(await options_for(ada)))

    for refused in (elsewhere, unverified, bobs_challenge, expired, replayed, twice):
        assert error_of(refused) == (400, "invalid_credential"), refused.text
    assert accepted.status_code == 201
    assert len(await listed(api, ada)) == 1


# Password-less login.


async def test_passwordless_login_with_a_passkey(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The request options list no credentials (the browser discovers one) and require user
    verification; the assertion logs the owner in, and the list shows when it was used."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)
    clock.advance(seconds=30)

    options = await login_options(api)
    response = await passkey_login(api, authenticator.get(options))

    assert options["rpId"] == "keyturn.test"
    assert options.get("allowCredentials", []) == []
    assert options["userVerification"] == "required"
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["user"]["email"] == "ada@example.com"
    me = await api.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["user"]["id"] == ada.user["id"]
    refreshed = await api.post("/api/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert (await listed(api, ada))[0]["last_used_at"] is not None


async def test_passwordless_login_in_cookie_mode(api: httpx.AsyncClient) -> None:
    """`X-Auth-Mode: cookie` sets the session cookies as a password login does; a foreign
    Origin is refused (login CSRF)."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)

    foreign = await passkey_login(
        api,
        authenticator.get(await login_options(api)),
        **{"X-Auth-Mode": "cookie", "Origin": "https://evil.example"},
    )
    response = await passkey_login(
        api,
        authenticator.get(await login_options(api)),
        **{"X-Auth-Mode": "cookie", "Origin": ORIGIN},
    )

    assert error_of(foreign) == (403, "csrf_failed")
    assert response.status_code == 200, response.text
    assert "access_token" not in response.json()
    assert {"access_token", "refresh_token", "csrf_token"} <= set(api.cookies.keys())
    me = await api.get("/api/auth/me")
    assert me.json()["user"]["email"] == "ada@example.com"


async def test_a_replayed_assertion_is_refused(api: httpx.AsyncClient) -> None:
    """An assertion is accepted once: its challenge is used up by the first login."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False)
    await add_passkey(api, ada, authenticator)
    assertion = authenticator.get(await login_options(api))

    first = await passkey_login(api, assertion)
    replay = await passkey_login(api, assertion)

    assert first.status_code == 200
    assert error_of(replay) == (401, "invalid_credential")


async def test_an_assertion_for_another_origin_is_refused(api: httpx.AsyncClient) -> None:
    """A phishing site relaying our options gets an assertion naming its own origin (the
    browser writes it): refused, and so is one signed for another rp id."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)

    phished = await passkey_login(
        api, authenticator.get(await login_options(api), origin="https://keyturn.test.evil.example")
    )
    other_rp = await passkey_login(
        api, authenticator.get(await login_options(api), rp_id="evil.example")
    )

    assert error_of(phished) == (401, "invalid_credential")
    assert error_of(other_rp) == (401, "invalid_credential")


async def test_an_unknown_or_expired_challenge_is_refused(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """A challenge Keyturn never made, or one older than 300 s, serves no login."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False)
    await add_passkey(api, ada, authenticator)
    options = await login_options(api)

    made_up = await passkey_login(api, authenticator.get(options, challenge=b64url(b"x" * 32)))
    clock.advance(seconds=301)
    expired = await passkey_login(api, authenticator.get(options))

    assert error_of(made_up) == (401, "invalid_credential")
    assert error_of(expired) == (401, "invalid_credential")


async def test_a_challenge_serves_only_its_own_ceremony(api: httpx.AsyncClient) -> None:
    """A registration challenge cannot log in, and a login challenge cannot register."""
    ada = await login(api)
    auth = bearer(ada.access_token)
    authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False)
    await add_passkey(api, ada, authenticator)

    register_options = await api.post("/api/auth/passkeys/register/options", headers=auth)
    as_login = await passkey_login(
        api, authenticator.get({}, challenge=register_options.json()["challenge"])
    )
    login_challenge = (await login_options(api))["challenge"]
    creation = (await api.post("/api/auth/passkeys/register/options", headers=auth)).json()
    as_registration = await api.post(
        "/api/auth/passkeys/register",
        json={
            "credential": SoftwareAuthenticator(origin=ORIGIN).create(
                {**creation, "challenge": login_challenge}
            )
        },
        headers=auth,
    )

    assert error_of(as_login) == (401, "invalid_credential")
    assert error_of(as_registration) == (400, "invalid_credential")


async def test_a_counter_that_goes_back_is_refused_and_audited(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """An authenticator that keeps a counter must send a higher one each time: the same (or a
    lower) count behind a valid signature means a cloned key, refused and audited."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)
    assert (
        await passkey_login(api, authenticator.get(await login_options(api)))
    ).status_code == 200

    same = await passkey_login(api, authenticator.get(await login_options(api), sign_count=1))
    lower = await passkey_login(api, authenticator.get(await login_options(api), sign_count=0))
    higher = await passkey_login(api, authenticator.get(await login_options(api), sign_count=7))

    assert error_of(same) == (401, "invalid_credential")
    assert error_of(lower) == (401, "invalid_credential")
    assert higher.status_code == 200
    events = await audited(api, admin, "passkey_counter_regressed")
    assert len(events) == 2
    assert {event["user_id"] for event in events} == {ada.user["id"]}


async def test_an_authenticator_without_a_counter_logs_in_again(api: httpx.AsyncClient) -> None:
    """Counter 0 every time is how authenticators that keep none answer: accepted."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False, synced=True)
    await add_passkey(api, ada, authenticator)
    for _ in range(2):
        response = await passkey_login(api, authenticator.get(await login_options(api)))
        assert response.status_code == 200, response.text


async def test_assertions_that_prove_nothing_are_refused(api: httpx.AsyncClient) -> None:
    """An unregistered key, a forged signature, another account's user handle, no user
    verification: each 401 `invalid_credential`."""
    ada = await login(api)
    bob = await login(api, "bob@example.com")
    authenticator = SoftwareAuthenticator(origin=ORIGIN, counts=False)
    await add_passkey(api, ada, authenticator)
    await add_passkey(api, bob, SoftwareAuthenticator(origin=ORIGIN))

    stranger = SoftwareAuthenticator(origin=ORIGIN, user_handle=b"x", rp_id="keyturn.test")
    unknown = await passkey_login(api, stranger.get(await login_options(api)))
    forged = authenticator.get(await login_options(api))
    forged["response"]["signature"] = stranger.get({}, challenge="AA")["response"]["signature"]
    bad_signature = await passkey_login(api, forged)
    as_bob = await passkey_login(
        api, authenticator.get(await login_options(api), user_handle=bob.user["id"].encode())
    )
    no_handle = authenticator.get(await login_options(api))
    no_handle["response"]["userHandle"] = None
    without_handle = await passkey_login(api, no_handle)
    unverified = await passkey_login(
        api, authenticator.get(await login_options(api), verified=False)
    )

    for refused in (unknown, bad_signature, as_bob, without_handle, unverified):
        assert error_of(refused) == (401, "invalid_credential"), refused.text
    assert (
        await passkey_login(api, authenticator.get(await login_options(api)))
    ).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"credential": "not an object"},
        {"credential": None},
        {"credential": {}},
        {"credential": {"id": 1, "rawId": [], "response": "x", "type": "public-key"}},
        {"credential": {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}}},
        {
            "credential": {
                "id": "AA",
                "rawId": "AA",
                "type": "public-key",
                "response": {
                    "clientDataJSON": "%%%",
                    "authenticatorData": "e30",
                    "signature": "e30",
                    "attestationObject": "e30",
                },
            }
        },
        {
            "credential": {
                "id": "AA",
                "rawId": "AA",
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(b'{"type":"webauthn.get","challenge":7,"origin":1}'),
                    "authenticatorData": "AAAA",
                    "signature": "AAAA",
                    "attestationObject": "oA",
                },
            }
        },
        {"credential": {}, "extra": 1},
        {},
        [],
    ],
)
async def test_a_malformed_credential_is_a_4xx(api: httpx.AsyncClient, body: Any) -> None:
    """Whatever a client sends as a credential, login and registration answer 4xx, never 5xx."""
    ada = await login(api)
    await api.post("/api/auth/passkeys/register/options", headers=bearer(ada.access_token))
    await login_options(api)

    logged_in = await api.post("/api/auth/passkeys/login", json=body)
    registered = await api.post(
        "/api/auth/passkeys/register", json=body, headers=bearer(ada.access_token)
    )

    assert logged_in.status_code in (400, 401, 422), logged_in.text
    assert registered.status_code in (400, 422), registered.text
    assert "error" in logged_in.json() and "error" in registered.json()


async def test_a_body_that_is_no_json_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/auth/passkeys/login",
        content=b'{"credential": {',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_an_unknown_mfa_token_is_refused_on_both_routes(api: httpx.AsyncClient) -> None:
    """`mfa_token` is never ignored: an unknown one gets 401 `invalid_mfa_token` on both."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)

    options = await api.post("/api/auth/passkeys/login/options", json={"mfa_token": "abc"})
    assertion = authenticator.get(await login_options(api))
    logged_in = await api.post(
        "/api/auth/passkeys/login", json={"credential": assertion, "mfa_token": "abc"}
    )

    assert error_of(options) == (401, "invalid_mfa_token")
    assert error_of(logged_in) == (401, "invalid_mfa_token")


async def test_a_passkey_finishes_a_password_login_as_its_second_step(
    api: httpx.AsyncClient,
) -> None:
    """With a passkey, the password alone answers `mfa_required` offering it; the options for
    that mfa_token list the account's passkey, its assertion opens the session with amr
    pwd+hwk+mfa, and the token is spent."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    passkey = await add_passkey(api, ada, authenticator)
    me = await api.get("/api/auth/me", headers=bearer(ada.access_token))
    assert me.json()["user"]["mfa_enabled"] is True

    waiting = await start_login(api, "ada@example.com", DEFAULT_PASSWORD)
    assert waiting["methods"] == ["passkey"]
    token = waiting["mfa_token"]
    options = await api.post("/api/auth/passkeys/login/options", json={"mfa_token": token})
    assert options.status_code == 200, options.text
    allowed = [entry["id"] for entry in options.json()["allowCredentials"]]
    assert allowed == [b64url(authenticator.credential_id)]
    done = await api.post(
        "/api/auth/passkeys/login",
        json={"credential": authenticator.get(options.json()), "mfa_token": token},
    )
    again = await api.post("/api/auth/passkeys/login/options", json={"mfa_token": token})

    assert done.status_code == 200, done.text
    assert claims_of(done.json()["access_token"])["amr"] == ["pwd", "hwk", "mfa"]
    assert error_of(again) == (401, "invalid_mfa_token")
    # Removing the last passkey turns the second step off again.
    fresh = await api.post(
        "/api/auth/passkeys/login",
        json={"credential": authenticator.get(await login_options(api))},
    )
    auth = bearer(fresh.json()["access_token"])
    assert (
        await api.delete(f"/api/auth/passkeys/{passkey['id']}", headers=auth)
    ).status_code == 204
    assert (await login(api, create=False)).access_token


async def test_another_accounts_passkey_does_not_finish_a_login(api: httpx.AsyncClient) -> None:
    """An assertion by someone else's passkey is 401 `invalid_credential` and counts against
    the mfa_token: after five, the token is dead."""
    ada = await login(api)
    await add_passkey(api, ada, SoftwareAuthenticator(origin=ORIGIN))
    grace = await login(api, "grace@example.com")
    graces_key = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, grace, graces_key)

    token = (await start_login(api, "ada@example.com", DEFAULT_PASSWORD))["mfa_token"]
    answers = []
    for _ in range(5):
        options = await api.post("/api/auth/passkeys/login/options", json={"mfa_token": token})
        answers.append(
            await api.post(
                "/api/auth/passkeys/login",
                json={"credential": graces_key.get(options.json()), "mfa_token": token},
            )
        )
    after = await api.post("/api/auth/passkeys/login/options", json={"mfa_token": token})

    assert {error_of(answer) for answer in answers} == {(401, "invalid_credential")}
    assert error_of(after) == (401, "invalid_mfa_token")


async def test_a_password_less_login_carries_the_passkeys_amr(api: httpx.AsyncClient) -> None:
    """A device-bound key signs in with amr ["hwk"], a synced one with ["swk"]."""
    ada = await login(api)
    bound = SoftwareAuthenticator(origin=ORIGIN)
    synced = SoftwareAuthenticator(origin=ORIGIN, synced=True)
    await add_passkey(api, ada, bound)
    await add_passkey(api, ada, synced)

    by_bound = await passkey_login(api, bound.get(await login_options(api)))
    by_synced = await passkey_login(api, synced.get(await login_options(api)))

    assert claims_of(by_bound.json()["access_token"])["amr"] == ["hwk"]
    assert claims_of(by_synced.json()["access_token"])["amr"] == ["swk"]


async def test_a_disabled_user_cannot_log_in_with_a_passkey(
    api: httpx.AsyncClient, admin: Login
) -> None:
    """Disabled accounts are refused as the password login refuses them: 403."""
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)
    disabled = await api.post(
        f"/api/admin/users/{ada.user['id']}/disable", headers=bearer(admin.access_token)
    )
    assert disabled.status_code == 204

    response = await passkey_login(api, authenticator.get(await login_options(api)))

    assert error_of(response) == (403, "account_disabled")


async def test_failed_assertions_count_against_the_address_limit(
    make_api: ApiFactory,
) -> None:
    """Failures count on the caller's address like failed passwords; past the limit even a
    good passkey waits (429 with Retry-After), and so does a password."""
    api: httpx.AsyncClient = await make_api(public_origin=ORIGIN, login_max_failures_per_ip=3)
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    await add_passkey(api, ada, authenticator)
    good = await passkey_login(api, authenticator.get(await login_options(api)))
    assert good.status_code == 200  # a success gives its count back

    for _ in range(3):
        failed = await passkey_login(
            api, authenticator.get(await login_options(api), origin="https://x.example")
        )
        assert error_of(failed) == (401, "invalid_credential")
    locked = await passkey_login(api, authenticator.get(await login_options(api)))
    password = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )

    assert error_of(locked) == (429, "too_many_requests")
    assert int(locked.headers["retry-after"]) > 0
    assert password.status_code == 429


async def test_registration_login_and_removal_are_audited(
    api: httpx.AsyncClient, admin: Login
) -> None:
    ada = await login(api)
    authenticator = SoftwareAuthenticator(origin=ORIGIN)
    passkey = await add_passkey(api, ada, authenticator)
    await passkey_login(api, authenticator.get(await login_options(api)))
    await passkey_login(
        api, authenticator.get(await login_options(api), origin="https://x.example")
    )
    await api.delete(f"/api/auth/passkeys/{passkey['id']}", headers=bearer(ada.access_token))

    for event in ("passkey_registered", "passkey_used", "passkey_login_failed", "passkey_removed"):
        found = await audited(api, admin, event)
        assert [e["user_id"] for e in found] == [ada.user["id"]], event
