"""Second factors over HTTP: enrolling an authenticator app, the second step of a login (JSON,
cookies, OAuth), replay, the mfa_token's limits, lockout, recovery codes, admin removal."""

from __future__ import annotations

import asyncio
import email.policy
import time
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from keyturn.clock import FrozenClock
from keyturn.storage.models import totp_factors
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, refresh
from tests.support.environment import TEST_SECRETS_KEY, ApiFactory
from tests.support.mfa import claims_of, code_for, enrol, start_login

EMAIL = "ada@example.com"


async def enrolled(api: httpx.AsyncClient, clock: FrozenClock):  # type: ignore[no-untyped-def]
    first = await login(api, EMAIL)
    return first, await enrol(api, first.access_token, clock)


async def verify(api: httpx.AsyncClient, mfa_token: str, **answer: str) -> httpx.Response:
    return await api.post("/api/auth/mfa/verify", json={"mfa_token": mfa_token, **answer})


async def test_enrolled_login_needs_a_code_and_its_tokens_say_so(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """After the password, mfa_required with a token and methods; the code gives tokens whose
    amr is pwd+otp+mfa and whose auth_time is the login's; the user reads mfa_enabled."""
    first, app = await enrolled(api, clock)
    assert first.user["mfa_enabled"] is False
    assert len(app.recovery_codes) == 10 and len(set(app.recovery_codes)) == 10

    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    assert step["methods"] == ["totp", "recovery_code"]
    assert len(step["mfa_token"]) >= 22 and step["message"]
    done = await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))

    assert done.status_code == 200, done.text
    body = done.json()
    assert body["user"]["mfa_enabled"] is True
    claims = claims_of(body["access_token"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] == int(clock.timestamp())
    me = await api.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["user"]["mfa_enabled"] is True
    # A password login without MFA carries amr ["pwd"].
    assert claims_of(first.access_token)["amr"] == ["pwd"]


async def test_wrong_password_never_reaches_the_second_step(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    await enrolled(api, clock)
    response = await api.post("/api/auth/login", json={"email": EMAIL, "password": "wrong" * 3})
    assert error_of(response) == (401, "invalid_credentials")
    assert "mfa_token" not in response.json()


async def test_second_step_in_cookie_mode_sets_the_session_cookies(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    _, app = await enrolled(api, clock)
    cookie = {"X-Auth-Mode": "cookie"}
    started = await api.post(
        "/api/auth/login", json={"email": EMAIL, "password": DEFAULT_PASSWORD}, headers=cookie
    )
    assert error_of(started) == (401, "mfa_required")
    assert "set-cookie" not in started.headers

    done = await api.post(
        "/api/auth/mfa/verify",
        json={
            "mfa_token": started.json()["mfa_token"],
            "code": code_for(app.secret, clock.timestamp()),
        },
        headers=cookie,
    )

    assert done.status_code == 200, done.text
    assert "access_token" not in done.json()
    assert {"access_token", "refresh_token", "csrf_token"} <= set(done.cookies)
    me = await api.get("/api/auth/me")
    assert me.json()["user"]["mfa_enabled"] is True


async def test_oauth_password_grant_asks_for_the_second_factor(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    _, app = await enrolled(api, clock)
    response = await api.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": EMAIL,
            "password": DEFAULT_PASSWORD,
            "client_id": "cli",
        },
    )
    assert error_of(response) == (401, "mfa_required")
    assert response.json()["methods"] == ["totp", "recovery_code"]

    done = await verify(
        api, response.json()["mfa_token"], code=code_for(app.secret, clock.timestamp())
    )

    assert done.status_code == 200
    claims = claims_of(done.json()["access_token"])
    assert (claims["client_id"], claims["amr"]) == ("cli", ["pwd", "otp", "mfa"])


async def test_a_code_works_once(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """The code that finished one login cannot finish another, even within its 30 s."""
    _, app = await enrolled(api, clock)
    code = code_for(app.secret, clock.timestamp())
    first = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    assert (await verify(api, first["mfa_token"], code=code)).status_code == 200

    second = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    replay = await verify(api, second["mfa_token"], code=code)

    assert error_of(replay) == (401, "invalid_code")
    # An earlier step than the one used is refused too; the next one works.
    earlier = await verify(
        api, second["mfa_token"], code=code_for(app.secret, clock.timestamp(), steps=-1)
    )
    assert error_of(earlier) == (401, "invalid_code")
    later = await verify(
        api, second["mfa_token"], code=code_for(app.secret, clock.timestamp(), steps=1)
    )
    assert later.status_code == 200


@pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (1, True), (2, False)])
async def test_one_step_of_clock_skew_is_accepted_two_are_not(
    api: httpx.AsyncClient, clock: FrozenClock, steps: int, accepted: bool
) -> None:
    _, app = await enrolled(api, clock)
    clock.advance(seconds=120)  # past the step that confirmed the app
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    code = code_for(app.secret, clock.timestamp(), steps=steps)
    if not accepted and any(
        code == code_for(app.secret, clock.timestamp(), steps=near) for near in (-1, 0, 1)
    ):
        pytest.skip("a one-in-a-million collision of codes")

    response = await verify(api, step["mfa_token"], code=code)

    assert response.status_code == (200 if accepted else 401)


async def test_two_requests_racing_with_one_code_let_one_through(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """The step is claimed by a conditional UPDATE: of two logins sent at once with the
    same code, exactly one gets tokens."""
    _, app = await enrolled(api, clock)
    tokens = [(await start_login(api, EMAIL, DEFAULT_PASSWORD))["mfa_token"] for _ in range(2)]
    code = code_for(app.secret, clock.timestamp())

    answers = await asyncio.gather(*(verify(api, token, code=code) for token in tokens))

    assert sorted(answer.status_code for answer in answers) == [200, 401]


async def test_mfa_token_is_single_use(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    _, app = await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    assert (
        await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))
    ).status_code == 200
    clock.advance(seconds=30)

    again = await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))

    assert error_of(again) == (401, "invalid_mfa_token")


