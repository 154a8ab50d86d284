"""kill -9 of the daemon in the middle of applying an approval: the next start finishes the job.

A real daemon process (`tests.daemon_main`) is killed by its own failpoint right after an agent's
start and before that step is journaled done, the proposal settled and the manager told. The next
daemon must reach main with every agent running once: none started twice, none forgotten.
"""

import os
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.states import AgentState, ProposalState, SyncState
from tests.core.approvals._git import bare
from tests.helpers import daemon_process, hive_config


def agent_processes(config: HiveConfig, name: str) -> list[int]:
    """The live agent processes (`sleep`, the idle agent) working in `name`'s work dir."""
    work = (config.agent_state_dir(name) / "work").resolve()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if comm == "sleep" and cwd == work and state != "Z":
            found.append(int(entry))
    return found


async def test_a_daemon_killed_while_applying_an_approval_finishes_it_at_its_next_start(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    hive = ["alice", "bob", "carol", "hm1nd"]
    with anyio.fail_after(120):
        async with (
            daemon_process(config, env={"HYPERHIVE_FAILPOINTS": "apply:carol"}) as doomed,
            open_hive_client(config.host_socket) as operator,
        ):
            await operator.spawn("alice")
            await operator.spawn("bob")
            await operator.spawn_manager()
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                carol = await manager.propose_spawn("carol", role="count")
            with pytest.raises(DaemonUnavailableError):
                await operator.approve(carol.id)
            assert await doomed.wait() == -9
        # Killed half-way: main has carol, carol's start is journaled but never finished.
        assert "agents/carol.toml" in await bare(config, "ls-tree", "-r", "--name-only", "main")

        async with daemon_process(config), open_hive_client(config.host_socket) as operator:
            agents = await operator.list_agents()
            assert [(a.name, a.state, a.sync) for a in agents] == [
                (name, AgentState.RUNNING, SyncState.READY) for name in hive
            ]
            for name in hive:
                assert len(agent_processes(config, name)) == 1, f"{name} does not run exactly once"
            steps = [(h.step, h.state) for h in (await operator.status("carol")).history]
            assert steps == [("create", "interrupted"), ("create", "done")]
            [proposal] = await operator.approvals("all")
            assert (proposal.id, proposal.state) == (carol.id, ProposalState.APPLIED)
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                told = [m.body for m in (await manager.recv(timeout_s=10, max=10)).messages]
                assert told == [f"proposal {carol.id} (spawn carol): approved by operator and applied; carol is Ready."]
                assert (await manager.recv(timeout_s=0)).messages == []
            # The approval's merge is on main once, as the operator's.
            merges = await bare(config, "log", "--merges", "--format=%an %s", "main")
            assert merges.splitlines() == [f"operator approve proposal {carol.id}: spawn carol"]
