"""The benchmark command in --smoke mode: it runs end to end and reports every workload.

Timing belongs to the benchmark itself; this only checks that it works and sees no errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.system, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
SMOKE_WORKLOADS = {"ceiling", "me", "refresh", "login", "mixed"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("loadgen", ["auto", "python"])
def test_bench_smoke_reports_every_workload_without_errors(tmp_path: Path, loadgen: str) -> None:
    """`python -m bench --smoke` prints the table and writes one JSON line per workload."""
    output = tmp_path / "results.jsonl"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--loadgen", loadgen, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "req/s" in result.stdout and "peak RSS MB" in result.stdout
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    workloads = {line["workload"]: line for line in lines if line["kind"] == "workload"}
    assert set(workloads) == SMOKE_WORKLOADS
    for name, row in workloads.items():
        assert row["requests"] > 0, name
        assert (row["errors"], row["non2xx"]) == (0, 0), (name, row)
        assert name in result.stdout
    summary = next(line for line in lines if line["kind"] == "summary")
    assert {"me/ceiling", "refresh/ceiling"} <= set(summary["ratios"])
