"""The `keyturn` command, run as a real process."""

from __future__ import annotations

import secrets
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import free_port, keyturn_environment, run_cli

pytestmark = pytest.mark.system


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def test_users_create_reads_the_password_from_stdin(workdir: Path) -> None:
    """Success prints the user; the password is never an argument and never printed."""
    result = run_cli(
        "users",
        "create",
        "--email",
        "ada@example.com",
        "--password-stdin",
        "--role",
        "admin",
        cwd=workdir,
        stdin="correct horse battery staple\n",
    )
    assert result.returncode == 0, result.stderr
    assert "ada@example.com" in result.stdout and "admin" in result.stdout
    assert "correct horse" not in result.stdout + result.stderr
    assert (workdir / ".keyturn" / "keyturn.db").exists()


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["--email", "not-an-email"], "correct horse battery staple\n", "email"),
        (["--email", "bob@example.com"], "password\n", "commonly used"),
        (["--email", "bob@example.com"], "short\n", "at least 8"),
        (["--email", "bob@example.com"], "", "no password"),
    ],
)
def test_users_create_refuses_with_one_clear_line(
    workdir: Path, args: list[str], stdin: str, expected: str
) -> None:
    result = run_cli("users", "create", *args, "--password-stdin", cwd=workdir, stdin=stdin)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keyturn: ") and expected in lines[0]


def test_users_create_refuses_a_duplicate(workdir: Path) -> None:
    first = run_cli(
        "users",
        "create",
        "--email",
        "ada@example.com",
        "--password-stdin",
        cwd=workdir,
        stdin="correct horse battery staple\n",
    )
    assert first.returncode == 0
    again = run_cli(
        "users",
        "create",
        "--email",
        "ADA@example.com",
        "--password-stdin",
        cwd=workdir,
        stdin="another fine passphrase\n",
    )
    assert again.returncode == 1
    assert again.stderr.strip() == "keyturn: An account with this email already exists."


def test_password_on_the_command_line_is_not_accepted(workdir: Path) -> None:
    result = run_cli("users", "create", "--email", "a@example.com", "--password", "x", cwd=workdir)
    assert result.returncode != 0


def kids_listed(workdir: Path) -> list[str]:
    """The first word of each line of `keyturn keys list`: the kids."""
    listing = run_cli("keys", "list", cwd=workdir).stdout
    return [line.split()[0] for line in listing.strip().splitlines()]


def test_db_upgrade_and_keys_rotate(workdir: Path) -> None:
    upgrade = run_cli("db", "upgrade", cwd=workdir)
    assert upgrade.returncode == 0 and "revision" in upgrade.stdout
    before = kids_listed(workdir)
    rotate = run_cli("keys", "rotate", cwd=workdir)
    assert rotate.returncode == 0, rotate.stderr
    after = kids_listed(workdir)
    assert len(before) == 1 and set(before) < set(after) and len(after) == 2


def test_invalid_setting_is_one_line(workdir: Path) -> None:
    env = keyturn_environment(KEYTURN_ACCESS_TTL_SECONDS="soon")
    result = run_cli("db", "upgrade", cwd=workdir, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("keyturn: invalid setting: KEYTURN_ACCESS_TTL_SECONDS")


def test_production_refuses_a_weak_hs256_key(workdir: Path) -> None:
    env = keyturn_environment(
        KEYTURN_ENV="production", KEYTURN_JWT_ALGORITHM="HS256", KEYTURN_SECRET_KEY="short"
    )
    result = run_cli("serve", "--port", "1", cwd=workdir, env=env)
    assert result.returncode == 1
    assert "KEYTURN_SECRET_KEY" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["serve"], ["users", "create"], ["db", "upgrade"], ["keys", "rotate"]]
)
def test_every_command_has_help(workdir: Path, command: list[str]) -> None:
    result = run_cli(*command, "--help", cwd=workdir)
    assert result.returncode == 0 and "usage: keyturn" in result.stdout


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The single `keyturn: ` line a refused command prints, after checking it is one."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("keyturn: "), result.stderr
    return lines[0]


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["db upgrade", "serve --port {port}"])
def test_a_missing_postgres_database_is_one_line(workdir: Path, command: str) -> None:
    """A database that does not exist is named in one line, not a traceback."""
    url = f"postgresql://postgres@127.0.0.1:5432/keyturn_missing_{secrets.token_hex(4)}"
    args = command.format(port=free_port()).split()
    result = run_cli(*args, cwd=workdir, env=keyturn_environment(KEYTURN_DATABASE_URL=url))
    assert "does not exist" in one_line_refusal(result)


def test_an_unreachable_database_is_one_line(workdir: Path) -> None:
    """Nothing listening at the database's address: one line naming the connection."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/keyturn"
    result = run_cli(
        "db", "upgrade", cwd=workdir, env=keyturn_environment(KEYTURN_DATABASE_URL=url)
    )
    assert "database" in one_line_refusal(result)


def test_serve_on_a_port_in_use_is_one_line(workdir: Path) -> None:
    """Another program holds the port: one line saying so, exit 1, no server log."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--port", str(port), cwd=workdir)
    line = one_line_refusal(result)
    assert str(port) in line and "in use" in line


@pytest.mark.parametrize("port", ["99999", "0", "-1", "eighty"])
def test_serve_refuses_a_port_outside_the_range(workdir: Path, port: str) -> None:
    """argparse refuses it, in the same one-line form as every other refusal."""
    result = run_cli("serve", "--port", port, cwd=workdir)
    assert "port" in one_line_refusal(result)


@pytest.mark.parametrize(
    "command",
    [["serve", "--bogus"], ["users", "create"], ["db"], ["keys", "frobnicate"], ["nonsense"], []],
)
def test_usage_mistakes_are_one_line_for_every_command(workdir: Path, command: list[str]) -> None:
    """Unknown options, missing arguments and unknown commands: one line, exit 1."""
    one_line_refusal(run_cli(*command, cwd=workdir))


def test_production_refuses_a_short_refresh_lifetime_in_one_line(workdir: Path) -> None:
    """Development takes any lifetime; production keeps a 60-second floor and says so."""
    env = keyturn_environment(
        KEYTURN_ENV="production",
        KEYTURN_ISSUER="https://auth.example.com",
        KEYTURN_REFRESH_TTL_SECONDS="5",
    )
    result = run_cli("serve", "--port", str(free_port()), cwd=workdir, env=env)
    line = one_line_refusal(result)
    assert "KEYTURN_REFRESH_TTL_SECONDS" in line and "at least 60 seconds" in line


def test_a_sqlite_path_that_cannot_be_made_is_one_line(workdir: Path) -> None:
    """The database's directory is a file: the refusal names the path, in one line."""
    (workdir / "occupied").write_text("")
    url = f"sqlite:///{workdir / 'occupied' / 'keyturn.db'}"
    result = run_cli(
        "db", "upgrade", cwd=workdir, env=keyturn_environment(KEYTURN_DATABASE_URL=url)
    )
    assert "occupied" in one_line_refusal(result)
