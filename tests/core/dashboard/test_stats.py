"""The stats sampler with a real daemon and real agent processes: rates, queues, CPU, memory, tokens, cost."""

import sqlite3
from pathlib import Path
from typing import Any

import anyio

from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.dashboard import procs
from hyperhive_core.dashboard.activity import Activity
from hyperhive_core.dashboard.queries import HiveReader
from hyperhive_core.dashboard.stats import Sample, Sampler, StatsStore
from tests.core.dashboard._dash import running_dashboard
from tests.helpers import IDLE_AGENT, hive_config

# What the turn loop reports for each model turn; the daemon records it (budgets) and the sampler reads that.
USAGE: dict[str, Any] = {
    "type": "hive",
    "subtype": "usage",
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_read_input_tokens": 5,
    "cost_usd": 0.0125,
    "duration_ms": 900,
}


async def test_a_sample_holds_the_rate_queues_and_each_agents_cpu_memory_tokens_and_cost(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.spawn("bob")
        store = StatsStore(short_tmpdir / "stats.sqlite")
        reader = HiveReader(daemon.hive.broker.store.engine)
        sampler = Sampler(daemon.hive, Activity(reader), store, every_s=60)
        try:
            first = await sampler.sample_once()
            for i in range(3):
                await operator.send("alice", f"m{i}")
            async with open_hive_client(config.agent_socket("bob")) as bob:
                await bob.report_events([USAGE, USAGE])
            second = await sampler.sample_once()
            window = store.window(0)
        finally:
            store.close()
    assert first.messages_per_min is None  # a rate needs two samples
    assert second.messages_per_min is not None
    assert second.messages_per_min > 0
    assert second.queued == 3
    agents = {a.agent: a for a in second.agents}
    assert sorted(agents) == ["alice", "bob"]
    assert agents["alice"].queued == 3
    assert agents["bob"].tokens == 2 * 125
    assert agents["bob"].cost_usd == 0.025
    for sample in agents.values():
        assert sample.rss_bytes is not None
        assert sample.rss_bytes > 0  # the agent's whole process tree, from /proc
        assert sample.cpu_pct is not None
        assert sample.cpu_pct >= 0
    assert len(window["t"]) == 2
    assert window["queued"] == [0, 3]
    assert window["agents"]["bob"]["cost_usd"] == [0.0, 0.025]
    assert window["agents"]["alice"]["rss_mb"][1] > 0


def test_old_samples_are_forgotten(short_tmpdir: Path) -> None:
    store = StatsStore(short_tmpdir / "stats.sqlite")
    try:
        for t in (1000.0, 2000.0, 5000.0):
            store.record(Sample(t=t, messages_per_min=1.0, queued=0, delivered=0), keep_s=3500)
        assert store.window(0)["t"] == [2000.0, 5000.0]
    finally:
        store.close()


def test_a_damaged_stats_file_is_moved_aside_and_started_afresh(short_tmpdir: Path) -> None:
    path = short_tmpdir / "stats.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = StatsStore(path)
    try:
        store.record(Sample(t=1.0, messages_per_min=None, queued=0, delivered=0))
        assert store.window(0)["t"] == [1.0]
    finally:
        store.close()
    [aside] = short_tmpdir.glob("stats.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert sqlite3.connect(path).execute("SELECT count(*) FROM hive_sample").fetchone() == (1,)


def test_a_process_tree_is_summed_from_proc() -> None:
    table = {
        10: procs.ProcStat(ppid=1, cpu_s=1.0, rss_bytes=100),
        11: procs.ProcStat(ppid=10, cpu_s=2.0, rss_bytes=200),
        12: procs.ProcStat(ppid=11, cpu_s=3.0, rss_bytes=300),
        20: procs.ProcStat(ppid=1, cpu_s=9.0, rss_bytes=900),
    }
    assert procs.tree_usage(table, {"a": 10, "gone": 99}) == {"a": (6.0, 600)}
    # A command name with spaces and parentheses does not shift the fields.
    line = "42 (we (ird) name) S 7 42 42 0 -1 0 0 0 0 0 150 50 0 0 20 0 1 0 100 1000 25 rest"
    parsed = procs.parse_stat(line)
    assert parsed is not None
    assert parsed.ppid == 7
    assert parsed.cpu_s == 200 / procs.CLOCK_TICKS
    assert parsed.rss_bytes == 25 * procs.PAGE_BYTES


async def test_the_stats_api_serves_samples_from_the_start(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        with anyio.fail_after(10):
            data = (await client.get("/api/stats")).json()
            refused = await client.get("/api/stats", params={"window_s": "soon"})
    assert len(data["t"]) >= 1  # the first sample is taken before the daemon says it is ready
    assert set(data) == {"t", "messages_per_min", "queued", "delivered", "agents"}
    assert refused.status_code == 400
    assert "window_s must be a whole number" in refused.json()["error"]
