"""The SDK and the verifier stay light: no server dependency is loaded by importing them."""

from __future__ import annotations

import subprocess
import sys

import pytest

SERVER_ONLY = ("sqlalchemy", "fastapi", "starlette", "redis", "alembic", "prometheus_client")


@pytest.mark.parametrize("module", ["keyturn.client", "keyturn.verify"])
def test_importing_loads_no_server_dependency(module: str) -> None:
    """Checked in a fresh interpreter, where nothing else has imported them first."""
    probe = (
        f"import sys, {module}\n"
        f"print(','.join(sorted(n for n in {SERVER_ONLY!r} if n in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_the_opt_in_fastapi_dependencies_do_load_fastapi() -> None:
    """keyturn.verify.deps is the opt-in import that brings FastAPI (so the probe above is
    able to see a loaded module)."""
    probe = "import sys, keyturn.verify.deps\nprint('fastapi' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "True"
