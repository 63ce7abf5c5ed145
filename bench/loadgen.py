"""Run one load against the server from a separate process: wrk with our Lua scripts when it is
installed, else bench/pyload.py. Either way the result is the same dict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.server import pinning

LUA = Path(__file__).resolve().parent / "lua"
SCRIPTS = {"get": "get.lua", "refresh": "refresh.lua", "login": "login.lua"}


@dataclass(frozen=True)
class Load:
    kind: str  # get | refresh | login
    path: str = "/healthz"
    data: Path | None = None
    connections: int = 32
    duration: float = 10.0
    rate: float | None = None  # paced (python only); None: as fast as the server answers


def has_wrk() -> bool:
    return shutil.which("wrk") is not None


def start(url: str, load: Load, *, cores: str | None, engine: str) -> subprocess.Popen[str]:
    """Start the load generator; `finish()` waits for it and returns its numbers."""
    if engine == "wrk" and load.rate is None:
        threads = max(1, min(load.connections, len((cores or "0").split(","))))
        command = [
            *pinning(cores),
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(load.connections),
            "-d",
            f"{max(1, round(load.duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA / SCRIPTS[load.kind]),
            url + load.path,
        ]
        env = {"BENCH_LUA_DIR": str(LUA), "BENCH_THREADS": str(threads), "BENCH_PATH": load.path}
        if load.data is not None:
            env["BENCH_DATA"] = str(load.data)
    else:
        command = [
            *pinning(cores),
            sys.executable,
            "-m",
            "bench.pyload",
            "--url",
            url,
            "--workload",
            load.kind,
            "--path",
            load.path,
            "--connections",
            str(load.connections),
            "--duration",
            str(load.duration),
        ]
        if load.data is not None:
            command += ["--data", str(load.data)]
        if load.rate is not None:
            command += ["--rate", str(load.rate)]
        env = {}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**_base_env(), **env},
    )


def finish(process: subprocess.Popen[str], *, timeout: float) -> dict[str, float]:
    out, err = process.communicate(timeout=timeout)
    for line in out.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, float] = json.loads(line.removeprefix("BENCH_JSON "))
            return result
    raise RuntimeError(f"load generator failed ({process.returncode}):\n{out}\n{err}")


def run(url: str, load: Load, *, cores: str | None, engine: str) -> dict[str, float]:
    process = start(url, load, cores=cores, engine=engine)
    return finish(process, timeout=load.duration + 60)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
