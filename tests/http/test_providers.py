"""Sign in with a provider, end to end against a real OpenID Connect provider (oidc-provider
under Node): accounts created and found, linking and its refusals, state, return_to."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, error_of, register
from tests.support.authenticator import SoftwareAuthenticator
from tests.support.environment import TEST_ISSUER, ApiFactory
from tests.support.metrics import metric, scrape
from tests.support.mfa import claims_of, code_for, enrol
from tests.support.oidc import OTHER_CLIENT_ID, OidcProvider, free_port, sign_in_at_provider

CALLBACK_PREFIX = f"{TEST_ISSUER}/api/auth/oidc/"


@pytest.fixture
def clock() -> FrozenClock:
    """The provider's ID tokens carry the real time; Keyturn checks them against this clock."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
async def api(make_api: ApiFactory, oidc_provider: OidcProvider) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(
        oidc_providers=[
            oidc_provider.settings_entry("local"),
            oidc_provider.settings_entry("other", client_id=OTHER_CLIENT_ID),
        ]
    )
    return client


async def start(api: httpx.AsyncClient, provider: str = "local", **params: Any) -> httpx.Response:
    return await api.get(f"/api/auth/oidc/{provider}/start", params=params)


async def provider_callback_url(
    api: httpx.AsyncClient, login: str, provider: str = "local", **params: Any
) -> str:
    started = await start(api, provider, **params)
    assert started.status_code == 302, started.text
    return await sign_in_at_provider(
        started.headers["location"], login=login, callback_prefix=CALLBACK_PREFIX
    )


async def sign_in(
    api: httpx.AsyncClient, login: str, provider: str = "local", **params: Any
) -> httpx.Response:
    """Start, go through the provider's pages as `login`, and call Keyturn's callback."""
    return await api.get(await provider_callback_url(api, login, provider, **params))


