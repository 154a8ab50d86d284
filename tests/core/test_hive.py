"""End to end on the local backend: real echo agents in bubblewrap, restarts, and the lifecycle verbs."""

import os
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import ToolCallError, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.lifecycle._procs import ProcessRef, SandboxRecord
from hyperhive_core.lifecycle.local import RECORD_NAME, LocalBackend
from hyperhive_core.states import AgentState, SyncState
from tests.core.approvals._git import hive_events, hive_subtypes, push_files
from tests.helpers import (
    IDLE_AGENT,
    agent_exit_code,
    echo_round_trip,
    hive_config,
    kill_hard,
    needs_bwrap,
    start_daemon_process,
)

pytestmark = [pytest.mark.containers, needs_bwrap]


async def test_the_seed_round_trip_survives_a_daemon_restart(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="bwrap")
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn("bob")
            await echo_round_trip(operator, "alice", "hello alice")
            before = {a.name: a for a in await operator.list_agents()}
            assert {(a.state, a.sandbox) for a in before.values()} == {(AgentState.RUNNING, "bwrap")}
            # Left unread across the restart.
            note = await operator.send("operator", "note to self")

        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            after = {a.name: a for a in await operator.list_agents()}
            assert sorted(after) == ["alice", "bob"]
            assert all(a.state == AgentState.RUNNING for a in after.values())
            assert {a.pid for a in after.values()}.isdisjoint({a.pid for a in before.values()})
            assert [(m.id, m.body) for m in (await operator.recv(timeout_s=5)).messages] == [(note.id, "note to self")]
            await echo_round_trip(operator, "bob", "hello bob")


