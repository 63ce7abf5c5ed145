"""Start a real `keyturn serve` in a temporary directory, pinned to a core, and watch its memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEYTURN = Path(sys.executable).with_name("keyturn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pinning(cores: str | None) -> list[str]:
    """`taskset -c CORES` when taskset exists and cores were given, else nothing."""
    if cores and shutil.which("taskset"):
        return ["taskset", "-c", cores]
    return []


def split_cores() -> tuple[str | None, str | None]:
    """(server cores, load generator cores): the first usable core for the server, the rest
    for the load; None when there is only one core (nothing to separate)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cores) < 2:
        return None, None
    return str(cores[0]), ",".join(str(core) for core in cores[1:])


# CPU time is read in clock ticks (10 ms on most kernels): a window of 0.3 s tells a busy
# server from an idle one.
_IDLE_WINDOW_SECONDS = 0.3


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it (Linux /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # After the parenthesised command: state, then the parent's pid.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, index = [pid], 0
    while index < len(tree):
        tree.extend(children.get(tree[index], []))
        index += 1
    return tree


class Server:
    """One `keyturn serve` (one worker) on 127.0.0.1 with its own data directory.

    granian answers from a worker process beside the one started here and uvicorn from the
    same one: CPU and memory are read over the whole process tree, so both count alike.
    """

    def __init__(
        self,
        *,
        database_url: str | None,
        cores: str | None,
        extra_env: dict[str, str] | None = None,
        http_server: str = "granian",
    ) -> None:
        self.http_server = http_server
        self.directory = Path(tempfile.mkdtemp(prefix="keyturn-bench-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url or f"sqlite:///{self.directory / 'keyturn.db'}"
        self.cores = cores
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KEYTURN_")},
            "KEYTURN_DATABASE_URL": self.database_url,
            # Long enough that no token of the setup expires during a long run.
            "KEYTURN_ACCESS_TTL_SECONDS": "3600",
            # Every benchmark client comes from 127.0.0.1: per-IP limits would measure the limiter.
            "KEYTURN_REGISTER_MAX_PER_IP": "100000000",
            "KEYTURN_REFRESH_MAX_PER_IP": "100000000",
            # Logins in flight count against the address's limit until they succeed.
            "KEYTURN_LOGIN_MAX_FAILURES": "100000000",
            "KEYTURN_LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "server.log"

    def start(self, *, timeout: float = 60.0) -> None:
        command = [
            *pinning(self.cores),
            str(KEYTURN),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--server",
            self.http_server,
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=self.directory, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"keyturn serve exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"keyturn serve did not answer in {timeout}s")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def reset_peak_rss(self) -> bool:
        """Reset the kernel's high-water mark of the server's RSS (Linux: clear_refs 5)."""
        try:
            for pid in process_tree(self.pid):
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def rss_mb(self, field: str = "VmHWM") -> float | None:
        """The server's peak (VmHWM) or current (VmRSS) resident set size, in MB, summed
        over its processes (each one's own peak: an upper bound of the peak of the sum)."""
        total, found = 0, False
        for pid in process_tree(self.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
                        found = True
            except OSError:
                continue
        return total / 1024 if found else None

    def cpu_seconds(self) -> float | None:
        """CPU time the server has used so far (user + system, all threads, every process of
        its tree), in seconds."""
        ticks, found = 0, False
        for pid in process_tree(self.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the command name: utime and stime are fields 14 and 15 of stat(5).
            ticks += int(fields[11]) + int(fields[12])
            found = True
        return ticks / os.sysconf("SC_CLK_TCK") if found else None

    def wait_idle(self, *, timeout: float = 60.0) -> float:
        """Wait until the server's CPU use drops below a quarter of a core, as it does with
        nothing to answer; the seconds waited.

        A load generator that stops leaves its requests in flight behind it, and the server
        still finishes them: after a login run that is up to one full queue of Argon2 hashes,
        about 1.5 s of CPU. Measured without this wait, the next workload, or the other server
        on the same core, paid for them.
        """
        started = time.monotonic()
        previous = self.cpu_seconds()
        while previous is not None and time.monotonic() - started < timeout:
            time.sleep(_IDLE_WINDOW_SECONDS)
            current = self.cpu_seconds()
            if current is None or current - previous < _IDLE_WINDOW_SECONDS / 4:
                break
            previous = current
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_server(
    *,
    database_url: str | None,
    cores: str | None,
    extra_env: dict[str, str] | None = None,
    http_server: str = "granian",
) -> Iterator[Server]:
    server = Server(
        database_url=database_url, cores=cores, extra_env=extra_env, http_server=http_server
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