async def me(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/api/auth/me")
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


async def identities(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/api/auth/identities")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["identities"]
    return found


async def cookie_login(api: httpx.AsyncClient, email: str) -> str:
    """Log in in browser mode; the CSRF token the page would echo."""
    response = await api.post(
        "/api/auth/login",
        json={"email": email, "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "cookie"},
    )
    assert response.status_code == 200, response.text
    return api.cookies["csrf_token"]


async def link(api: httpx.AsyncClient, login: str, provider: str = "local") -> httpx.Response:
    csrf = api.cookies["csrf_token"]
    started = await api.post(f"/api/auth/oidc/{provider}/link", headers={"X-CSRF-Token": csrf})
    assert started.status_code == 200, started.text
    callback = await sign_in_at_provider(
        started.json()["location"], login=login, callback_prefix=CALLBACK_PREFIX
    )
    return await api.get(callback)


async def test_providers_are_listed(api: httpx.AsyncClient) -> None:
    """GET /api/auth/providers names each configured provider."""
    response = await api.get("/api/auth/providers")

    assert response.json() == {
        "providers": [{"id": "local", "name": "Local"}, {"id": "other", "name": "Other"}]
    }


async def test_start_sends_the_browser_to_the_provider_with_pkce_state_and_nonce(
    api: httpx.AsyncClient, oidc_provider: OidcProvider
) -> None:
    """The authorization request asks for a code with PKCE S256, a state and a nonce; the
    state cookie is HttpOnly, Lax, and lives 10 minutes."""
    response = await start(api)

    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(f"{oidc_provider.issuer}/auth?")
    query = dict(location.params)
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32
    assert query["redirect_uri"] == f"{TEST_ISSUER}/api/auth/oidc/local/callback"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("oidc_state=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=600" in cookie
    assert query["state"] not in cookie.split(".")[-1]


async def test_a_first_sign_in_creates_an_account_and_opens_a_browser_session(
    api: httpx.AsyncClient,
) -> None:
    """A new subject with a new address: an account with the provider's verified address,
    the cookies of browser mode, and a 302 to /dashboard."""
    response = await sign_in(api, "ada")

    assert response.status_code == 302
    assert response.headers["location"] == "/dashboard"
    assert response.headers["referrer-policy"] == "no-referrer"
    set_cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith("access_token=") and "HttpOnly" in c for c in set_cookies)
    assert any(c.startswith("refresh_token=") for c in set_cookies)
    assert any(c.startswith("csrf_token=") for c in set_cookies)
    assert any(c.startswith("oidc_state=;") and "Max-Age=0" in c for c in set_cookies)
    user = await me(api)
    assert (user["email"], user["email_verified"], user["roles"]) == (
        "ada@example.com",
        True,
        ["user"],
    )
    [identity] = await identities(api)
    assert (identity["provider"], identity["email"]) == ("local", "ada@example.com")


async def test_signing_in_again_finds_the_same_account(api: httpx.AsyncClient) -> None:
    """A known (provider, subject) signs in as its user: no second account."""
    await sign_in(api, "ada")
    first = await me(api)
    api.cookies.clear()

    again = await sign_in(api, "ada")

    assert again.headers["location"] == "/dashboard"
    assert (await me(api))["id"] == first["id"]
    assert len(await identities(api)) == 1


async def test_a_provider_account_cannot_log_in_with_a_password(api: httpx.AsyncClient) -> None:
    """An account a provider created has no password: every password is refused as a wrong
    one would be (401 invalid_credentials)."""
    await sign_in(api, "ada")
    api.cookies.clear()

    for password in ("", DEFAULT_PASSWORD, "x" * 20):
        response = await api.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": password or "a"}
        )
        assert error_of(response) == (401, "invalid_credentials")


async def test_a_verified_address_links_to_the_verified_account_with_that_address(
    api: httpx.AsyncClient,
) -> None:
    """A second provider vouching for the same address joins the account that proved it."""
    await sign_in(api, "ada")
    account = await me(api)
    api.cookies.clear()

    response = await sign_in(api, "ada", provider="other")

    assert response.headers["location"] == "/dashboard"
    assert (await me(api))["id"] == account["id"]
    assert sorted(i["provider"] for i in await identities(api)) == ["local", "other"]


async def test_an_unverified_account_with_the_address_is_not_taken_over(
    api: httpx.AsyncClient,
) -> None:
    """Someone registered the address without proving it: a provider sign-in with that
    address is refused (account_exists), links nothing and opens no session."""
    await register(api, "ada@example.com")

    response = await sign_in(api, "ada")

    assert response.headers["location"] == "/login?error=account_exists"
    assert not any(c.startswith("access_token=") for c in response.headers.get_list("set-cookie"))
    await cookie_login(api, "ada@example.com")
    assert await identities(api) == []


async def test_an_address_the_provider_does_not_vouch_for_is_not_linked(
    api: httpx.AsyncClient,
) -> None:
    """The provider says the address is unverified: an existing account with it, verified
    or not, is never joined."""
    await sign_in(api, "unverified-eve", provider="other")  # creates it, unverified
    api.cookies.clear()
    await register(api, "someone@example.com")

    response = await sign_in(api, "unverified-eve")

    assert response.headers["location"] == "/login?error=account_exists"


async def test_a_new_account_from_an_unverified_address_stays_unverified(
    api: httpx.AsyncClient,
) -> None:
    """The provider's word is what `email_verified` says."""
    await sign_in(api, "unverified-eve")

    assert (await me(api))["email_verified"] is False


async def test_return_to_is_where_the_callback_sends_the_browser(api: httpx.AsyncClient) -> None:
    response = await sign_in(api, "ada", return_to="/dashboard?tab=sessions")

    assert response.headers["location"] == "/dashboard?tab=sessions"


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "dashboard",
        "/dash\nboard",
        "/\tevil",
        " /dashboard",
    ],
)
async def test_a_return_to_off_this_site_is_refused(api: httpx.AsyncClient, return_to: str) -> None:
    """400 invalid_return_to, and no state cookie: nothing was started."""
    response = await start(api, return_to=return_to)

    assert error_of(response) == (400, "invalid_return_to")
    assert "oidc_state" not in response.headers.get("set-cookie", "")


async def test_an_unknown_provider_is_404(api: httpx.AsyncClient) -> None:
    assert error_of(await start(api, "nobody")) == (404, "provider_not_found")


