"""The benchmark script keeps working: a smoke run produces every row (timings are never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = [
    "`send` tool call",
    "delivery",
    "throughput",
    "throughput, keyed sends and leased reads",
    "scale",
    "CLI",
    "CLI: `hivectl plan`",
    "CLI: `hivectl approvals`",
    "approve → answer",
    "history: `recv`",
    "history: `inbox`",
    "floor: raw JSON line",
    "floor: MCP no-op",
    "floor: MCP no-op via bridge",
    "floor: SQLite commit (FULL)",
    "floor: SQLite commit (NORMAL)",
    "floor: python start",
]


def test_a_smoke_run_of_the_benchmarks_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", "-"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["what"] for row in report["rows"]] == ROWS
    for row in report["rows"]:
        assert row["median_ms"] is not None
        assert row["p99_ms"] is not None
    assert report["machine"]["cores"]