async def test_acknowledged_messages_survive_kill_9_of_the_daemon(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(60):
        pid = await start_daemon_process(config)
        try:
            async with open_hive_client(config.host_socket) as operator:
                first_alice = (await operator.spawn("alice")).pid
                ids = [(await operator.send("operator", f"message {i}")).id for i in range(50)]
            assert first_alice is not None
            agent_gone = os.pidfd_open(first_alice)
            await kill_hard(pid)
            # No orphan: the sandbox dies with the daemon that started it.
            with anyio.fail_after(5):
                await anyio.wait_readable(agent_gone)
            os.close(agent_gone)
            pid = await start_daemon_process(config)
            async with open_hive_client(config.host_socket) as operator:
                got = (await operator.recv(timeout_s=5, max=100)).messages
                assert [(m.id, m.body) for m in got] == [(i, f"message {n}") for n, i in enumerate(ids)]
                [alice] = await operator.list_agents()
                assert alice.state == AgentState.RUNNING
                await echo_round_trip(operator, "alice", "still there?")
                await operator.shutdown()
        finally:
            if await anyio.Path(f"/proc/{pid}").exists():
                await kill_hard(pid)


async def test_kill_stops_the_agent_and_removes_its_socket(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        alice = await operator.spawn("alice")
        assert alice.pid is not None
        assert config.agent_socket("alice").exists()
        await operator.kill("alice")
        assert not config.agent_socket("alice").exists()
        assert not await anyio.Path(f"/proc/{alice.pid}").exists() or _is_zombie(alice.pid)
        assert await operator.list_agents() == []
        with pytest.raises(ToolCallError) as caught:
            await operator.send("alice", "anyone?")
        assert "unknown agent 'alice'" in caught.value.reason


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def test_rebuild_restarts_the_agent_and_re_creates_its_socket(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            first = await operator.spawn("alice")
            await echo_round_trip(operator, "alice", "one")
            config.agent_socket("alice").unlink()  # as after a run dir wipe
            second = await operator.rebuild("alice")
            assert second.state == AgentState.RUNNING
            assert second.pid != first.pid
            assert config.agent_socket("alice").exists()
            await echo_round_trip(operator, "alice", "two")
            third = await operator.rebuild("alice")  # idempotent: again, same outcome
            assert third.state == AgentState.RUNNING
            await echo_round_trip(operator, "alice", "three")


async def test_an_agent_that_cannot_start_stays_on_main_shown_failed_and_kill_removes_it(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, sandbox="none", agent_command=("/nonexistent/hive-agent",))
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        with pytest.raises(ToolCallError) as caught:
            await operator.spawn("alice")
        assert "cannot start agent 'alice'" in caught.value.reason
        assert "committed to main" in caught.value.reason
        [alice] = await operator.list_agents()
        assert (alice.state, alice.pid, alice.sync) == (AgentState.STOPPED, None, SyncState.FAILED)
        assert "cannot start agent 'alice'" in alice.sync_reason
        await operator.kill("alice")
        assert await operator.list_agents() == []
        assert not config.agent_socket("alice").exists()


async def test_an_agent_that_dies_is_restarted_at_once_then_after_a_backoff_and_shown(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=("sh", "-c", "exit 3"))
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        # A long backoff, so the second death is still waiting when we look.
        await push_files(
            config,
            short_tmpdir / "clone",
            {"hive.toml": "restart_backoff_s = 600\nrestart_backoff_max_s = 600\n"},
            "slow restarts",
        )
        await operator.reconcile()
        await operator.spawn("alice")
        with anyio.fail_after(30):
            events = await hive_events(operator, "alice", until="died", count=2)
        assert hive_subtypes(events) == ["died", "restart", "died"]
        deaths = [str(e.data["message"]) for e in events if e.data.get("subtype") == "died"]
        assert deaths == [
            "exited with code 3; see its log; restart 1 in 0 s",
            "exited with code 3; see its log; restart 2 in 600 s",
        ]
        info = await operator.status("alice")
        assert (info.state, info.detail) == (AgentState.FAILED, "exited with code 3; see its log")
        assert info.sync == SyncState.FAILED
        assert info.sync_reason.startswith("died: exited with code 3; see its log (restart 2); next attempt in ")
        assert [(h.step, h.state) for h in info.history][-3:] == [
            ("exited", "failed"),
            ("restart", "done"),
            ("exited", "failed"),
        ]
        # The operator need not wait for the backoff.
        report = await operator.reconcile("alice")
        assert [(s.agent, s.action, s.ok) for s in report.steps] == [("alice", "restart", True)]


def test_without_bwrap_agents_run_unsandboxed_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    backend = LocalBackend(sandbox="auto")
    assert not backend.sandboxed
    assert any("WITHOUT a sandbox" in w for w in backend.info.warnings)


async def test_an_unsandboxed_agent_still_round_trips(short_tmpdir: Path) -> None:
    config: HiveConfig = hive_config(short_tmpdir, sandbox="none")
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            info = await operator.spawn("alice")
            assert info.sandbox == "none"
            await echo_round_trip(operator, "alice", "plain")


async def test_the_operators_claude_login_is_bound_into_the_sandbox_and_no_key_leaks_in(
    short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    claude_dir = short_tmpdir / "claude"
    claude_dir.mkdir()
    (claude_dir / ".credentials.json").write_text('{"token": "dummy"}')
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-SECRET")
    # Exit 7 only if the login is at CLAUDE_CONFIG_DIR, writable, and the daemon's API key stayed out.
    probe = (
        'test "$CLAUDE_CONFIG_DIR" = /run/claude && test -f /run/claude/.credentials.json '
        '&& test -z "$ANTHROPIC_API_KEY" && touch /run/claude/seen-from-inside && exit 7; exit 1'
    )
    config = hive_config(short_tmpdir, sandbox="bwrap", agent_command=("sh", "-c", probe), claude_config_dir=claude_dir)
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        assert await agent_exit_code(daemon, "alice") == 7
    assert (claude_dir / "seen-from-inside").exists()
    for path in config.state_dir.rglob("*"):
        if path.is_file():
            assert b"sk-test-SECRET" not in path.read_bytes(), path


async def test_an_agent_process_an_earlier_daemon_left_behind_is_killed_before_a_new_one_starts(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
    # As if a daemon had died in the instant before it could tie alice to itself: alice lives on.
    work_dir = config.agent_state_dir("alice") / "work"
    leftover = await anyio.open_process(["sleep", "infinity"], cwd=work_dir, start_new_session=True)
    ref = ProcessRef.of(leftover.pid)
    assert ref is not None
    SandboxRecord((ref,), ()).save(config.agent_state_dir("alice") / RECORD_NAME)
    with anyio.fail_after(10):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            assert await leftover.wait() == -9
            [alice] = await operator.list_agents()
            assert alice.state == AgentState.RUNNING
            assert alice.pid != leftover.pid
    await leftover.aclose()


async def test_a_state_dir_inside_a_dir_bound_back_for_the_agent_stays_hidden_and_the_agent_starts(
    short_tmpdir: Path,
) -> None:
    # As in the demo: the state dir lives inside a checkout that the sandbox binds back read-only
    # (here, the dir of the agent's own command, under the masked /tmp).
    tools = short_tmpdir / "tools"
    tools.mkdir()
    state_dir = tools / "state"
    probe = tools / "probe"
    probe.write_text('#!/bin/sh\n[ -e "$1/broker.sqlite" ] && exit 3\n[ -x "$0" ] || exit 4\nexit 7\n')
    probe.chmod(0o755)
    config = hive_config(short_tmpdir, sandbox="bwrap", state_dir=state_dir, agent_command=(str(probe), str(state_dir)))
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        assert await agent_exit_code(daemon, "alice") == 7
