"""Sign in with GitHub (an OAuth app, no ID token): against a stand-in for GitHub's endpoints,
since GitHub itself cannot be reached from a test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.environment import ApiFactory
from tests.support.oidc import free_port
from tests.support.stand_ins import GitHubStandIn, GitHubUser


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    with GitHubStandIn().running() as running:
        yield running


@pytest.fixture
async def api(make_api: ApiFactory, github: GitHubStandIn) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api(**github.settings())
    return client


def octocat(
    *, user_id: int = 583231, email: str = "octo@example.com", verified: bool = True
) -> GitHubUser:
    return GitHubUser(
        id=user_id,
        login="octocat",
        emails=[
            {"email": "old@example.com", "primary": False, "verified": True},
            {"email": email, "primary": True, "verified": verified},
        ],
    )


async def sign_in(
    api: httpx.AsyncClient, github: GitHubStandIn, user: GitHubUser
) -> httpx.Response:
    """Start, let GitHub's authorize page send the browser back, call the callback."""
    github.next_user = user
    started = await api.get("/api/auth/oidc/github/start")
    assert started.status_code == 302, started.text
    assert started.headers["location"].startswith(f"{github.origin}/login/oauth/authorize?")
    async with httpx.AsyncClient() as browser:
        authorized = await browser.get(started.headers["location"])
    return await api.get(authorized.headers["location"])


async def test_github_is_listed_when_configured(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/auth/providers")

    assert response.json() == {"providers": [{"id": "github", "name": "GitHub"}]}


async def test_a_github_sign_in_creates_an_account_with_the_primary_verified_address(
    api: httpx.AsyncClient, github: GitHubStandIn
) -> None:
    response = await sign_in(api, github, octocat())

    assert response.headers["location"] == "/dashboard"
    user = (await api.get("/api/auth/me")).json()["user"]
    assert (user["email"], user["email_verified"]) == ("octo@example.com", True)
    [identity] = (await api.get("/api/auth/identities")).json()["identities"]
    assert (identity["provider"], identity["email"]) == ("github", "octo@example.com")


async def test_the_subject_is_githubs_numeric_id(
    api: httpx.AsyncClient, github: GitHubStandIn
) -> None:
    """The same GitHub user with a changed address is still the same account; another user
    (another id) is not, even with the first one's old address."""
    await sign_in(api, github, octocat())
    first = (await api.get("/api/auth/me")).json()["user"]["id"]
    api.cookies.clear()

    await sign_in(api, github, octocat(email="renamed@example.com"))
    again = (await api.get("/api/auth/me")).json()["user"]["id"]

    assert again == first


async def test_an_unverified_primary_address_does_not_join_an_account(
    api: httpx.AsyncClient, github: GitHubStandIn
) -> None:
    """Another GitHub user whose unverified primary address is a Keyturn account's: refused."""
    await sign_in(api, github, octocat())
    api.cookies.clear()

    response = await sign_in(api, github, octocat(user_id=999, verified=False))

    assert response.headers["location"] == "/login?error=account_exists"
    assert (await api.get("/api/auth/me")).status_code == 401


async def test_github_refusing_the_code_comes_back_as_a_provider_error(
    api: httpx.AsyncClient, github: GitHubStandIn
) -> None:
    github.next_user = octocat()
    started = await api.get("/api/auth/oidc/github/start")
    state = httpx.URL(started.headers["location"]).params["state"]

    response = await api.get(
        "/api/auth/oidc/github/callback", params={"code": "made-up", "state": state}
    )

    assert response.headers["location"] == "/login?error=provider_error"


async def test_github_unreachable_comes_back_as_provider_unavailable(
    make_api: ApiFactory, github: GitHubStandIn
) -> None:
    """The token endpoint does not answer: /login?error=provider_unavailable, never a 500."""
    settings = {**github.settings(), "github_token_url": f"http://127.0.0.1:{free_port()}/token"}
    api = await make_api(**settings, provider_timeout_seconds=2)

    response = await sign_in(api, github, octocat())

    assert response.headers["location"] == "/login?error=provider_unavailable"
