"""kill -9 of the daemon in the middle of applying an approval: the next start finishes the job.

A real daemon process (`tests.daemon_main`) kills itself at a failpoint right after an approval
is merged into main and before anything of it is applied (real agents in bubblewrap). The next
daemon must reach main, every agent started once: none twice, none forgotten, the proposal settled
and the manager told once. The same in the middle of a reconcile step: test_reconcile_nixos.py.
"""

import os
from collections.abc import Mapping
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.states import AgentState, ProposalState, SyncState
from tests.core.approvals._git import bare
from tests.helpers import daemon_process, hive_config

HIVE = ["alice", "bob", "carol", "hm1nd"]


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


async def wait_gone(pid: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


async def crash_while_approving_carol(
    config: HiveConfig, failpoint: str, overrides: Mapping[str, object] | None = None
) -> int:
    """alice and bob run, the manager proposes carol, and the daemon dies at `failpoint` during the approval."""
    async with (
        daemon_process(config, env={"HYPERHIVE_FAILPOINTS": failpoint}, overrides=overrides) as doomed,
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
    # Killed half-way: main has carol, merged by the operator, once.
    assert "agents/carol.toml" in await bare(config, "ls-tree", "-r", "--name-only", "main")
    merges = await bare(config, "log", "--merges", "--format=%an %s", "main")
    assert merges.splitlines() == [f"operator approve proposal {carol.id}: spawn carol"]
    return carol.id


async def assert_finished(operator: HiveClient, config: HiveConfig, proposal: int) -> None:
    agents = await operator.list_agents()
    assert [(a.name, a.state, a.sync) for a in agents] == [(n, AgentState.RUNNING, SyncState.READY) for n in HIVE]
    [settled] = await operator.approvals("all")
    assert (settled.id, settled.state) == (proposal, ProposalState.APPLIED), settled.reason
    async with open_hive_client(config.agent_socket("hm1nd")) as manager:
        told = [m.body for m in (await manager.recv(timeout_s=10, max=10)).messages]
        assert told == [f"proposal {proposal} (spawn carol): approved by operator and applied; carol is Ready."]
        assert (await manager.recv(timeout_s=0)).messages == []


async def test_a_daemon_killed_after_merging_an_approval_applies_it_at_its_next_start(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(120):
        proposal = await crash_while_approving_carol(config, "approve-merged")
        # The dead daemon's agents die with it (their sandboxes get SIGKILL).
        for name in HIVE:
            for pid in agent_processes(config, name):
                await wait_gone(pid)
        async with daemon_process(config), open_hive_client(config.host_socket) as operator:
            await assert_finished(operator, config, proposal)
            for name in HIVE:
                assert len(agent_processes(config, name)) == 1, f"{name} does not run exactly once"
            assert [(h.step, h.state) for h in (await operator.status("carol")).history] == [("create", "done")]
