"""Real `keyturn` processes for system tests: the CLI, and servers on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

KEYTURN = str(Path(sys.executable).with_name("keyturn"))
LIGHT_HASHING = {"KEYTURN_ARGON2_MEMORY_KIB": "1024", "KEYTURN_ARGON2_TIME_COST": "1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def keyturn_environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")}
    env.update(LIGHT_HASHING)
    env.update(variables)
    return env


def run_cli(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYTURN, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or keyturn_environment(),
        timeout=60,
        check=False,
    )


class KeyturnServer:
    """`keyturn serve` in a subprocess; `url` is its base URL once `start()` returns."""

    def __init__(
        self, *, cwd: Path, env: dict[str, str], workers: int = 1, server: str | None = None
    ) -> None:
        self.cwd = cwd
        self.env = env
        self.workers = workers
        self.server = server  # None: the default of `keyturn serve`
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = cwd / f"server-{self.port}.log"

    def start(self, timeout: float = 30) -> KeyturnServer:
        with self.log_path.open("ab") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keyturn serve exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"keyturn serve did not start:\n{self.log_path.read_text()}")

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                KEYTURN,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                *(["--server", self.server] if self.server else []),
            ],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_hard(self) -> None:
        """kill -9 the whole process group: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill_hard()

    def __enter__(self) -> KeyturnServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


ServerFactory = Callable[..., KeyturnServer]
