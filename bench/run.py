"""Benchmark a real `keyturn serve`: one worker, load from a separate process, one table.

    .venv/bin/python -m bench                 # 10 s per workload, SQLite in a temp dir
    .venv/bin/python -m bench --repeat 3      # alternating rounds, medians reported
    .venv/bin/python -m bench --postgres      # a fresh PostgreSQL database at 127.0.0.1
    .venv/bin/python -m bench --smoke         # about 5 seconds, for CI

Workloads: `ceiling` (GET /healthz, no auth: the same server's cheapest endpoint), `me` (GET
/api/auth/me with valid tokens), `refresh` (each session walks its own rotation chain),
`login` (Argon2id at the server's parameters), `mixed` (me, plus paced refreshes and logins
from a second generator; `mixed-nologin` is the same without logins, for me's p99).
Results go to stdout as a table and to bench/results/*.jsonl, one JSON object a line.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import accounts, loadgen
from bench.loadgen import Load
from bench.server import Server, running_server, split_cores

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS = ("ceiling", "me", "refresh", "login", "mixed-nologin", "mixed")
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per workload (10)")
    parser.add_argument("--users", type=int, default=200, help="users registered (200)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (32)")
    parser.add_argument("--repeat", type=int, default=1, help="alternating rounds; medians (1)")
    parser.add_argument(
        "--server",
        choices=["granian", "uvicorn"],
        default="uvicorn",
        help="HTTP server under Keyturn (uvicorn, the default of keyturn serve)",
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated subset, in this order"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="every workload briefly (about 10 s), for CI"
    )
    parser.add_argument(
        "--loadgen", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if found"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="create a fresh PostgreSQL database at 127.0.0.1:5432 for this run (dropped after)",
    )
    parser.add_argument(
        "--mixed-refresh-rate", type=float, default=200.0, help="refreshes/s in mixed (200)"
    )
    parser.add_argument("--mixed-login-rate", type=float, default=5.0, help="logins/s in mixed (5)")
    parser.add_argument(
        "--rss-sessions",
        type=int,
        default=0,
        help="after the workloads, open this many sessions, cache one token each, report RSS",
    )
    parser.add_argument(
        "--scale",
        metavar="DATABASE_URL",
        help="compare me, refresh and login on this (populated, see bench/populate.py)"
        " PostgreSQL database against a fresh empty one",
    )
    parser.add_argument("--output", type=Path, help="JSON lines file (default bench/results/)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration = 1.0
        args.users = min(args.users, 8)
        args.connections = min(args.connections, 4)
        args.repeat = 1
        args.mixed_login_rate = min(args.mixed_login_rate, 2.0)
        args.mixed_refresh_rate = min(args.mixed_refresh_rate, 50.0)
    return args


@contextlib.contextmanager
def postgres_database(wanted: bool) -> Iterator[str | None]:
    """KEYTURN_DATABASE_URL when set; with --postgres a fresh database, dropped afterwards."""
    if not wanted:
        yield os.environ.get("KEYTURN_DATABASE_URL")
        return
    import psycopg

    name = f"keyturn_bench_{secrets.token_hex(4)}"
    admin = os.environ.get("KEYTURN_BENCH_POSTGRES_ADMIN", POSTGRES_ADMIN)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, load_cores: str | None) -> None:
        self.args = args
        self.server = server
        self.load_cores = load_cores
        self.engine = "wrk" if args.loadgen != "python" and loadgen.has_wrk() else "python"
        if args.loadgen == "wrk" and self.engine != "wrk":
            raise SystemExit("bench: --loadgen wrk but wrk is not installed")
        self.files = Path(tempfile.mkdtemp(prefix="keyturn-bench-data-"))
        self.emails: list[str] = []
        self.me_tokens: Path | None = None
        self.logins = 0

    def close(self) -> None:
        """Remove the token and credential files."""
        shutil.rmtree(self.files, ignore_errors=True)

    def prepare(self) -> None:
        started = time.perf_counter()
        tag = secrets.token_hex(3)
        self.emails = accounts.register_users(self.server.base_url, self.args.users, tag=tag)
        sessions = accounts.open_sessions(
            self.server.base_url, self.emails, len(self.emails), touch=True
        )
        self.me_tokens = self._write("me-tokens", [t.access_token for t in sessions])
        self.credentials = self._write(
            "credentials", [f"{email}\t{accounts.PASSWORD}" for email in self.emails]
        )
        print(
            f"set up {len(self.emails)} users and sessions in {time.perf_counter() - started:.1f}s",
            file=sys.stderr,
        )

    def _write(self, name: str, lines: list[str]) -> Path:
        path = self.files / f"{name}-{secrets.token_hex(3)}.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _chains(self, count: int) -> Path:
        """Fresh sessions whose refresh tokens nobody has used: one chain each."""
        sessions = accounts.open_sessions(self.server.base_url, self.emails, count)
        return self._write("chains", [t.refresh_token for t in sessions])

    def _load(self, kind: str, **fields: object) -> Load:
        values: dict[str, object] = {
            "connections": self.args.connections,
            "duration": self.args.duration,
        }
        values.update(fields)
        return Load(kind, **values)  # type: ignore[arg-type]

    def run_workload(self, name: str, round_number: int) -> dict[str, object]:
        url = self.server.base_url
        side: list[dict[str, object]] = []
        if name == "ceiling":
            main = self._load("get", path="/healthz")
        elif name == "me":
            main = self._load("get", path="/api/auth/me", data=self.me_tokens)
        elif name == "refresh":
            # One chain per connection is enough; the rest covers chains a failure ends.
            main = self._load("refresh", data=self._chains(self.args.connections + 8))
        elif name == "login":
            main = self._load("login", data=self.credentials)
        else:
            main = self._load("get", path="/api/auth/me", data=self.me_tokens)
        side_loads: list[tuple[str, Load]] = []
        if name.startswith("mixed"):
            side_duration = main.duration + (0.8 if self.args.smoke else 1.5)
            side_loads.append(
                (
                    "refresh",
                    Load(
                        "refresh",
                        data=self._chains(8),
                        connections=4,
                        duration=side_duration,
                        rate=self.args.mixed_refresh_rate,
                    ),
                )
            )
            if name == "mixed":
                side_loads.append(
                    (
                        "login",
                        Load(
                            "login",
                            data=self.credentials,
                            connections=2,
                            duration=side_duration,
                            rate=self.args.mixed_login_rate,
                        ),
                    )
                )
        settled_s = self.server.wait_idle()
        self.server.reset_peak_rss()
        cpu_before = self.server.cpu_seconds()
        running = [
            (label, load, loadgen.start(url, load, cores=self.load_cores, engine="python"))
            for label, load in side_loads
        ]
        if running:
            # The side generators start (and connect) before the measured load.
            time.sleep(0.3 if self.args.smoke else 0.7)
        result: dict[str, object] = dict(
            loadgen.run(url, main, cores=self.load_cores, engine=self.engine)
        )
        cpu_after = self.server.cpu_seconds()
        for label, load, process in running:
            numbers = loadgen.finish(process, timeout=load.duration + 60)
            side.append({"part": label, **numbers})
        if name == "login":
            self.logins += int(result["requests"])  # type: ignore[call-overload]
        requests = float(result["requests"])  # type: ignore[arg-type]
        duration = float(result["duration_s"])  # type: ignore[arg-type]
        non2xx = max(int(result["status_errors"]), int(result["non2xx_counted"]))  # type: ignore[call-overload]
        record: dict[str, object] = {
            "workload": name,
            "round": round_number,
            "rps": requests / duration if duration else 0.0,
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": int(result["errors"]) + sum(int(s["errors"]) for s in side),  # type: ignore[call-overload]
            "non2xx": non2xx + sum(int(s["non2xx_counted"]) for s in side),  # type: ignore[call-overload]
            "peak_rss_mb": self.server.rss_mb("VmHWM"),
            # Steadier than req/s on a noisy machine: what one request costs the server's core.
            "server_cpu_us": _cpu_per_request(cpu_before, cpu_after, requests, side),
            "requests": int(requests),
            "duration_s": duration,
            "connections": main.connections,
            "loadgen": self.engine,
            "lost_chains": result.get("lost_chains", 0),
            "settled_s": settled_s,
        }
        for part in side:
            label = part["part"]
            part_duration = float(part["duration_s"])  # type: ignore[arg-type]
            record[f"{label}_rps"] = int(part["requests"]) / part_duration  # type: ignore[call-overload]
            record[f"{label}_p99_ms"] = part["p99_ms"]
        return record

    def rss_check(self, sessions: int) -> dict[str, object]:
        """Open `sessions` sessions, cache one access token each through /me, then drive /me
        over all of them; the peak RSS covers the logins and the cached tokens."""
        self.server.reset_peak_rss()
        started = time.perf_counter()
        tokens = accounts.open_sessions(
            self.server.base_url, self.emails, sessions, concurrency=8, touch=True
        )
        setup_seconds = time.perf_counter() - started
        data = self._write("rss-tokens", [t.access_token for t in tokens])
        result = loadgen.run(
            self.server.base_url,
            self._load(
                "get", path="/api/auth/me", data=data, duration=max(2.0, self.args.duration)
            ),
            cores=self.load_cores,
            engine=self.engine,
        )
        return {
            "workload": "rss",
            "sessions_opened": len(tokens),
            "setup_s": setup_seconds,
            "me_rps": float(result["requests"]) / float(result["duration_s"]),
            "me_p99_ms": result["p99_ms"],
            "errors": result["errors"],
            "non2xx": max(result["status_errors"], result["non2xx_counted"]),
            "peak_rss_mb": self.server.rss_mb("VmHWM"),
            "rss_after_mb": self.server.rss_mb("VmRSS"),
        }


def _cpu_per_request(
    before: float | None, after: float | None, requests: float, side: list[dict[str, object]]
) -> float | None:
    if before is None or after is None:
        return None
    served = requests + sum(float(part["requests"]) for part in side)  # type: ignore[arg-type]
    return 1e6 * (after - before) / served if served else None


def summarize(records: list[dict[str, object]], names: list[str]) -> dict[str, object]:
    medians: dict[str, dict[str, float]] = {}
    for name in names:
        rows = [r for r in records if r["workload"] == name]
        if not rows:
            continue
        medians[name] = {
            key: statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]
            for key in rows[0]
            if isinstance(rows[0][key], int | float) and key != "round"
        }
        cpu = [float(r["server_cpu_us"]) for r in rows if r.get("server_cpu_us") is not None]  # type: ignore[arg-type]
        if cpu:
            medians[name]["server_cpu_us"] = statistics.median(cpu)
        medians[name]["errors"] = sum(int(r["errors"]) for r in rows)  # type: ignore[call-overload]
        medians[name]["non2xx"] = sum(int(r["non2xx"]) for r in rows)  # type: ignore[call-overload]
    ratios: dict[str, float] = {}
    ceiling = medians.get("ceiling", {}).get("rps")
    if ceiling:
        for name in ("me", "refresh", "login"):
            if name in medians:
                ratios[f"{name}/ceiling"] = medians[name]["rps"] / ceiling
    if "mixed" in medians and "mixed-nologin" in medians:
        ratios["mixed me p99 / without logins"] = (
            medians["mixed"]["p99_ms"] / medians["mixed-nologin"]["p99_ms"]
        )
    if "mixed" in medians and "me" in medians:
        ratios["mixed me p99 / me p99"] = medians["mixed"]["p99_ms"] / medians["me"]["p99_ms"]
    return {"medians": medians, "ratios": ratios}


def table(summary: dict[str, object], rounds: int) -> str:
    medians: dict[str, dict[str, float]] = summary["medians"]  # type: ignore[assignment]
    title = f"medians of {rounds} rounds" if rounds > 1 else "one round"
    lines = [
        f"Keyturn benchmark ({title})",
        f"{'workload':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        f" {'non-2xx':>8} {'peak RSS MB':>12} {'CPU µs/req':>11}",
    ]
    for name, row in medians.items():
        rss = row.get("peak_rss_mb")
        lines.append(
            f"{name:<14} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
            f" {int(row['errors']):>7} {int(row['non2xx']):>8}"
            f" {(f'{rss:.1f}' if rss is not None else '-'):>12}"
            f" {(f'{cpu:.0f}' if (cpu := row.get('server_cpu_us')) else '-'):>11}"
        )
    for name, row in medians.items():
        extras = [
            f"{key.removesuffix('_rps')} {value:.0f}/s"
            for key, value in row.items()
            if key.endswith("_rps") and key != "rps"
        ]
        if extras:
            lines.append(f"  {name}: side traffic " + ", ".join(extras))
    ratios: dict[str, float] = summary["ratios"]  # type: ignore[assignment]
    for key, value in ratios.items():
        lines.append(f"{key:<34} {value:.2f}")
    return "\n".join(lines)


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }


def run_scale(args: argparse.Namespace, output: Path) -> int:
    """me, refresh and login against a populated PostgreSQL database and an empty one, two
    servers side by side on the same core, workloads alternating between them."""
    names = [n for n in ("me", "refresh", "login") if n in args.workloads.split(",")]
    server_cores, load_cores = split_cores()
    if load_cores is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(core) for core in load_cores.split(",")})
    records: list[dict[str, object]] = []
    with (
        postgres_database(True) as empty_url,
        running_server(
            database_url=empty_url, cores=server_cores, http_server=args.server
        ) as empty,
        running_server(
            database_url=args.scale, cores=server_cores, http_server=args.server
        ) as populated,
    ):
        targets = {
            "empty": Bench(args, empty, load_cores),
            "populated": Bench(args, populated, load_cores),
        }
        for bench in targets.values():
            bench.prepare()
        with contextlib.closing(_psycopg_connect(args.scale)) as connection:
            counts = {
                table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("users", "sessions", "refresh_tokens")
            }
        for round_number in range(1, args.repeat + 1):
            # Each target goes first in every other round, so neither always runs right after
            # the other (see Server.wait_idle for what a run leaves behind).
            order = list(targets.items())
            if round_number % 2 == 0:
                order.reverse()
            for name in names:
                for target, bench in order:
                    for other in targets.values():
                        if other is not bench:  # run_workload waits for its own server
                            other.server.wait_idle()
                    record = bench.run_workload(name, round_number)
                    records.append({"kind": "workload", "target": target, **record})
                    print(
                        f"round {round_number} {name}@{target}: {record['rps']:.0f} req/s,"
                        f" p50 {float(record['p50_ms']):.2f} ms,"  # type: ignore[arg-type]
                        f" p99 {float(record['p99_ms']):.2f} ms",  # type: ignore[arg-type]
                        file=sys.stderr,
                    )
        for bench in targets.values():
            bench.close()
    lines = [
        f"Keyturn at scale (PostgreSQL; populated: {counts}), medians of {args.repeat}",
        f"{'workload':<10} {'target':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'errors':>7} {'non-2xx':>8}",
    ]
    summary: dict[str, object] = {"kind": "scale_summary", "populated_rows": counts}
    for name in names:
        medians = {}
        for target in ("empty", "populated"):
            rows = [r for r in records if r["workload"] == name and r["target"] == target]
            medians[target] = {
                key: statistics.median(float(r[key]) for r in rows)  # type: ignore[arg-type]
                for key in ("rps", "p50_ms", "p99_ms")
            }
            errors = sum(int(r["errors"]) for r in rows)  # type: ignore[call-overload]
            non2xx = sum(int(r["non2xx"]) for r in rows)  # type: ignore[call-overload]
            m = medians[target]
            lines.append(
                f"{name:<10} {target:<10} {m['rps']:>8.0f} {m['p50_ms']:>8.2f}"
                f" {m['p99_ms']:>8.2f} {errors:>7} {non2xx:>8}"
            )
        ratio = {
            key: medians["populated"][key] / medians["empty"][key]
            for key in ("p50_ms", "p99_ms")
            if medians["empty"][key]
        }
        summary[name] = {**medians, "populated/empty": ratio}
        lines.append(
            f"{'':<10} populated/empty: p50 {ratio.get('p50_ms', 0):.2f}x,"
            f" p99 {ratio.get('p99_ms', 0):.2f}x"
        )
    with output.open("a") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
        out.write(json.dumps(summary) + "\n")
    print("\n".join(lines))
    print(f"load average {os.getloadavg()[0]:.2f}; results in {output}")
    return 0


def _psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scale:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        output = args.output or RESULTS / f"scale-{stamp}.jsonl"
        output.parent.mkdir(parents=True, exist_ok=True)
        return run_scale(args, output)
    names = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"bench: unknown workload {', '.join(unknown)}")
    if args.smoke:
        names = [name for name in names if name != "mixed-nologin"]
    server_cores, load_cores = split_cores()
    if load_cores is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {int(core) for core in load_cores.split(",")})
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS / f"{stamp}.jsonl"
    output.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, object]] = []
    started = time.perf_counter()
    with (
        postgres_database(args.postgres) as database_url,
        running_server(
            database_url=database_url, cores=server_cores, http_server=args.server
        ) as server,
    ):
        backend = "postgresql" if server.database_url.startswith("postgres") else "sqlite"
        bench = Bench(args, server, load_cores)
        context = {
            "kind": "run",
            "at": stamp,
            "database": backend,
            "http_server": args.server,
            "loadgen": bench.engine,
            "server_cores": server_cores,
            "load_cores": load_cores,
            "duration_s": args.duration,
            "users": args.users,
            "connections": args.connections,
            "repeat": args.repeat,
            "smoke": args.smoke,
            **machine(),
        }
        bench.prepare()
        if not args.smoke:  # let the interpreter's caches and the connection pool warm up
            for warm in ("ceiling", "me"):
                if warm in names:
                    bench.args.duration, saved = 1.0, args.duration
                    bench.run_workload(warm, 0)
                    bench.args.duration = saved
        for round_number in range(1, args.repeat + 1):
            for name in names:
                record = bench.run_workload(name, round_number)
                records.append({"kind": "workload", "database": backend, **record})
                print(
                    f"round {round_number} {name}: {record['rps']:.0f} req/s,"
                    f" p99 {float(record['p99_ms']):.2f} ms",  # type: ignore[arg-type]
                    file=sys.stderr,
                )
        rss = bench.rss_check(args.rss_sessions) if args.rss_sessions else None
        context["peak_rss_mb_whole_run"] = server.rss_mb("VmHWM")
        bench.close()
    summary = summarize(records, names)
    context["elapsed_s"] = time.perf_counter() - started
    context["loadavg_end"] = os.getloadavg()
    with output.open("a") as out:
        out.write(json.dumps(context) + "\n")
        for record in records:
            out.write(json.dumps(record) + "\n")
        if rss is not None:
            out.write(json.dumps({"kind": "rss", "database": backend, **rss}) + "\n")
        out.write(json.dumps({"kind": "summary", "database": backend, **summary}) + "\n")
    print(table(summary, args.repeat))
    if rss is not None:
        print(
            f"rss: {rss['sessions_opened']} sessions, one cached token each: peak"
            f" {rss['peak_rss_mb']:.1f} MB, after {rss['rss_after_mb']:.1f} MB"
            f" (me {rss['me_rps']:.0f} req/s over all tokens)"
        )
    print(
        f"database {backend}, load by {bench.engine}, server on core(s) {server_cores},"
        f" load on {load_cores}, load average {os.getloadavg()[0]:.2f}; results in {output}"
    )
    return 0
