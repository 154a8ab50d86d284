"""Per-agent limits: memory, processes and CPU, enforced by the agent's cgroups and shown by status.

Real daemon, real bubblewrap, real cgroups (this host and CI have them writable: v1 memory, pids
and cpu hierarchies beside a v2 one). An agent over its memory limit is stopped and reported; the
host, and every other agent, never notice.
"""

import sys
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.lifecycle._procs import SandboxRecord
from hyperhive_core.lifecycle.local import RECORD_NAME, LocalBackend
from hyperhive_core.mcp.models import AgentInfo
from hyperhive_core.states import AgentState
from tests.helpers import IDLE_AGENT, agent_exit_code, echo_round_trip, hive_config, needs_bwrap

pytestmark = [pytest.mark.containers, needs_bwrap]
MIB = 2**20

# Exits with how many threads it could start (at most 200): the pids limit counts threads.
THREADS = (
    "import threading, sys\n"
    "stop = threading.Event(); n = 0\n"
    "try:\n"
    "    while n < 200:\n"
    "        threading.Thread(target=stop.wait, daemon=True).start(); n += 1\n"
    "except RuntimeError:\n"
    "    pass\n"
    "sys.exit(n)\n"
)
HOG = "import signal; x = bytearray(256 * 1024 * 1024); signal.pause()"


def agent_command(name_to_code: dict[str, str]) -> tuple[str, ...]:
    """One command for every agent of a hive: each runs the code given for its name, else idles."""
    table = repr(name_to_code)
    code = f"import os, signal\nexec({table}.get(os.environ['HIVE_AGENT_NAME'], 'signal.pause()'))"
    return (sys.executable, "-c", code)


async def test_status_shows_an_agents_limits_usage_and_what_contains_it(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap", agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        spawned = await operator.call("spawn", {"name": "alice", "pids": 64, "cpus": 0.5}, AgentInfo)
        assert spawned.state == AgentState.RUNNING
        info = await operator.status("alice")
        assert info.resources is not None
        r = info.resources
        # its own pids and cpus, the daemon's default memory
        memory_mb = config.agent_memory_mb
        assert memory_mb is not None
        assert (r.memory_limit_bytes, r.pids_limit, r.cpus_limit) == (memory_mb * MIB, 64, 0.5)
        assert (r.memory_bytes or 0) > 0
        assert (r.pids or 0) >= 1  # bwrap at least; its init and sleep may not have started yet
        assert r.cpu_s is not None
        for part in ("pid namespace", "seccomp", "cgroup"):
            assert part in info.containment
        # and the kernel has them: the cgroups the daemon recorded for alice
        record = SandboxRecord.load(config.agent_state_dir("alice") / RECORD_NAME)
        assert record is not None
        files = {d / f for d in record.cgroups for f in ("pids.max", "memory.limit_in_bytes", "cpu.cfs_quota_us")}
        values = {f.name: f.read_text().strip() for f in files if f.exists()}
        assert values == {
            "pids.max": "64",
            "memory.limit_in_bytes": str(memory_mb * MIB),
            "cpu.cfs_quota_us": "50000",
        }


async def test_an_agent_over_its_memory_limit_is_stopped_and_reported_and_the_others_carry_on(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap", agent_command=agent_command({"hog": HOG}))
    with anyio.fail_after(60):
        async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
            await operator.call("spawn", {"name": "idle"}, AgentInfo)
            await operator.call("spawn", {"name": "hog", "memory_mb": 64}, AgentInfo)
            await agent_exit_code(daemon, "hog", within_s=30)
            hog = await operator.status("hog")
            assert hog.state == AgentState.FAILED
            assert "over its memory limit (64 MiB)" in hog.detail
            idle = await operator.status("idle")
            assert idle.state == AgentState.RUNNING


async def test_an_agent_cannot_start_more_processes_than_its_limit(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap", agent_command=agent_command({"alice": THREADS}))
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.call("spawn", {"name": "alice", "pids": 32}, AgentInfo)
        started = await agent_exit_code(daemon, "alice")
        # bwrap, its init and the interpreter's own take a few of the 32
        assert 10 < (started or 0) < 32


async def test_an_agent_with_default_limits_still_round_trips(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap")
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await echo_round_trip(operator, "alice", "limited")


def test_without_cgroups_the_daemon_warns_and_status_says_what_still_contains_agents() -> None:
    backend = LocalBackend(sandbox="bwrap", cgroups=False)
    assert any("no writable cgroups" in w and "no memory, process or CPU limit" in w for w in backend.info.warnings)
    assert backend.containment == "pid namespace, seccomp"
    plain = LocalBackend(sandbox="none", cgroups=False)
    assert any("their process group, which an agent can leave" in w for w in plain.info.warnings)
    assert plain.containment == "process group only"
