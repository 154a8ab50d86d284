"""An agent's output cannot fill the disk or flood the daemon: agent.log is rotated, and read at a bounded rate."""

import time
from pathlib import Path

import anyio

from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.lifecycle._agent_log import BURST_BYTES, BYTES_PER_S, AgentLog
from tests.helpers import hive_config

FLOOD = ("sh", "-c", "while :; do echo 'flood flood flood flood flood flood flood flood flood flood'; done")


def log_sizes(directory: Path) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in sorted(directory.glob("agent.log*"))}


async def test_the_log_is_rotated_at_its_limit_and_keeps_one_old_file(short_tmpdir: Path) -> None:
    path = short_tmpdir / "agent.log"
    log = AgentLog(path, max_bytes=64 * 1024)
    process = await anyio.open_process(["head", "-c", "300000", "/dev/zero"])
    assert process.stdout is not None
    with anyio.fail_after(20):
        await log.pump(process.stdout, bytes_per_s=10**9, burst=10**9)
        await process.wait()
    log.close()
    sizes = log_sizes(short_tmpdir)
    assert list(sizes) == ["agent.log", "agent.log.1"]
    assert all(size <= 64 * 1024 for size in sizes.values())
    assert sum(sizes.values()) > 64 * 1024


async def test_an_agent_that_floods_its_output_is_read_at_a_bounded_rate_and_others_are_served(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, agent_command=FLOOD)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        started = time.monotonic()
        await operator.spawn("noisy")
        # Until the flooder has spent its burst (watching the file, bounded): from then on only
        # the rate lets its bytes through, and what it wrote by the end is what is bounded.
        log_file = config.agent_state_dir("noisy") / "agent.log"
        size = 0
        with anyio.fail_after(20):
            while size <= BURST_BYTES:
                await anyio.sleep(0.05)
                size = log_file.stat().st_size if log_file.exists() else 0
        with anyio.fail_after(5):
            await operator.send("noisy", "the daemon still serves")
            assert (await operator.inbox("noisy")).queued == 1
        written = (config.agent_state_dir("noisy") / "agent.log").stat().st_size
        elapsed = time.monotonic() - started
        assert written <= BURST_BYTES + elapsed * BYTES_PER_S + 64 * 1024
        assert written > 0