async def test_a_callback_without_the_state_cookie_is_refused(api: httpx.AsyncClient) -> None:
    """Login CSRF: a callback URL from someone else's sign-in does not work in this browser."""
    callback = await provider_callback_url(api, "mallory")
    api.cookies.clear()

    response = await api.get(callback)

    assert response.headers["location"] == "/login?error=invalid_state"
    assert not any(c.startswith("access_token=") for c in response.headers.get_list("set-cookie"))


async def test_a_callback_with_another_state_is_refused(api: httpx.AsyncClient) -> None:
    callback = httpx.URL(await provider_callback_url(api, "ada"))
    wrong = callback.copy_set_param("state", "x" * 43)

    response = await api.get(str(wrong))

    assert response.headers["location"] == "/login?error=invalid_state"
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_a_replayed_callback_is_refused(api: httpx.AsyncClient) -> None:
    """The same callback with the same state cookie works once (the cookie is cleared, and
    the state is remembered as used should the old cookie come back)."""
    callback = await provider_callback_url(api, "ada")
    state_cookie = api.cookies["oidc_state"]
    assert (await api.get(callback)).headers["location"] == "/dashboard"
    api.cookies.clear()
    api.cookies.set("oidc_state", state_cookie, domain="keyturn.test")

    replay = await api.get(callback)

    assert replay.headers["location"] == "/login?error=invalid_state"
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_a_tampered_state_cookie_is_refused(api: httpx.AsyncClient) -> None:
    callback = await provider_callback_url(api, "ada")
    payload, mac = api.cookies["oidc_state"].split(".")
    api.cookies.set("oidc_state", f"{payload}.{mac[::-1]}", domain="keyturn.test")

    response = await api.get(callback)

    assert response.headers["location"] == "/login?error=invalid_state"


async def test_a_swapped_code_is_refused(make_api: ApiFactory, api: httpx.AsyncClient) -> None:
    """An attacker puts the victim's code into their own sign-in (their own state and
    cookie): the code was issued for another PKCE verifier, and the provider refuses it."""
    victim = httpx.URL(await provider_callback_url(api, "victim"))
    api.cookies.clear()
    attacker = httpx.URL(await provider_callback_url(api, "attacker"))
    swapped = attacker.copy_set_param("code", victim.params["code"])

    response = await api.get(str(swapped))

    assert response.headers["location"] == "/login?error=provider_error"
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_cancelling_at_the_provider_comes_back_as_access_denied(
    api: httpx.AsyncClient,
) -> None:
    started = await start(api)
    callback = await sign_in_at_provider(
        started.headers["location"], login="ada", callback_prefix=CALLBACK_PREFIX, cancel=True
    )

    response = await api.get(callback)

    assert response.headers["location"] == "/login?error=access_denied"


async def test_a_provider_that_is_down_sends_the_user_back_to_login(
    make_api: ApiFactory,
) -> None:
    """No 500: /login?error=provider_unavailable, and no state cookie."""
    api = await make_api(
        oidc_providers=[
            {
                "id": "down",
                "name": "Down",
                "issuer": f"http://127.0.0.1:{free_port()}",
                "client_id": "keyturn",
                "client_secret": "s",
            }
        ],
        provider_timeout_seconds=2,
    )

    response = await start(api, "down")

    assert (response.status_code, response.headers["location"]) == (
        302,
        "/login?error=provider_unavailable",
    )
    assert "set-cookie" not in response.headers