async def test_mfa_token_dies_after_300_seconds(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    _, app = await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    clock.advance(seconds=299)
    alive = await verify(
        api,
        step["mfa_token"],
        code="000000" if code_for(app.secret, clock.timestamp()) != "000000" else "111111",
    )
    assert error_of(alive) == (401, "invalid_code")
    clock.advance(seconds=1)

    late = await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))

    assert error_of(late) == (401, "invalid_mfa_token")


def wrong_code(secret: str, clock: FrozenClock) -> str:
    right = {code_for(secret, clock.timestamp(), steps=s) for s in (-1, 0, 1)}
    return next(c for c in ("123456", "654321", "000000") if c not in right)


async def test_mfa_token_dies_after_five_wrong_codes(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    api = await make_api(login_max_failures=50)
    _, app = await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    for _ in range(5):
        wrong = await verify(api, step["mfa_token"], code=wrong_code(app.secret, clock))
        assert error_of(wrong) == (401, "invalid_code")

    right = await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))

    assert error_of(right) == (401, "invalid_mfa_token")


async def test_guessing_codes_reaches_the_login_lockout(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """Wrong codes count against the per-account login limit: past it, 429 + Retry-After,
    for codes and passwords alike."""
    api = await make_api(login_max_failures=3)
    _, app = await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    for _ in range(3):
        assert (
            error_of(await verify(api, step["mfa_token"], code=wrong_code(app.secret, clock)))[1]
            == "invalid_code"
        )

    locked = await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))

    assert error_of(locked) == (429, "too_many_requests")
    assert int(locked.headers["retry-after"]) > 0
    password = await api.post(
        "/api/auth/login", json={"email": EMAIL, "password": DEFAULT_PASSWORD}
    )
    assert error_of(password) == (429, "too_many_requests")


