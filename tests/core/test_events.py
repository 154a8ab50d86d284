"""Each agent's turn event log: reported over the agent's socket, read and followed by the operator."""

from pathlib import Path
from typing import Any

import anyio
import pytest

from hyperhive_core.broker.events import MAX_EVENT_BYTES
from hyperhive_core.client import ToolCallError, open_hive_client
from hyperhive_core.daemon import running_daemon
from tests.helpers import IDLE_AGENT, hive_config

INIT: dict[str, Any] = {"type": "system", "subtype": "init", "session_id": "s-1", "mcp_servers": []}
TOOL_USE: dict[str, Any] = {
    "type": "assistant",
    "message": {"content": [{"type": "tool_use", "id": "t1", "name": "mcp__hive__send", "input": {"to": "operator"}}]},
}
RESULT: dict[str, Any] = {"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1200}


async def test_reported_events_are_read_back_in_order_and_only_for_that_agent(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.spawn("bob")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            assert await alice.report_events([INIT, TOOL_USE, RESULT]) == 3
        page = await operator.agent_logs("alice")
        assert [e.data for e in page.events] == [INIT, TOOL_USE, RESULT]
        assert [e.type for e in page.events] == ["system", "assistant", "result"]
        assert page.last_id == page.events[-1].id
        assert (await operator.agent_logs("bob")).events == []
        newest = await operator.agent_logs("alice", limit=1)
        assert [e.data for e in newest.events] == [RESULT]
        after = await operator.agent_logs("alice", after=page.events[0].id)
        assert [e.data for e in after.events] == [TOOL_USE, RESULT]


async def test_a_follower_wakes_when_an_event_arrives(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        got: list[dict[str, Any]] = []
        following = anyio.Event()

        async def follow() -> None:
            following.set()
            page = await operator.agent_logs("alice", after=0, wait_s=60)
            got.extend(e.data for e in page.events)

        # Far below the follower's own 60 s wait: only the wake-up can end it in time.
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg, open_hive_client(config.agent_socket("alice")) as alice:
                tg.start_soon(follow)
                await following.wait()
                await alice.report_events([RESULT])
        assert got == [RESULT]


async def test_an_oversized_event_is_kept_truncated_and_logs_of_a_stranger_are_refused(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        huge = {"type": "user", "message": {"content": "x" * (MAX_EVENT_BYTES * 2)}}
        async with open_hive_client(config.agent_socket("alice")) as alice:
            await alice.report_events([huge])
        [event] = (await operator.agent_logs("alice")).events
        assert event.data["truncated"] is True
        assert event.data["type"] == "user"
        with pytest.raises(ToolCallError) as caught:
            await operator.agent_logs("ghost")
        assert caught.value.reason == "unknown agent 'ghost'; known: alice"
