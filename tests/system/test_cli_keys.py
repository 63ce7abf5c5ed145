"""`keyturn keys rotate|import|revoke|list` as real processes, against a running server; and
production's refusal to start without a key to seal secrets at rest."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.support.api import DEFAULT_PASSWORD, bearer
from tests.support.processes import ServerFactory, free_port, keyturn_environment, run_cli

pytestmark = pytest.mark.system

OWASP_HASHING = {"KEYTURN_ARGON2_MEMORY_KIB": "19456", "KEYTURN_ARGON2_TIME_COST": "2"}


def pkcs8_pem(private_key: Any) -> bytes:
    pem: bytes = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem


def keys(*args: str, workdir: Path, database_url: str) -> Any:
    return run_cli(
        "keys",
        *args,
        cwd=workdir,
        env=keyturn_environment(KEYTURN_DATABASE_URL=database_url),
    )


def log_in(client: httpx.Client) -> dict[str, Any]:
    account = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    client.post("/api/auth/register", json=account)
    response = client.post("/api/auth/login", json=account)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def me(client: httpx.Client, access_token: str) -> tuple[int, str]:
    response = client.get("/api/auth/me", headers=bearer(access_token))
    return response.status_code, str(response.json().get("error", ""))


def published_kids(client: httpx.Client) -> set[str]:
    return {key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]}


def one_line_error(result: Any) -> str:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keyturn: "), result.stderr
    line: str = lines[0]
    return line


def test_keys_revoke_stops_the_key_on_a_running_server_within_a_poll(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """A token of the revoked key is refused by the other process within a poll of the
    revocation feed; the key leaves the JWKS and a new key signs."""
    database_url = f"sqlite:///{tmp_path}/shared.db"
    server = make_server(KEYTURN_DATABASE_URL=database_url)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        tokens = log_in(client)
        kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
        assert me(client, tokens["access_token"])[0] == 200

        result = keys("revoke", kid, workdir=tmp_path, database_url=database_url)
        assert result.returncode == 0, result.stderr
        revoked_at = time.monotonic()
        while me(client, tokens["access_token"])[0] == 200:
            assert time.monotonic() - revoked_at < 2.0, "the revoked key still verifies"
            time.sleep(0.05)

        assert me(client, tokens["access_token"]) == (401, "invalid_token")
        assert kid not in published_kids(client)
        fresh = log_in(client)
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] != kid
        assert me(client, fresh["access_token"])[0] == 200


def test_keys_import_makes_the_operators_key_sign_and_verify(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """An imported PKCS#8 key is published, tokens it signs verify, its kid ends the output."""
    database_url = f"sqlite:///{tmp_path}/shared.db"
    server = make_server(KEYTURN_DATABASE_URL=database_url)
    private_key = ed25519.Ed25519PrivateKey.generate()
    key_file = tmp_path / "operator.pem"
    key_file.write_bytes(pkcs8_pem(private_key))

    result = keys(
        "import", "--private-key-file", str(key_file), workdir=tmp_path, database_url=database_url
    )

    assert result.returncode == 0, result.stderr
    kid = result.stdout.split()[-1]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        claims = jwt.decode(log_in(client)["access_token"], options={"verify_signature": False})
        claims["jti"] = secrets.token_urlsafe(16)
        token = jwt.encode(
            claims, private_key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"}
        )
        deadline = time.monotonic() + 5
        while me(client, token)[0] != 200:  # the server reloads its keys within a few polls
            assert time.monotonic() < deadline, me(client, token)
            time.sleep(0.1)
        (jwk,) = [
            key for key in client.get("/.well-known/jwks.json").json()["keys"] if key["kid"] == kid
        ]
        assert jwt.PyJWK(jwk).key.public_bytes_raw() == private_key.public_key().public_bytes_raw()


def test_keys_import_refuses_a_key_of_another_algorithm_in_one_line(tmp_path: Path) -> None:
    """An ES256 key for an EdDSA server, or a file that is not there: one line, exit 1."""
    database_url = f"sqlite:///{tmp_path}/keyturn.db"
    key_file = tmp_path / "p256.pem"
    key_file.write_bytes(pkcs8_pem(ec.generate_private_key(ec.SECP256R1())))

    wrong = keys(
        "import", "--private-key-file", str(key_file), workdir=tmp_path, database_url=database_url
    )
    missing = keys(
        "import", "--private-key-file", "nowhere.pem", workdir=tmp_path, database_url=database_url
    )

    assert "EdDSA" in one_line_error(wrong)
    assert "nowhere.pem" in one_line_error(missing)
    listing = keys("list", workdir=tmp_path, database_url=database_url)
    assert len(listing.stdout.strip().splitlines()) == 1  # nothing was imported


def test_keys_list_shows_each_keys_state(tmp_path: Path) -> None:
    """kid, algorithm and state of every key: signing, the next one, revoked."""
    database_url = f"sqlite:///{tmp_path}/keyturn.db"
    assert keys("rotate", workdir=tmp_path, database_url=database_url).returncode == 0
    first = keys("list", workdir=tmp_path, database_url=database_url)
    (old_kid, old_alg, old_state), (new_kid, _, new_state) = [
        line.split(maxsplit=2) for line in first.stdout.strip().splitlines()
    ]
    assert (old_alg, old_state) == ("EdDSA", "signing")
    assert new_state.startswith("next")

    assert keys("revoke", old_kid, workdir=tmp_path, database_url=database_url).returncode == 0
    after = keys("list", workdir=tmp_path, database_url=database_url).stdout

    assert f"{old_kid}  EdDSA  revoked at " in after
    assert f"{new_kid}  EdDSA  signing" in after
    unknown = keys("revoke", "no-such-kid", workdir=tmp_path, database_url=database_url)
    assert "no-such-kid" in one_line_error(unknown)


def test_production_without_a_sealing_key_refuses_to_start(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    """One clear line names KEYTURN_SECRETS_KEY; with a key, the same settings start."""
    production = {
        "KEYTURN_ENV": "production",
        "KEYTURN_ISSUER": "https://auth.example.com",
        **OWASP_HASHING,
    }
    result = run_cli(
        "serve", "--port", str(free_port()), cwd=tmp_path, env=keyturn_environment(**production)
    )

    assert "KEYTURN_SECRETS_KEY" in one_line_error(result)
    assert not (tmp_path / ".keyturn" / "secrets.key").exists()
    server = make_server(
        **production,
        KEYTURN_SECRETS_KEY=Fernet.generate_key().decode(),
        KEYTURN_SMTP_URL="smtp://127.0.0.1:2525",
        KEYTURN_MAIL_FROM="Keyturn <no-reply@example.com>",
    )
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
