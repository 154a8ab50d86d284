"""The manager proposes, the operator decides: through the manager's own socket, as claude would call it.

Real daemon, real git, real agents (idle processes: the tests drive the sockets themselves).
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient, ToolCallError, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState, ProposalState, SyncState
from tests.core.approvals._git import bare, push_files
from tests.helpers import IDLE_AGENT, hive_config


@dataclass(frozen=True, slots=True)
class ManagedHive:
    config: HiveConfig
    operator: HiveClient
    manager: HiveClient
    scratch: Path


@asynccontextmanager
async def managed_hive(root: Path) -> AsyncGenerator[ManagedHive]:
    """A daemon with the manager running; the operator's and the manager's clients."""
    config = hive_config(root, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn_manager()
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                yield ManagedHive(config, operator, manager, root / "clone")


async def told(manager: HiveClient) -> list[str]:
    """What the operator has told the manager so far (waiting a little for the first word)."""
    got = await manager.recv(timeout_s=10, max=100)
    assert all(m.sender == "operator" for m in got.messages)
    return [m.body for m in got.messages]


async def test_a_proposed_spawn_runs_nothing_until_approved_then_runs_and_the_manager_hears(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("worker", role="count words", reason="the operator wants counts")
        assert (proposal.state, proposal.kind, proposal.proposer) == (ProposalState.PROPOSED, "spawn", "hm1nd")
        assert proposal.summary == "spawn worker"
        # Nothing runs yet, and main does not have it.
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]
        assert not h.config.agent_socket("worker").exists()
        assert (await h.operator.plan()).steps == []
        # The operator sees it, with its diff and what approving would do.
        assert [p.id for p in await h.operator.approvals()] == [proposal.id]
        detail = await h.operator.approval(proposal.id)
        assert '+role = "count words"' in detail.diff
        assert detail.proposal.message == "the operator wants counts"
        assert [(s.agent, s.action) for s in detail.plan.steps] == [("worker", "create")]
        assert detail.conflicts == []

        verdict = await h.operator.approve(proposal.id)
        assert verdict.proposal.state == ProposalState.APPLIED
        assert verdict.report is not None
        assert [(s.agent, s.action, s.ok) for s in verdict.report.steps] == [("worker", "create", True)]
        worker = await h.operator.status("worker")
        assert (worker.state, worker.sync, worker.role) == (AgentState.RUNNING, SyncState.READY, "count words")
        assert await told(h.manager) == [
            f"proposal {proposal.id} (spawn worker): approved by operator and applied; worker is Ready."
        ]
        assert [(p.id, p.state) for p in await h.manager.proposals()] == [(proposal.id, ProposalState.APPLIED)]
        # The first verdict stands.
        with pytest.raises(ToolCallError) as caught:
            await h.operator.deny(proposal.id, "too late")
        assert (
            caught.value.reason
            == f"proposal {proposal.id} is already applied by operator: worker is Ready; the first verdict stands"
        )
        assert await h.operator.approvals() == []


async def test_a_denied_proposal_runs_nothing_and_the_manager_hears_why(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("scout")
        verdict = await h.operator.deny(proposal.id, "not before the release")
        assert (verdict.proposal.state, verdict.proposal.reason) == (ProposalState.DENIED, "not before the release")
        assert await told(h.manager) == [
            f"proposal {proposal.id} (spawn scout): denied by operator: not before the release"
        ]
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]
        with pytest.raises(ToolCallError) as caught:
            await h.operator.approve(proposal.id)
        assert "already denied by operator: not before the release" in caught.value.reason
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]
        assert "scout" not in await bare(h.config, "ls-tree", "-r", "--name-only", "main")


async def test_a_proposal_whose_agent_changed_on_main_meanwhile_is_refused_as_stale(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        await h.operator.spawn("alice", role="write")
        proposal = await h.manager.propose("alice", {"role": "write tests"}, reason="alice should test")
        before = await h.operator.status("alice")
        await h.operator.rebuild("alice")  # no new settings: no commit, the proposal stays good
        assert (await h.operator.approval(proposal.id)).conflicts == []
        # The operator changes alice on main: the proposal was planned on another alice.
        await h.operator.call("rebuild", {"name": "alice", "role": "review"}, type(before))
        with pytest.raises(ToolCallError) as caught:
            await h.operator.approve(proposal.id)
        assert "stale" in caught.value.reason
        assert "agents/alice.toml" in caught.value.reason
        [stale] = await h.manager.proposals()
        assert stale.state == ProposalState.STALE
        assert (await h.operator.status("alice")).role == "review"
        [note] = await told(h.manager)
        assert note.startswith(
            f"proposal {proposal.id} (edit alice: role): not applied: proposal {proposal.id} is stale"
        )


async def test_a_proposal_for_another_agent_is_merged_onto_a_main_that_moved(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("bob")
        await h.operator.spawn("carol")  # main moves; bob's file is untouched
        verdict = await h.operator.approve(proposal.id)
        assert verdict.proposal.state == ProposalState.APPLIED
        assert sorted(a.name for a in await h.operator.list_agents()) == ["bob", "carol", "hm1nd"]
        parents = (await bare(h.config, "log", "-1", "--format=%P", "main")).split()
        assert parents == [
            verdict.proposal.base and (await bare(h.config, "rev-parse", "main~1")).strip(),
            proposal.commit,
        ]


async def test_a_proposal_left_without_a_verdict_expires_and_the_manager_hears(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        await push_files(h.config, h.scratch, {"hive.toml": "proposal_ttl_s = 1\n"}, "proposals expire fast")
        await h.operator.reconcile()
        proposal = await h.manager.propose_spawn("late")
        with anyio.fail_after(20):
            [note] = await told(h.manager)
        assert note == (
            f"proposal {proposal.id} (spawn late): expired (no verdict within 1 s); "
            "propose it again if it is still needed."
        )
        with pytest.raises(ToolCallError) as caught:
            await h.operator.approve(proposal.id)
        assert f"proposal {proposal.id} is already expired" in caught.value.reason
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]


async def test_the_manager_cannot_act_without_approval_nor_on_itself(short_tmpdir: Path) -> None:
    async with managed_hive(short_tmpdir) as h:
        await h.operator.spawn("alice")
        proposal = await h.manager.propose_kill("alice", reason="done")
        assert [a.name for a in await h.operator.list_agents()] == ["alice", "hm1nd"]
        with pytest.raises(ToolCallError) as caught:
            await h.manager.propose_kill("hm1nd")
        assert caught.value.reason == "hm1nd may not kill itself: only the operator can do that"
        with pytest.raises(ToolCallError) as caught:
            await h.manager.propose_spawn("alice")
        assert "agent 'alice' already exists" in caught.value.reason
        with pytest.raises(ToolCallError) as caught:
            await h.manager.propose("alice", {"sandbox": {"network": "maybe"}})
        assert caught.value.reason.startswith("agent 'alice': sandbox.network: Input should be a valid boolean")
        with pytest.raises(ToolCallError) as caught:
            await h.manager.propose("alice", {"role": ""})
        assert "leaves agent 'alice' as it is" in caught.value.reason
        # The manager never decides: the verdicts are not its tools.
        with pytest.raises(ToolCallError) as caught:
            await h.manager.approve(proposal.id)
        assert "Unknown tool" in caught.value.reason or "approve" in caught.value.reason
        verdict = await h.operator.approve(proposal.id)
        assert verdict.proposal.state == ProposalState.APPLIED
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]
        assert not h.config.agent_socket("alice").exists()


async def test_the_manager_proposes_an_agent_with_its_tools_and_repository_and_a_bad_repository_is_refused(
    short_tmpdir: Path,
) -> None:
    repo = short_tmpdir / "project"
    repo.mkdir()
    for args in (
        ["init", "-q"],
        ["-c", "user.name=op", "-c", "user.email=op@x.invalid", "commit", "-q", "--allow-empty", "-m", "start"],
    ):
        await anyio.run_process(["git", "-C", str(repo), *args])
    async with managed_hive(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn(
            "worker", tools=["Read", "Grep"], permission_mode="dontAsk", repo=str(repo), reason="reads the code"
        )
        detail = await h.operator.approval(proposal.id)
        assert '+tools = ["Read", "Grep"]' in detail.diff
        assert f'+repo = "{repo}"' in detail.diff
        with pytest.raises(ToolCallError) as caught:
            await h.manager.propose_spawn("other", repo=str(short_tmpdir / "missing"))
        assert "no such directory; give the path of a git repository" in caught.value.reason
        assert [p.id for p in await h.operator.approvals()] == [proposal.id]