async def test_a_disabled_account_cannot_sign_in_through_a_provider(
    api: httpx.AsyncClient,
) -> None:
    """The admin's disable holds for provider sign-ins too."""
    await sign_in(api, "ada")
    user = await me(api)
    api.cookies.clear()
    admin_token = await _admin_token(api)
    disabled = await api.post(
        f"/api/admin/users/{user['id']}/disable",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert disabled.status_code == 204

    response = await sign_in(api, "ada")

    assert response.headers["location"] == "/login?error=account_disabled"


async def _admin_token(api: httpx.AsyncClient) -> str:
    """An admin's access token, made the way an operator makes one: the CLI's service."""
    services = api.app.state.services  # type: ignore[attr-defined]
    services.accounts.register(
        email="root@example.com", password=DEFAULT_PASSWORD, roles=("user", "admin")
    )
    response = await api.post(
        "/api/auth/login", json={"email": "root@example.com", "password": DEFAULT_PASSWORD}
    )
    token: str = response.json()["access_token"]
    return token


async def test_a_signed_in_user_links_a_provider(api: httpx.AsyncClient) -> None:
    """POST …/link (CSRF-checked) then the provider: the identity joins this account, whatever
    its address, and the session stays the same."""
    await register(api, "grace@example.com")
    await cookie_login(api, "grace@example.com")

    response = await link(api, "someone-else")

    assert response.headers["location"] == "/dashboard"
    [identity] = await identities(api)
    assert (identity["provider"], identity["email"]) == ("local", "someone-else@example.com")
    assert (await me(api))["email"] == "grace@example.com"


async def test_linking_needs_the_csrf_token_and_cannot_start_with_a_get(
    api: httpx.AsyncClient,
) -> None:
    await register(api, "grace@example.com")
    await cookie_login(api, "grace@example.com")

    without = await api.post("/api/auth/oidc/local/link")
    by_get = await start(api, link="true")

    assert error_of(without) == (403, "csrf_failed")
    assert error_of(by_get) == (400, "invalid_request")


async def test_linking_an_identity_another_account_has_links_nothing(
    api: httpx.AsyncClient,
) -> None:
    """/dashboard?error=identity_in_use; the identity stays with its owner."""
    await sign_in(api, "dave")
    owner = await me(api)
    api.cookies.clear()
    await register(api, "grace@example.com")
    await cookie_login(api, "grace@example.com")

    response = await link(api, "dave")

    assert response.headers["location"] == "/dashboard?error=identity_in_use"
    assert await identities(api) == []
    api.cookies.clear()
    await sign_in(api, "dave")
    assert (await me(api))["id"] == owner["id"]


async def test_the_last_way_in_cannot_be_unlinked(api: httpx.AsyncClient) -> None:
    """No password and one identity: 409 last_sign_in_method. With a second identity, one
    of them can go."""
    await sign_in(api, "ada")
    [only] = await identities(api)
    csrf = {"X-CSRF-Token": api.cookies["csrf_token"]}

    refused = await api.delete(f"/api/auth/identities/{only['id']}", headers=csrf)
    assert error_of(refused) == (409, "last_sign_in_method")

    assert (await link(api, "ada", provider="other")).headers["location"] == "/dashboard"
    unlinked = await api.delete(f"/api/auth/identities/{only['id']}", headers=csrf)
    assert unlinked.status_code == 204
    assert [i["provider"] for i in await identities(api)] == ["other"]


async def test_an_account_with_a_password_can_unlink_its_only_provider(
    api: httpx.AsyncClient,
) -> None:
    await register(api, "grace@example.com")
    await cookie_login(api, "grace@example.com")
    await link(api, "grace")
    [identity] = await identities(api)

    response = await api.delete(
        f"/api/auth/identities/{identity['id']}",
        headers={"X-CSRF-Token": api.cookies["csrf_token"]},
    )

    assert response.status_code == 204
    assert await identities(api) == []


async def test_nobody_unlinks_another_users_identity(api: httpx.AsyncClient) -> None:
    await sign_in(api, "ada")
    [theirs] = await identities(api)
    api.cookies.clear()
    await register(api, "grace@example.com")
    csrf = await cookie_login(api, "grace@example.com")

    response = await api.delete(
        f"/api/auth/identities/{theirs['id']}", headers={"X-CSRF-Token": csrf}
    )

    assert error_of(response) == (404, "identity_not_found")


async def test_the_callback_writes_no_code_or_state_to_any_log(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log keeps the path only; nothing else logs the callback's query."""
    caplog.set_level(logging.DEBUG)
    callback = httpx.URL(await provider_callback_url(api, "ada"))
    caplog.clear()

    await api.get(str(callback))
    await api.get(str(callback))  # refused, and logged as refused

    # The test's own client (httpx, httpcore) logs the URLs it fetches; Keyturn's outbound
    # client is httpx2.
    server_records = [
        r for r in caplog.records if r.name.split(".")[0] not in ("httpx", "httpcore")
    ]
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in server_records)
    assert "provider sign-in refused: invalid_state" in logged
    for secret in (callback.params["code"], callback.params["state"]):
        assert secret not in logged


async def test_sign_ins_links_and_refusals_are_counted(api: httpx.AsyncClient) -> None:
    """keyturn_provider_sign_ins_total by provider, flow and outcome; identity changes too."""
    ok = {"provider": "local", "flow": "sign_in", "outcome": "ok"}
    refused = {"provider": "local", "flow": "sign_in", "outcome": "invalid_state"}
    linked = {"provider": "local", "change": "linked"}
    before = await scrape(api)

    await sign_in(api, "ada")
    api.cookies.clear()
    await api.get(await provider_callback_url(api, "ada") + "x")  # another state
    after = await scrape(api)

    assert metric(after, "keyturn_provider_sign_ins_total", **ok) == (
        metric(before, "keyturn_provider_sign_ins_total", **ok) + 1
    )
    assert metric(after, "keyturn_provider_sign_ins_total", **refused) == (
        metric(before, "keyturn_provider_sign_ins_total", **refused) + 1
    )
    assert metric(after, "keyturn_identity_changes_total", **linked) == (
        metric(before, "keyturn_identity_changes_total", **linked) + 1
    )


async def test_a_provider_sign_in_carries_amr_fed(api: httpx.AsyncClient) -> None:
    """The session a provider opens says how it was authenticated: amr ["fed"] (RFC 8176)."""
    await sign_in(api, "ada")

    assert claims_of(api.cookies["access_token"])["amr"] == ["fed"]


async def test_an_account_with_a_second_factor_is_asked_for_it_after_the_provider(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The provider alone opens no session for an account with an authenticator app: the
    callback sends the browser to the login page's second step, the mfa_token in the
    fragment, and a code finishes the sign-in with amr fed+otp+mfa."""
    await sign_in(api, "ada")
    enrolment = await enrol(api, api.cookies["access_token"], clock)
    api.cookies.clear()

    response = await sign_in(api, "ada")

    location = httpx.URL(response.headers["location"])
    assert (response.status_code, location.path) == (302, "/login")
    assert not any(c.startswith("access_token=") for c in response.headers.get_list("set-cookie"))
    fragment = dict(httpx.QueryParams(location.fragment))
    assert fragment["methods"] == "totp,recovery_code"
    done = await api.post(
        "/api/auth/mfa/verify",
        json={
            "mfa_token": fragment["mfa_token"],
            "code": code_for(enrolment.secret, clock.timestamp()),
        },
    )
    assert done.status_code == 200, done.text
    assert claims_of(done.json()["access_token"])["amr"] == ["fed", "otp", "mfa"]


async def test_unlinking_needs_a_recent_login(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Unlinking a provider changes how the account is entered: past KEYTURN_REAUTH_SECONDS
    since the sign-in, 403 reauthentication_required, and nothing is unlinked."""
    await sign_in(api, "ada")
    assert (await link(api, "ada", provider="other")).headers["location"] == "/dashboard"
    first, _second = await identities(api)
    clock.advance(seconds=601)

    refused = await api.delete(
        f"/api/auth/identities/{first['id']}",
        headers={"X-CSRF-Token": api.cookies["csrf_token"]},
    )

    assert error_of(refused) == (403, "reauthentication_required")
    assert len(await identities(api)) == 2


async def test_a_passkey_is_a_way_in_for_an_account_without_a_password(
    api: httpx.AsyncClient,
) -> None:
    """With a passkey, the only provider of a password-less account can be unlinked; the
    passkey is then the last way in, and removing it is 409 last_sign_in_method."""
    await sign_in(api, "ada")
    auth = {"Authorization": f"Bearer {api.cookies['access_token']}"}
    authenticator = SoftwareAuthenticator(origin=TEST_ISSUER)
    options = await api.post("/api/auth/passkeys/register/options", headers=auth)
    registered = await api.post(
        "/api/auth/passkeys/register",
        json={"credential": authenticator.create(options.json())},
        headers=auth,
    )
    assert registered.status_code == 201, registered.text
    [identity] = await identities(api)

    unlinked = await api.delete(f"/api/auth/identities/{identity['id']}", headers=auth)
    last = await api.delete(
        f"/api/auth/passkeys/{registered.json()['passkey']['id']}", headers=auth
    )

    assert unlinked.status_code == 204
    assert error_of(last) == (409, "last_sign_in_method")
