"""The manager's socket: the agent tools plus the lifecycle toolset, whose changes are proposals."""

from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import ToolCallError, open_hive_client, open_session
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState
from tests.helpers import IDLE_AGENT, hive_config

MANAGER_TOOLS = {"send", "recv", "ack", "inbox", "whoami", "peers", "report_events"} | {
    "spawn",
    "kill",
    "rebuild",
    "propose",
    "proposals",
    "list_agents",
    "agent_status",
}


async def test_the_managers_spawn_and_kill_are_proposals_the_operator_approves(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            manager = await operator.spawn_manager(role="keep the hive small")
            assert (manager.name, manager.state, manager.role) == ("hm1nd", AgentState.RUNNING, "keep the hive small")
            async with open_session(config.agent_socket("hm1nd")) as session:
                assert {t.name for t in (await session.list_tools()).tools} == MANAGER_TOOLS
            async with open_hive_client(config.agent_socket("hm1nd")) as hm1nd:
                assert (await hm1nd.whoami()).role == "manager"
                spawning = await hm1nd.propose_spawn("worker", role="count words")
                assert [a.name for a in await hm1nd.list_agents()] == ["hm1nd"]
                await operator.approve(spawning.id)
                assert [a.name for a in await operator.list_agents()] == ["hm1nd", "worker"]
                assert (await hm1nd.status("worker")).role == "count words"
                await hm1nd.send("worker", "count these words")
                await hm1nd.send("operator", "spawned worker")
                killing = await hm1nd.propose_kill("worker")
                await operator.approve(killing.id)
                assert [a.name for a in await operator.list_agents()] == ["hm1nd"]
                assert not config.agent_socket("worker").exists()
                with pytest.raises(ToolCallError) as caught:
                    await hm1nd.kill("hm1nd")
                assert caught.value.reason == "hm1nd may not kill itself: only the operator can do that"
            got = [m.body for m in (await operator.recv(timeout_s=1)).messages]
            assert got == ["spawned worker"]


async def test_an_ordinary_agent_asking_to_spawn_is_told_who_can(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            with pytest.raises(ToolCallError) as caught:
                await alice.spawn("mallory")
        assert caught.value.reason == (
            "alice may not call spawn: only the manager (hm1nd) and the operator change or inspect the hive; "
            "send your request to hm1nd or to the operator"
        )
        assert [a.name for a in await operator.list_agents()] == ["alice"]


async def test_the_manager_is_a_reserved_name_and_comes_back_after_a_restart(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        with pytest.raises(ToolCallError) as caught:
            await operator.spawn("hm1nd")
        assert "reserved" in caught.value.reason
        await operator.spawn_manager()
        with pytest.raises(ToolCallError):
            await operator.spawn_manager()
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        [manager] = await operator.list_agents()
        assert (manager.name, manager.state) == ("hm1nd", AgentState.RUNNING)
        async with open_hive_client(config.agent_socket("hm1nd")) as hm1nd:
            assert (await hm1nd.whoami()).role == "manager"


async def test_a_daemon_configured_with_a_manager_starts_it_once(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT, start_manager=True)
    for _ in range(2):  # the second start finds hm1nd in the hive and starts no other
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            assert [(a.name, a.state) for a in await operator.list_agents()] == [("hm1nd", AgentState.RUNNING)]
