"""The benchmark script keeps working: a smoke run produces every row (timings are never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.agent._claude import needs_claude

ROOT = Path(__file__).resolve().parent.parent
ROWS = [
    "`send` tool call",
    "delivery",
    "`report_events` of a turn, usage recorded",
    "throughput",
    "throughput, keyed sends and leased reads",
    "fairness",
    "dashboard: `send` with 10 SSE clients",
    "dashboard: throughput with 10 SSE clients",
    "dashboard: send → painted",
    "ceiling: MCP no-op calls/s, 1 server",
    "ceiling: MCP no-op calls/s, 4 servers",
    "PostgreSQL store alone, 1 store",
    "PostgreSQL store alone, 4 stores",
    "throughput, 1 daemon on PostgreSQL",
    "throughput, 2 daemons on PostgreSQL",
    "throughput, 4 daemons on PostgreSQL",
    "PostgreSQL wake-up on one daemon",
    "PostgreSQL wake-up across two daemons",
    "scale",
    "CLI",
    "dashboard: page load",
    "CLI: `hivectl plan`",
    "CLI: `hivectl approvals`",
    "approve → answer",
    "dashboard: approvals, history",
    "history: `recv`",
    "history: `inbox`",
    "claude turn start (kept)",
    "claude turn start (per turn)",
    "claude turn end (kept)",
    "claude turn end (per turn)",
    "claude Bash call",
    "claude RSS per agent",
    "floor: raw JSON line",
    "floor: MCP no-op",
    "floor: MCP no-op via bridge",
    "floor: SQLite commit (FULL)",
    "floor: SQLite commit (NORMAL)",
    "floor: python start",
]

# rows that measure something other than time
# Rows that report a rate or a size, not a time.
UNTIMED = {
    "claude RSS per agent",
    "ceiling: MCP no-op calls/s, 1 server",
    "ceiling: MCP no-op calls/s, 4 servers",
    "PostgreSQL store alone, 1 store",
    "PostgreSQL store alone, 4 stores",
}


@needs_claude
def test_a_smoke_run_of_the_benchmarks_reports_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", "-"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,  # seven more daemons and a PostgreSQL server for the PostgreSQL rows
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [row["what"] for row in report["rows"]] == ROWS
    for row in report["rows"]:
        if row["what"] in UNTIMED:
            continue
        assert row["median_ms"] is not None
        assert row["p99_ms"] is not None
    [memory] = [row for row in report["rows"] if row["what"] == "claude RSS per agent"]
    assert memory["extra"]["claude_rss_mb"] > 0
    # a working turn: Bash, send, the closing words
    [work] = [row for row in report["rows"] if row["what"] == "claude Bash call"]
    assert set(work["extra"]["model_requests_per_working_turn"]) == {3}
    assert report["machine"]["cores"]
    rates = [row for row in report["rows"] if row["what"].startswith(("ceiling:", "PostgreSQL store alone"))]
    assert len(rates) == 4
    assert all(row["extra"]["rate"] > 0 for row in rates)
