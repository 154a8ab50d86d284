"""GitOps for real: the state repo is plain git; what a person does with git is what the hive does.

`git log` is the audit trail (who, what, which proposal), a proposal merged by hand or a revert
pushed to main is reconciled, and a bad hand-edited file is refused with its file and line.
"""

from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState, ProposalState, SyncState
from tests.core.approvals._git import bare, clone, commit_and_push, git, push_files
from tests.helpers import IDLE_AGENT, hive_config


def idle_config(root: Path) -> HiveConfig:
    return hive_config(root, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)


async def names(operator: HiveClient) -> list[str]:
    return [a.name for a in await operator.list_agents()]


async def test_git_log_shows_every_change_with_its_author_and_proposal(short_tmpdir: Path) -> None:
    config = idle_config(short_tmpdir)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn_manager()
            await operator.spawn("alice", role="write")
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                bob = await manager.propose_spawn("bob", reason="alice needs a reviewer")
                await operator.approve(bob.id)
                denied = await manager.propose_kill("alice")
                await operator.deny(denied.id, "alice stays")
    trailer = "%(trailers:key={},valueonly,separator=%x2C)"
    fmt = "%x09".join(["%an", "%s", trailer.format("Proposal-Id"), trailer.format("Requested-By")])
    log = (await bare(config, "log", "--first-parent", f"--format={fmt}", "main")).splitlines()
    assert log == [
        f"operator\tapprove proposal {bob.id}: spawn bob\t{bob.id}\t",
        "operator\tspawn alice\t\toperator",
        "operator\tspawn the manager\t\toperator",
        "hyperhive\ta new hive\t\thyperhive",
    ]
    # The approval merged the manager's own commit: its second parent.
    assert (await bare(config, "log", "-1", f"--format={fmt}", "main^2")).strip() == f"hm1nd\tspawn bob\t{bob.id}"
    # The proposal's own commit says why and on which main it was made; the denied one stays on its branch.
    message = await bare(config, "log", "-1", "--format=%B", f"proposals/{bob.id}")
    assert "alice needs a reviewer" in message
    assert f"Base: {bob.base}" in message
    assert "Proposed-By: hm1nd" in message
    assert (await bare(config, "log", "-1", "--format=%an %s", f"proposals/{denied.id}")).strip() == "hm1nd kill alice"
    files = (await bare(config, "ls-tree", "-r", "--name-only", "main")).split()
    assert files == ["README.md", "agents/alice.toml", "agents/bob.toml", "agents/hm1nd.toml", "hive.toml"]


async def test_a_proposal_merged_with_plain_git_is_noticed_applied_and_reported(short_tmpdir: Path) -> None:
    config = idle_config(short_tmpdir)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn_manager()
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                dave = await manager.propose_spawn("dave", role="deploy")
                work = await clone(config, short_tmpdir / "clone")
                await git("merge", "--quiet", "--no-ff", "-m", "merge dave by hand", f"origin/{dave.branch}", cwd=work)
                await git("push", "--quiet", "origin", "HEAD:main", cwd=work)
                # No hivectl: the daemon sees main move and reconciles by itself.
                note = (await manager.recv(timeout_s=30)).messages
                assert [m.body for m in note] == [
                    f"proposal {dave.id} (spawn dave): approved by git and applied; dave is Ready."
                ]
                [done] = await manager.proposals()
                assert (done.state, done.decided_by) == (ProposalState.APPLIED, "git")
            info = await operator.status("dave")
            assert (info.state, info.sync, info.role) == (AgentState.RUNNING, SyncState.READY, "deploy")
            assert await operator.approvals() == []


