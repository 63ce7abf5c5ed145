"""Mail settings as `keyturn serve` sees them, run as a real process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import keyturn_environment, run_cli

pytestmark = pytest.mark.system


def test_production_without_smtp_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    env = keyturn_environment(KEYTURN_ENV="production", KEYTURN_ISSUER="https://auth.example.com")
    result = run_cli("serve", "--port", "1", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "KEYTURN_SMTP_URL" in result.stderr


def test_a_malformed_smtp_url_is_named_without_its_password(tmp_path: Path) -> None:
    env = keyturn_environment(KEYTURN_SMTP_URL="http://keyturn:hunter2-secret@mail.example.com")
    result = run_cli("db", "upgrade", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("keyturn: invalid setting: KEYTURN_SMTP_URL")
    assert "hunter2-secret" not in result.stderr
