"""The database remembers its issuer: an instance started with another KEYTURN_ISSUER
refuses to run, until the operator moves the database with `keyturn db set-issuer`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.processes import KeyturnServer, free_port, keyturn_environment, run_cli

pytestmark = pytest.mark.system

FIRST = "http://auth.keyturn.test"
SECOND = "http://login.keyturn.test"


def environment(database_url: str, issuer: str) -> dict[str, str]:
    return keyturn_environment(KEYTURN_DATABASE_URL=database_url, KEYTURN_ISSUER=issuer)


def refused_serve(tmp_path: Path, env: dict[str, str]) -> str:
    result = run_cli("serve", "--port", str(free_port()), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    return result.stderr.strip()


def test_another_issuer_on_the_same_database_refuses_to_start(
    tmp_path: Path, database_url: str
) -> None:
    with KeyturnServer(cwd=tmp_path, env=environment(database_url, FIRST)) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200

    message = refused_serve(tmp_path, environment(database_url, SECOND))

    assert len(message.splitlines()) == 1
    assert message.startswith("keyturn: ")
    assert FIRST in message and SECOND in message
    assert f"keyturn db set-issuer {SECOND}" in message


def test_set_issuer_moves_the_database_on_purpose(tmp_path: Path, database_url: str) -> None:
    with KeyturnServer(cwd=tmp_path, env=environment(database_url, FIRST)):
        pass

    moved = run_cli("db", "set-issuer", SECOND, cwd=tmp_path, env=environment(database_url, FIRST))

    assert moved.returncode == 0, moved.stderr
    assert FIRST in moved.stdout and SECOND in moved.stdout
    with KeyturnServer(cwd=tmp_path, env=environment(database_url, SECOND)) as server:
        discovery = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
        assert discovery["issuer"] == SECOND
    assert FIRST in refused_serve(tmp_path, environment(database_url, FIRST))


def test_db_upgrade_remembers_an_explicit_issuer(tmp_path: Path, database_url: str) -> None:
    upgraded = run_cli("db", "upgrade", cwd=tmp_path, env=environment(database_url, FIRST))
    assert upgraded.returncode == 0, upgraded.stderr

    assert FIRST in refused_serve(tmp_path, environment(database_url, SECOND))
    again = run_cli("db", "upgrade", cwd=tmp_path, env=environment(database_url, SECOND))
    assert again.returncode == 1
    assert FIRST in again.stderr and SECOND in again.stderr


def test_set_issuer_refuses_what_is_not_a_url(tmp_path: Path, database_url: str) -> None:
    result = run_cli(
        "db", "set-issuer", "auth.keyturn.test", cwd=tmp_path, env=environment(database_url, FIRST)
    )

    assert result.returncode == 1
    assert "http" in result.stderr
