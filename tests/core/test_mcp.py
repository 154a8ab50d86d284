"""The per-agent MCP servers, reached the way claude reaches them: an SDK client through hive-agent mcp."""

import stat
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from hyperhive_core.client import HiveClient, ToolCallError, open_hive_client, open_session
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon, running_daemon
from tests.helpers import IDLE_AGENT, hive_config

AGENT_TOOLS = {"send", "recv", "ack", "inbox", "whoami", "peers", "report_events"}


@asynccontextmanager
async def bridged_session(socket: Path) -> AsyncGenerator[ClientSession]:
    """An SDK client session through the real `hive-agent mcp` bridge process, as claude would run it."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hyperhive_agent", "mcp", "--socket", str(socket)]
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def hive_with(config: HiveConfig, *names: str) -> AsyncGenerator[tuple[Daemon, HiveClient]]:
    async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
        for name in names:
            await operator.spawn(name)
        yield daemon, operator


def text_of(result: mcp_types.CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


def structured(result: mcp_types.CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def test_an_sdk_session_through_the_bridge_lists_and_calls_every_agent_tool(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with hive_with(config, "alice", "bob") as (_, operator):
            question = await operator.send("alice", "what is 6 x 7?")
            async with bridged_session(config.agent_socket("alice")) as alice:
                tools = (await alice.list_tools()).tools
                assert {t.name for t in tools} == AGENT_TOOLS

                assert structured(await alice.call_tool("whoami", {})) == {"name": "alice", "role": "agent"}
                peers = structured(await alice.call_tool("peers", {}))["peers"]
                assert [(p["name"], p["state"]) for p in peers] == [("operator", "operator"), ("bob", "running")]

                inbox = structured(await alice.call_tool("inbox", {}))
                assert (inbox["queued"], [m["body"] for m in inbox["messages"]]) == (1, ["what is 6 x 7?"])

                got = structured(await alice.call_tool("recv", {"timeout_s": 5}))
                assert [(m["id"], m["sender"], m["body"]) for m in got["messages"]] == [
                    (question.id, "operator", "what is 6 x 7?")
                ]
                receipt = structured(
                    await alice.call_tool("send", {"to": "operator", "body": "42", "reply_to": question.id})
                )
                assert receipt["recipient"] == "operator"

            answer = (await operator.recv(timeout_s=5)).messages
            assert [(m.sender, m.body, m.reply_to) for m in answer] == [("alice", "42", question.id)]


async def test_every_tool_argument_has_a_description_a_model_can_read(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with hive_with(config, "alice"), open_session(config.agent_socket("alice")) as alice:
        for tool in (await alice.list_tools()).tools:
            assert tool.description, tool.name
            assert tool.output_schema is not None, tool.name
            for name, schema in tool.input_schema.get("properties", {}).items():
                assert schema.get("description"), f"{tool.name}.{name}"


async def test_an_agent_cannot_read_another_agents_messages(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with anyio.fail_after(30):
        async with hive_with(config, "alice", "bob") as (_, operator):
            await operator.send("alice", "secret for alice")
            async with open_session(config.agent_socket("bob")) as bob:
                # No agent tool takes a name to read from, and extra arguments change nothing.
                inbox = structured(await bob.call_tool("inbox", {"agent": "alice"}))
                assert (inbox["agent"], inbox["queued"], inbox["messages"]) == ("bob", 0, [])
                got = structured(await bob.call_tool("recv", {"timeout_s": 0.2}))
                assert got["messages"] == []
                assert structured(await bob.call_tool("whoami", {}))["name"] == "bob"
            view = await operator.inbox("alice")
            assert [m.body for m in view.messages] == ["secret for alice"]


async def test_an_agent_socket_offers_no_operator_tools(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with hive_with(config, "alice") as (_, operator), open_session(config.agent_socket("alice")) as alice:
        for tool in ("spawn", "kill", "list_agents", "shutdown"):
            result = await alice.call_tool(tool, {"name": "mallory"})
            assert result.is_error
            assert f"alice may not call {tool}: only the manager (hm1nd) and the operator" in text_of(result)
        assert "spawn" not in {t.name for t in (await alice.list_tools()).tools}
        assert [a.name for a in await operator.list_agents()] == ["alice"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"to": "carol", "body": "hi"}, "unknown agent 'carol'; known: alice, bob, operator"),
        ({"to": "bob", "body": "x" * 100}, "message body is 100 bytes, over the limit of 64 bytes"),
        ({"to": "bob", "body": "hi", "reply_to": 12345}, "no message 12345 was sent to or by you"),
        ({"to": "bob"}, "body"),
    ],
    ids=["unknown-recipient", "oversized-body", "unknown-reply-to", "missing-body"],
)
async def test_a_refused_call_is_a_tool_error_that_says_what_to_do(
    short_tmpdir: Path, arguments: dict[str, Any], expected: str
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, max_body_bytes=64)
    async with hive_with(config, "alice", "bob"), open_session(config.agent_socket("alice")) as alice:
        result = await alice.call_tool("send", arguments)
        assert result.is_error
        assert expected in text_of(result)
        assert "Traceback" not in text_of(result)
        # Nothing was queued by a refused call.
        assert structured(await alice.call_tool("peers", {}))
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        assert (await operator.inbox("bob")).queued == 0


async def test_the_operator_socket_is_private_to_its_owner(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with hive_with(config, "alice"):
        assert stat.S_IMODE(config.host_socket.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.agent_socket("alice").stat().st_mode) == 0o600
        assert stat.S_IMODE(config.run_dir.stat().st_mode) == 0o700


async def test_the_operator_sees_tool_errors_as_typed_exceptions(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with hive_with(config, "alice") as (_, operator):
        with pytest.raises(ToolCallError) as caught:
            await operator.status("ghost")
        assert caught.value.tool == "agent_status"
        assert caught.value.reason == "unknown agent 'ghost'; known: alice"
