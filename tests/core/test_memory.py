"""The daemon's memory is bounded by bytes: the issue's probes, three hostile agents at a time, against a real daemon.

Each probe runs from three agents' sockets at once against a daemon in its own process, whose
resident set the test reads from /proc: its peak (VmHWM) must stay under 300 MB, and once the
hostile connections are closed its RSS must come back near where it started.
"""

import json
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from tests.core._rawrpc import RawConnection, open_raw
from tests.helpers import hive_config

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20
PEAK_LIMIT = 300 * MIB
# Back near the baseline: what a daemon that served some thousand calls keeps (caches, pools).
RELEASED_SLACK = 40 * MIB
HOSTILE = ("ha", "hb", "hc")
BOUND_S = 120.0
BODY = "x" * 60_000


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


@asynccontextmanager
async def daemon_process(config: HiveConfig) -> AsyncGenerator[Process]:
    process = await anyio.open_process(
        [sys.executable, "-m", "tests.daemon_main", str(config.run_dir), str(config.state_dir)], cwd=REPO
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 64)
        assert line == b"ready"
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


def huge_ignored_argument(size: int) -> bytes:
    """A waiting recv whose ignored argument is `[{},{},…]`, `size` bytes in all: the issue's first probe."""
    head = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"recv","arguments":{"timeout_s":30,"x":['
    tail = b"]}}}\n"
    count = (size - len(head) - len(tail)) // 3
    return head + b",".join([b"{}"] * count) + tail


async def push(raw: RawConnection, data: bytes) -> None:
    """Write `data`; the daemon may hang up before it took all of it."""
    try:
        await raw.send_bytes(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


async def probe_huge_lines(config: HiveConfig, agent: str, stack: AsyncExitStack, size: int) -> None:
    """15 connections each sending one line of `size` bytes, left open."""
    line = huge_ignored_argument(size)
    for _ in range(15):
        raw = await stack.enter_async_context(open_raw(config.agent_socket(agent)))
        await raw.initialize()
        await push(raw, line)


async def probe_unread_inbox_replies(config: HiveConfig, agent: str, stack: AsyncExitStack) -> None:
    """inbox(limit=100) on an inbox of 60 KB bodies, asked 200 times over, never reading an answer."""
    raw = await stack.enter_async_context(open_raw(config.agent_socket(agent)))
    await raw.initialize()
    calls = [
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {"name": "inbox", "arguments": {"limit": 100}},
            }
        ).encode()
        + b"\n"
        for i in range(200)
    ]
    # The daemon stops reading once its answers pile up, so this may never finish: bounded.
    with anyio.move_on_after(5):
        await push(raw, b"".join(calls))


async def probe_big_batch(config: HiveConfig, agent: str, stack: AsyncExitStack) -> None:
    """report_events with a 3.6 MB batch of small objects."""
    raw = await stack.enter_async_context(open_raw(config.agent_socket(agent)))
    await raw.initialize()
    events: list[dict[str, object]] = [{"type": "x", "n": [dict[str, int]() for _ in range(3000)]} for _ in range(100)]
    line = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": "report_events", "arguments": {"events": events}},
        }
    ).encode()
    await push(raw, line + b"\n")


Probe = Callable[[HiveConfig, str, AsyncExitStack], Coroutine[Any, Any, None]]


async def run_probe(config: HiveConfig, pid: int, probe: Probe) -> tuple[int, int, int]:
    """Run `probe` from every hostile agent at once; (baseline, peak while held, RSS after closing)."""
    baseline, _ = memory(pid)
    async with AsyncExitStack() as stack:
        async with anyio.create_task_group() as tg:
            for agent in HOSTILE:
                tg.start_soon(probe, config, agent, stack)
        # Everything sent; the daemon holds whatever it holds for the open connections now.
        async with open_hive_client(config.host_socket) as operator:
            assert [a.name for a in await operator.list_agents()] == sorted(HOSTILE)
        _, peak = memory(pid)
    # No event says "memory returned to the OS": look, bounded, until it has.
    released = memory(pid)[0]
    with anyio.move_on_after(15):
        while released > baseline + RELEASED_SLACK:
            await anyio.sleep(0.2)
            released = memory(pid)[0]
    return baseline, peak, released


async def test_the_daemons_memory_stays_bounded_under_every_probe_and_is_released(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(BOUND_S):
        async with daemon_process(config) as daemon:
            async with open_hive_client(config.host_socket) as operator:
                for agent in HOSTILE:
                    await operator.spawn(agent)
            probes: dict[str, Probe] = {
                "15 lines of 4 MiB": lambda c, a, s: probe_huge_lines(c, a, s, 4 * MIB),
                "15 lines just under the line limit": lambda c, a, s: probe_huge_lines(c, a, s, MIB - 64),
                "3.6 MB event batch": probe_big_batch,
            }
            results: dict[str, tuple[int, int, int]] = {}
            for name, probe in probes.items():
                results[name] = await run_probe(config, daemon.pid, probe)
            async with open_hive_client(config.host_socket) as operator:
                for agent in HOSTILE:
                    for _ in range(120):
                        await operator.send(agent, BODY)
            results["unread inbox(limit=100) replies"] = await run_probe(config, daemon.pid, probe_unread_inbox_replies)
    report = {name: tuple(round(v / MIB) for v in values) for name, values in results.items()}
    for name, (baseline, peak, released) in results.items():
        assert peak <= PEAK_LIMIT, f"{name}: peak {peak / MIB:.0f} MiB; all (baseline, peak, after) MiB: {report}"
        assert released <= baseline + RELEASED_SLACK, f"{name}: kept {(released - baseline) / MIB:.0f} MiB: {report}"