async def test_malformed_second_steps_are_4xx(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    token = step["mfa_token"]
    for body in (
        {"mfa_token": token},
        {"mfa_token": token, "code": "123456", "recovery_code": "x"},
        {"mfa_token": token, "code": 123456},
        {"code": "123456"},
        {"mfa_token": token, "code": "\x00" * 6},
    ):
        response = await api.post("/api/auth/mfa/verify", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
    for bad_token in ("x", "ktr_" + "a" * 43, "a" * 43):
        assert error_of(await verify(api, bad_token, code="123456")) == (401, "invalid_mfa_token")


async def test_setup_twice_replaces_the_pending_secret_and_an_active_app_is_409(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first = await login(api, EMAIL)
    auth = bearer(first.access_token)
    old = (await api.post("/api/auth/mfa/totp/setup", headers=auth)).json()
    new = (await api.post("/api/auth/mfa/totp/setup", headers=auth)).json()
    assert old["secret"] != new["secret"]
    assert new["otpauth_uri"].startswith("otpauth://totp/")
    assert new["qr_svg"].lstrip().startswith("<svg")
    stale = await api.post(
        "/api/auth/mfa/totp/confirm",
        json={"code": code_for(old["secret"], clock.timestamp())},
        headers=auth,
    )
    assert error_of(stale) == (400, "invalid_code")
    confirmed = await api.post(
        "/api/auth/mfa/totp/confirm",
        json={"code": code_for(new["secret"], clock.timestamp())},
        headers=auth,
    )
    assert confirmed.status_code == 200

    again = await api.post("/api/auth/mfa/totp/setup", headers=auth)

    assert error_of(again) == (409, "mfa_already_enabled")


async def test_the_secret_is_sealed_at_rest(make_api: ApiFactory, clock: FrozenClock) -> None:
    """With KEYTURN_MFA_ENCRYPTION_KEY the secret is sealed with it: the row holds neither the
    secret nor anything the general key opens."""
    from cryptography.fernet import Fernet

    from keyturn.core.sealing import Sealer, SealingError

    api = await make_api(mfa_encryption_key=Fernet.generate_key().decode())
    first = await login(api, EMAIL)
    app = await enrol(api, first.access_token, clock)
    services = api.app.state.services  # type: ignore[attr-defined]
    with services.database.snapshot() as connection:
        stored = connection.execute(select(totp_factors.c.secret)).scalar_one()
    assert stored.startswith("fernet:") and app.secret not in stored
    with pytest.raises(SealingError):
        services.sealer.unseal(stored)
    assert isinstance(services.sealer, Sealer)


async def test_recovery_code_finishes_a_login_once_and_mails_the_owner(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    from keyturn.storage.models import mail_outbox

    _, app = await enrolled(api, clock)
    code = app.recovery_codes[3]
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)

    done = await verify(api, step["mfa_token"], recovery_code=code.upper())

    assert done.status_code == 200, done.text
    assert claims_of(done.json()["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    again = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    assert error_of(await verify(api, again["mfa_token"], recovery_code=code)) == (
        401,
        "invalid_code",
    )
    services = api.app.state.services  # type: ignore[attr-defined]
    with services.database.snapshot() as connection:
        names = (
            connection.execute(select(mail_outbox.c.name).where(mail_outbox.c.recipient == EMAIL))
            .scalars()
            .all()
        )
    assert "recovery_code_used" in names
    # Without SMTP in development, the sender writes it as an .eml file.
    deadline = time.monotonic() + 10
    while True:
        mails = [
            message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in Path(".keyturn/mail").glob("*.eml")
        ]
        notices = [m for m in mails if m["Subject"] == "A recovery code was used to log in"]
        if notices or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert len(notices) == 1 and notices[0]["To"] == EMAIL
    body = notices[0].get_body(preferencelist=("plain",)).get_content()
    assert "Recovery codes left: 9." in body
    assert code not in body


async def test_refresh_keeps_amr_and_auth_time(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    _, app = await enrolled(api, clock)
    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    done = (
        await verify(api, step["mfa_token"], code=code_for(app.secret, clock.timestamp()))
    ).json()
    logged_in = int(clock.timestamp())
    clock.advance(minutes=20)

    renewed = await refresh(api, done["refresh_token"])

    claims = claims_of(renewed.json()["access_token"])
    assert (claims["amr"], claims["auth_time"]) == (["pwd", "otp", "mfa"], logged_in)
    assert claims["iat"] == int(clock.timestamp())


async def test_turning_the_app_off_ends_the_second_step(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    first, _ = await enrolled(api, clock)
    deleted = await api.delete("/api/auth/mfa/totp", headers=bearer(first.access_token))
    assert deleted.status_code == 204

    plain = await login(api, EMAIL, create=False)

    assert plain.user["mfa_enabled"] is False
    assert claims_of(plain.access_token)["amr"] == ["pwd"]
    gone = await api.post("/api/auth/mfa/recovery-codes", headers=bearer(plain.access_token))
    assert error_of(gone) == (404, "mfa_not_enabled")


async def test_recovery_codes_can_be_replaced(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    first, app = await enrolled(api, clock)
    fresh = await api.post("/api/auth/mfa/recovery-codes", headers=bearer(first.access_token))
    assert fresh.status_code == 200
    new_codes = fresh.json()["recovery_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(app.recovery_codes)

    step = await start_login(api, EMAIL, DEFAULT_PASSWORD)
    old = await verify(api, step["mfa_token"], recovery_code=app.recovery_codes[0])
    assert error_of(old) == (401, "invalid_code")
    assert (await verify(api, step["mfa_token"], recovery_code=new_codes[0])).status_code == 200


async def test_admin_removes_a_users_factors_and_ends_their_sessions(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    services = api.app.state.services  # type: ignore[attr-defined]
    services.accounts.register(
        email="root@example.com", password=DEFAULT_PASSWORD, roles=("admin", "user")
    )
    admin = await login(api, "root@example.com", create=False)
    first, _ = await enrolled(api, clock)
    user_id = first.user["id"]
    refused = await api.delete(
        f"/api/admin/users/{user_id}/mfa", headers=bearer(first.access_token)
    )
    assert error_of(refused) == (403, "insufficient_role")

    removed = await api.delete(
        f"/api/admin/users/{user_id}/mfa", headers=bearer(admin.access_token)
    )

    assert removed.status_code == 204
    assert error_of(await api.get("/api/auth/me", headers=bearer(first.access_token))) == (
        401,
        "invalid_token",
    )
    plain = await login(api, EMAIL, create=False)
    assert plain.user["mfa_enabled"] is False
    events = await api.get(
        "/api/admin/audit", params={"event": "mfa_removed"}, headers=bearer(admin.access_token)
    )
    assert events.status_code == 200
    assert [e["user_id"] for e in events.json()["events"] if e["event"] == "mfa_removed"] == [
        user_id
    ]
    missing = await api.delete("/api/admin/users/nobody/mfa", headers=bearer(admin.access_token))
    assert error_of(missing) == (404, "user_not_found")


async def test_upkeep_purges_expired_mfa_tokens(api: httpx.AsyncClient, clock: FrozenClock) -> None:
    """Waiting logins leave no rows behind once their 300 s are over."""
    from sqlalchemy import func

    from keyturn.storage.models import mfa_challenges

    await enrolled(api, clock)
    await start_login(api, EMAIL, DEFAULT_PASSWORD)
    services = api.app.state.services  # type: ignore[attr-defined]

    def count() -> int:
        with services.database.snapshot() as connection:
            return int(
                connection.execute(select(func.count()).select_from(mfa_challenges)).scalar_one()
            )

    services.upkeep.purge()
    assert count() == 1
    clock.advance(seconds=301)
    services.upkeep.purge()
    assert count() == 0


async def test_cli_removes_a_users_factors(
    api: httpx.AsyncClient,
    clock: FrozenClock,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`keyturn users remove-mfa EMAIL`, for an operator when no admin can log in."""
    from keyturn.cli.main import main as keyturn_cli

    await enrolled(api, clock)
    monkeypatch.setenv("KEYTURN_DATABASE_URL", database_url)
    monkeypatch.setenv("KEYTURN_SECRETS_KEY", TEST_SECRETS_KEY)

    assert keyturn_cli(["users", "remove-mfa", EMAIL]) == 0

    assert capsys.readouterr().out.strip() == f"removed the second factors of {EMAIL}"
    plain = await login(api, EMAIL, create=False)
    assert plain.user["mfa_enabled"] is False
    assert keyturn_cli(["users", "remove-mfa", "nobody@example.com"]) == 1
