"""Keyturn's token check next to the tutorials' Express stack, in one run on one machine.

    .venv/bin/python -m bench.express_side_by_side --repeat 3

Needs Node.js and npm (it installs Express 5 and jsonwebtoken into bench/express/ once). Both
servers get the same core, the same load generator on the other core, the same connections
and 200 users' tokens each; rounds alternate between them. Keyturn's `me` is the full check
(EdDSA token, revocation list, user record); Express's is `jwt.verify` with an HS256 KeyObject
and a Map lookup, as the tutorials' careful version writes it. Keyturn's `refresh` rotates a
stored, hashed refresh token in a committed transaction; Express's swaps one random token for
another in a Map, in memory. Each ratio is the median of the rounds' paired ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import loadgen, run
from bench.server import free_port, pinning, running_server, split_cores

EXPRESS = Path(__file__).resolve().parent / "express"


def install_express() -> None:
    if (EXPRESS / "node_modules" / "express").is_dir():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("bench.express_side_by_side: needs node and npm on PATH")
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=EXPRESS, check=True
    )


@contextlib.contextmanager
def express_server(
    cores: str | None, users: int, token_file: Path, refresh_file: Path, refresh_count: int
) -> Iterator[str]:
    port = free_port()
    command = [
        *pinning(cores),
        "node",
        "server.js",
        str(port),
        str(users),
        str(token_file),
        str(refresh_file),
        str(refresh_count),
    ]
    process = subprocess.Popen(command, cwd=EXPRESS)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError("the Express server exited")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the Express server did not answer in 30 s")
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def split_chains(source: Path, rounds: int, per_round: int) -> list[Path]:
    """One file of unused refresh tokens per round: a round's chains end where it stops."""
    tokens = source.read_text().split()
    files = []
    for number in range(rounds):
        path = source.with_name(f"{source.stem}-{number}.txt")
        path.write_text("\n".join(tokens[number * per_round : (number + 1) * per_round]) + "\n")
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.express_side_by_side")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load (10)")
    parser.add_argument("--connections", type=int, default=32, help="connections (32)")
    parser.add_argument(
        "--server", choices=["granian", "uvicorn"], default="uvicorn", help="under Keyturn"
    )
    args = parser.parse_args(argv)
    if not loadgen.has_wrk():
        raise SystemExit("bench.express_side_by_side: needs wrk")
    install_express()
    server_cores, load_cores = split_cores()
    bench_args = run.parse_args(
        ["--duration", str(args.duration), "--connections", str(args.connections)]
    )
    # One chain per connection is enough; the rest covers chains a failure ends.
    chains_per_round = args.connections + 8
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="keyturn-bench-express-") as directory:
        express_tokens = Path(directory) / "express-tokens.txt"
        express_refresh = Path(directory) / "express-refresh.txt"
        with (
            running_server(
                database_url=None, cores=server_cores, http_server=args.server
            ) as server,
            express_server(
                server_cores,
                bench_args.users,
                express_tokens,
                express_refresh,
                chains_per_round * args.repeat,
            ) as express_url,
        ):
            keyturn = run.Bench(bench_args, server, load_cores)
            keyturn.prepare()
            express_chains = split_chains(express_refresh, args.repeat, chains_per_round)
            for round_number in range(1, args.repeat + 1):
                loads = {
                    "keyturn ceiling": (server.base_url, "get", "/healthz", None),
                    "keyturn me": (server.base_url, "get", "/api/auth/me", keyturn.me_tokens),
                    "keyturn refresh": (
                        server.base_url,
                        "refresh",
                        "/api/auth/refresh",
                        keyturn._chains(chains_per_round),
                    ),
                    "express ceiling": (express_url, "get", "/healthz", None),
                    "express me": (express_url, "get", "/api/auth/me", express_tokens),
                    "express refresh": (
                        express_url,
                        "refresh",
                        "/api/auth/refresh",
                        express_chains[round_number - 1],
                    ),
                }
                for name, (url, kind, path, data) in loads.items():
                    load = loadgen.Load(
                        kind,
                        path=path,
                        data=data,
                        connections=args.connections,
                        duration=args.duration,
                    )
                    result = loadgen.run(url, load, cores=load_cores, engine="wrk")
                    bad = int(result["errors"]) + int(result["non2xx_counted"])
                    if bad:
                        raise RuntimeError(f"{name}: {bad} failed requests")
                    rate = float(result["requests"]) / float(result["duration_s"])
                    rates.setdefault(name, []).append(rate)
                    print(f"round {round_number} {name}: {rate:.0f} req/s", file=sys.stderr)
                    if name.startswith("keyturn"):
                        server.wait_idle()
            keyturn.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"side by side ({args.server} under Keyturn), medians of {args.repeat} alternating"
        f" rounds, {args.connections} connections"
    )
    for name, rate in medians.items():
        print(f"{name:<16} {rate:>8.0f} req/s")
    for workload in ("me", "refresh"):
        ratios = [
            k / e
            for k, e in zip(rates[f"keyturn {workload}"], rates[f"express {workload}"], strict=True)
        ]
        print(
            f"keyturn {workload} / express {workload}: {statistics.median(ratios):.2f}x"
            f" (median of the rounds' ratios: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