async def test_a_revert_pushed_with_git_and_a_rollback_restore_the_earlier_hive(short_tmpdir: Path) -> None:
    config = idle_config(short_tmpdir)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice", role="write")
            await operator.spawn("erin")
            spawned_erin = (await bare(config, "rev-parse", "main")).strip()
            work = await clone(config, short_tmpdir / "clone")
            await git("revert", "--no-edit", spawned_erin, cwd=work)
            await git("push", "--quiet", "origin", "HEAD:main", cwd=work)
            # Applied by the daemon's own watch of main, or by this reconcile, whichever comes first.
            report = await operator.reconcile()
            assert report.ok
            assert await names(operator) == ["alice"]
            assert not config.agent_socket("erin").exists()

            before = (await bare(config, "rev-parse", "main")).strip()
            first = await operator.status("alice")
            await operator.call("rebuild", {"name": "alice", "role": "review"}, type(first))
            assert (await operator.status("alice")).role == "review"
            receipt = await operator.rollback("alice", before)
            assert receipt.summary == f"rollback alice to {before[:12]}"
            assert [(s.agent, s.action, s.ok) for s in receipt.report.steps] == [("alice", "rebuild", True)]
            assert (await operator.status("alice")).role == "write"
            assert (await bare(config, "log", "-1", "--format=%an", "main")).strip() == "operator"


# (Every kind of bad field, with its line, is in test_agentfile.py: here, that main is refused whole.)
@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            '# edited by hand\nrole = "x"\ndriver = "gpt"\n',
            "agents/alice.toml line 3: driver: Input should be 'auto', 'claude' or 'echo' (got 'gpt')",
        ),
        ('role = "unterminated\n', "agents/alice.toml line 1: not valid TOML: "),
    ],
    ids=["value", "syntax"],
)
async def test_a_bad_hand_edited_file_is_refused_with_its_file_and_line_and_nothing_changes(
    short_tmpdir: Path, text: str, where: str
) -> None:
    config = idle_config(short_tmpdir)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            alice = await operator.spawn("alice", role="write")
            # One push: a broken alice, and a new agent that a half-applied main would start.
            work = short_tmpdir / "clone"
            await push_files(config, work, {"agents/alice.toml": text, "agents/zed.toml": 'role = "z"\n'}, "by hand")
            report = await operator.reconcile()
            assert report.error is not None
            assert where in report.error
            assert report.steps == []
            plan = await operator.plan()
            assert plan.error is not None
            assert where in plan.error
            assert await names(operator) == ["alice"]
            after = await operator.status("alice")
            assert (after.pid, after.role, after.sync) == (alice.pid, "write", SyncState.READY)
            assert not config.agent_socket("zed").exists()
            # Fixed on main: it all applies.
            await commit_and_push(work, {"agents/alice.toml": 'role = "write"\n'}, "fix alice")
            assert (await operator.reconcile()).ok
            zed = await operator.status("zed")
            assert (zed.state, zed.sync) == (AgentState.RUNNING, SyncState.READY)
            assert [(h.step, h.state) for h in zed.history] == [("create", "done")]


async def test_a_suspended_agent_is_left_as_it_is_until_resumed(short_tmpdir: Path) -> None:
    config = idle_config(short_tmpdir)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            alice = await operator.spawn("alice", role="write")
            suspended = await operator.suspend("alice")
            assert suspended.sync == SyncState.SUSPENDED
            await push_files(config, short_tmpdir / "clone", {"agents/alice.toml": 'role = "review"\n'}, "new role")
            assert (await operator.reconcile()).steps == []
            [step] = (await operator.plan()).steps
            assert (step.agent, step.action) == ("alice", "suspended")
            assert (await operator.status("alice")).pid == alice.pid
            resumed = await operator.resume("alice")
            assert (resumed.sync, resumed.role, resumed.state) == (SyncState.READY, "review", AgentState.RUNNING)
            assert resumed.pid != alice.pid
            assert (await operator.plan()).steps == []
            history = [(h.step, h.state) for h in (await operator.status("alice")).history]
            assert history[-3:] == [("suspend", "done"), ("resume", "done"), ("rebuild", "done")]
