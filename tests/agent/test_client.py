"""The stdlib MCP client against a real SDK server on a unix socket, called from a worker thread."""

from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from hyperhive_agent.client import McpClient, connect
from hyperhive_agent.errors import ConnectionLostError, SocketUnavailableError, ToolCallError
from tests.agent._server import FakeHive, Sent, serve_unix


async def call(client: McpClient, tool: str, **arguments: object) -> dict[str, Any]:
    """Call a tool from a worker thread, as the blocking client is meant to be used."""
    return await anyio.to_thread.run_sync(lambda: client.call_tool(tool, arguments), abandon_on_cancel=True)


async def test_call_tool_returns_the_structured_content(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive("alice") as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            assert client.server_info["name"] == "hive"
            assert await call(client, "whoami") == {"result": "alice"}
            receipt = await call(client, "send", to="bob", body="hi")
            assert receipt["recipient"] == "bob"
            assert isinstance(receipt["id"], int)
            assert await hive.sent.receive() == Sent("bob", "hi", None)


async def test_a_tool_error_raises_tool_call_error_with_the_reason(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive() as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            with pytest.raises(ToolCallError) as caught:
                await call(client, "send", to="ghost", body="boo")
            assert caught.value.tool == "send"
            assert "ghost" in caught.value.text
            # the connection is still good after a refused call
            assert await call(client, "whoami") == {"result": "alice"}


async def test_a_server_going_away_mid_call_raises_connection_lost(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive() as hive, serve_unix(hive.server, sock) as server:
        with anyio.fail_after(5), await anyio.to_thread.run_sync(connect, sock) as client:
            outcome: list[ConnectionLostError] = []
            async with anyio.create_task_group() as tg:

                async def blocked_recv() -> None:
                    try:
                        await call(client, "recv", timeout_s=30)
                    except ConnectionLostError as exc:
                        outcome.append(exc)

                tg.start_soon(blocked_recv)
                await hive.recv_waiting.wait()
                server.drop_connections()
            assert len(outcome) == 1
            with pytest.raises(ConnectionLostError):
                await call(client, "whoami")


async def test_connecting_to_a_missing_socket_raises_socket_unavailable(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "absent.sock"
    with pytest.raises(SocketUnavailableError) as caught:
        await anyio.to_thread.run_sync(connect, sock)
    assert caught.value.socket == sock
