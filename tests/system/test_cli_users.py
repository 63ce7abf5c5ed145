"""`keyturn users list|disable|enable|delete|set-role`, run as real processes, also beside a
running server whose users they change."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.environment import RedisDatabase
from tests.support.processes import ServerFactory, keyturn_environment, run_cli

pytestmark = pytest.mark.system


def cli(workdir: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    env = keyturn_environment(KEYTURN_DATABASE_URL=f"sqlite:///{workdir}/keyturn.db")
    result = run_cli(*args, cwd=workdir, stdin=stdin, env=env)
    return result.returncode, result.stdout, result.stderr


def create(workdir: Path, email: str, *extra: str) -> str:
    code, out, err = cli(
        workdir, "users", "create", "--email", email, "--password-stdin", *extra,
        stdin=DEFAULT_PASSWORD + "\n",
    )  # fmt: skip
    assert code == 0, err
    return out.split()[2]  # "created user <id> <email> roles=..."


def listed(workdir: Path, *args: str) -> dict[str, list[str]]:
    code, out, err = cli(workdir, "users", "list", *args)
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    return {row[1]: row for row in rows}


def test_list_disable_enable_set_role(tmp_path: Path) -> None:
    """Each command changes what `users list` shows, by email, username or id."""
    create(tmp_path, "root@example.com", "--role", "admin")
    ada_id = create(tmp_path, "ada@example.com", "--username", "ada")
    create(tmp_path, "bob@example.com")

    rows = listed(tmp_path)
    assert list(rows) == ["root@example.com", "ada@example.com", "bob@example.com"]
    assert rows["ada@example.com"] == [ada_id, "ada@example.com", "ada", "user", "active"]
    assert rows["root@example.com"][3] == "admin,user"
    assert list(listed(tmp_path, "--email", "bob")) == ["bob@example.com"]
    assert list(listed(tmp_path, "--limit", "1", "--offset", "1")) == ["ada@example.com"]

    assert cli(tmp_path, "users", "disable", "ada")[:2] == (0, "disabled ada@example.com\n")
    assert listed(tmp_path)["ada@example.com"][4] == "disabled"
    assert cli(tmp_path, "users", "enable", ada_id)[:2] == (0, "enabled ada@example.com\n")
    assert listed(tmp_path)["ada@example.com"][4] == "active"

    code, out, _ = cli(tmp_path, "users", "set-role", "ada@example.com", "admin")
    assert (code, out) == (0, "ada@example.com roles=admin,user\n")
    code, out, _ = cli(tmp_path, "users", "set-role", "ada@example.com", "user")
    assert (code, out) == (0, "ada@example.com roles=user\n")
    assert listed(tmp_path)["ada@example.com"][3] == "user"


@pytest.mark.parametrize(
    "args",
    [
        ["users", "disable", "nobody@example.com"],
        ["users", "enable", "nobody"],
        ["users", "unlock", "nobody@example.com"],
        ["users", "set-role", "0" * 32, "admin"],
    ],
)
def test_unknown_user_is_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    code, out, err = cli(tmp_path, *args)
    assert (code, out, err) == (1, "", "keyturn: No such user.\n")


def test_unknown_role_is_refused(tmp_path: Path) -> None:
    create(tmp_path, "ada@example.com")
    code, _, err = cli(tmp_path, "users", "set-role", "ada@example.com", "root")
    assert code != 0 and "invalid choice" in err
    assert listed(tmp_path)["ada@example.com"][3] == "user"


@pytest.mark.parametrize(
    ("action", "login_error"),
    [("disable", "account_disabled"), ("delete", "invalid_credentials")],
)
def test_disable_by_cli_stops_a_running_servers_tokens(
    tmp_path: Path, make_server: ServerFactory, action: str, login_error: str
) -> None:
    """An operator disabling or deleting a user from the command line: the running server
    refuses that user's access token within a second and refuses their login."""
    server = make_server(KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db")
    create(tmp_path, "ada@example.com")
    with httpx.Client(base_url=server.url) as api:
        credentials = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        token = api.post("/api/auth/login", json=credentials).json()["access_token"]
        assert api.get("/api/auth/me", headers=bearer(token)).status_code == 200

        assert cli(tmp_path, "users", action, "ada@example.com")[0] == 0
        started = time.monotonic()
        while api.get("/api/auth/me", headers=bearer(token)).status_code == 200:
            assert time.monotonic() - started < 1.0, "token still accepted after 1 s"
            time.sleep(0.02)

        me = api.get("/api/auth/me", headers=bearer(token))
        assert me.json()["error"] == "invalid_token"
        assert api.post("/api/auth/login", json=credentials).json()["error"] == login_error


@pytest.mark.redis
def test_disable_by_cli_reaches_redis_and_the_server_at_once(
    tmp_path: Path, make_server: ServerFactory, redis_database: RedisDatabase
) -> None:
    """With Redis the command writes the ended session's key (for other services) and
    announces it: the server, polling its database only every 5 s, refuses at once."""
    redis_url = redis_database.url
    server = make_server(
        KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db",
        KEYTURN_REDIS_URL=redis_url,
        KEYTURN_REVOCATION_POLL_SECONDS="5",
        KEYTURN_REVOCATION_MAX_STALENESS_SECONDS="30",
    )
    create(tmp_path, "ada@example.com")
    with httpx.Client(base_url=server.url) as api:
        credentials = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        token = api.post("/api/auth/login", json=credentials).json()["access_token"]
        assert api.get("/api/auth/me", headers=bearer(token)).status_code == 200
        time.sleep(0.3)  # subscribed

        env = keyturn_environment(
            KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db", KEYTURN_REDIS_URL=redis_url
        )
        assert run_cli("users", "disable", "ada@example.com", cwd=tmp_path, env=env).returncode == 0
        started = time.monotonic()
        while api.get("/api/auth/me", headers=bearer(token)).status_code == 200:
            assert time.monotonic() - started < 1.0, "token still accepted after 1 s"
            time.sleep(0.02)

    sessions = [k for k in redis_database.keyturn_keys() if k.startswith("keyturn:revoked:sid:")]
    assert len(sessions) == 1
    assert redis_database.client.pttl(sessions[0]) > 0


def test_set_password_reads_stdin_and_ends_sessions(tmp_path: Path) -> None:
    """`users set-password EMAIL --password-stdin` sets the password from standard input only;
    a weak password, an empty input or an unknown user is one `keyturn:` line and exit 1."""
    create(tmp_path, "ada@example.com")
    new_password = "a fresh long passphrase"

    code, out, err = cli(
        tmp_path, "users", "set-password", "ada@example.com", "--password-stdin",
        stdin=new_password + "\n",
    )  # fmt: skip

    assert (code, out, err) == (
        0,
        "password set for ada@example.com; their sessions have ended\n",
        "",
    )
    refusals = [
        (["ada@example.com"], "password\n"),
        (["ada@example.com"], ""),
        (["nobody@example.com"], new_password + "\n"),
    ]
    for args, stdin in refusals:
        code, out, err = cli(
            tmp_path, "users", "set-password", *args, "--password-stdin", stdin=stdin
        )
        assert (code, out) == (1, ""), err
        assert err.startswith("keyturn: ") and err.count("\n") == 1, err
    code, _, err = cli(tmp_path, "users", "set-password", "ada@example.com", new_password)
    assert code != 0 and "--password-stdin" in err  # never from argv


def test_set_password_ends_a_running_servers_sessions(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    """Set beside a running server, the new password works there and the old one does not;
    the user's refresh token is refused."""
    create(tmp_path, "ada@example.com")
    server = make_server(KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db")
    tokens = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).json()

    code, _, err = cli(
        tmp_path, "users", "set-password", "ada@example.com", "--password-stdin",
        stdin="a fresh long passphrase\n",
    )  # fmt: skip

    assert code == 0, err
    refreshed = httpx.post(
        f"{server.url}/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    old = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    assert old.status_code == 401
    new = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": "a fresh long passphrase"},
    )
    assert new.status_code == 200


@pytest.mark.parametrize("with_redis", [False, pytest.param(True, marks=pytest.mark.redis)])
def test_unlock_by_cli_lets_the_right_password_in_and_is_audited(
    tmp_path: Path, make_server: ServerFactory, with_redis: bool, request: pytest.FixtureRequest
) -> None:
    """An account locked by failed logins on a running server (counters in its database, or
    in Redis) takes the right password again as soon as `keyturn users unlock` has run; the
    audit trail records the unlock."""
    variables = {"KEYTURN_DATABASE_URL": f"sqlite:///{tmp_path}/keyturn.db"}
    if with_redis:
        variables["KEYTURN_REDIS_URL"] = request.getfixturevalue("redis_database").url
    server = make_server(KEYTURN_LOGIN_MAX_FAILURES="2", **variables)
    create(tmp_path, "root@example.com", "--role", "admin")
    ada_id = create(tmp_path, "ada@example.com")
    with httpx.Client(base_url=server.url) as api:
        right = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        for _ in range(2):
            api.post("/api/auth/login", json={**right, "password": "not the right passphrase"})
        assert api.post("/api/auth/login", json=right).status_code == 429

        result = run_cli(
            "users", "unlock", "ada@example.com", cwd=tmp_path, env=keyturn_environment(**variables)
        )

        assert (result.returncode, result.stdout, result.stderr) == (
            0,
            "unlocked ada@example.com\n",
            "",
        )
        assert api.post("/api/auth/login", json=right).status_code == 200
        root = api.post(
            "/api/auth/login", json={"email": "root@example.com", "password": DEFAULT_PASSWORD}
        )
        audit = api.get(
            "/api/admin/audit?event=user_unlocked", headers=bearer(root.json()["access_token"])
        )
        assert [event["user_id"] for event in audit.json()["events"]] == [ada_id]
