"""The stdio bridge, driven by the SDK's own stdio client and by raw JSON-RPC lines."""

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.abc
import mcp_types
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.agent._process import REPO_ROOT, LineReader, running_agent
from tests.agent._server import FakeHive, serve_unix

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
INITIALIZE_RESULT: dict[str, object] = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {}},
    "serverInfo": {"name": "hand-made", "version": "0"},
}


def line(message: Mapping[str, object]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def call(request_id: int, tool: str, arguments: Mapping[str, object] | None = None) -> dict[str, object]:
    params = {"name": tool, "arguments": dict(arguments or {})}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def test_an_sdk_client_lists_and_calls_tools_through_the_bridge(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "hyperhive_agent", "mcp", "--socket", str(sock)], cwd=REPO_ROOT
    )
    async with FakeHive("alice") as hive, serve_unix(hive.server, sock):
        with anyio.fail_after(5):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                assert {"send", "recv", "whoami"} <= {tool.name for tool in tools.tools}

                me = await session.call_tool("whoami", {})
                assert not me.is_error
                assert me.structured_content == {"result": "alice"}

                refused = await session.call_tool("send", {"to": "ghost", "body": "boo"})
                assert refused.is_error
                text = refused.content[0]
                assert isinstance(text, mcp_types.TextContent)
                assert "ghost" in text.text


async def test_the_bridge_exits_0_when_stdin_closes(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive("alice") as hive,
        serve_unix(hive.server, sock),
        running_agent("mcp", "--socket", str(sock)) as bridge,
    ):
        assert bridge.stdin is not None
        stdout = LineReader(bridge.stdout)
        with anyio.fail_after(5):
            await bridge.stdin.send(line(INITIALIZE))
            assert json.loads(await stdout.line())["id"] == 1
            await bridge.stdin.aclose()
            assert await stdout.rest() == ""
            assert await bridge.wait() == 0


async def test_the_bridge_relays_answers_the_server_sends_after_stdin_closed(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "raw.sock"
    received = b""

    async def answer_after_eof(conn: anyio.abc.SocketStream) -> None:
        # a server that answers only once its input has ended proves the bridge half-closes and drains
        nonlocal received
        async with conn:
            try:
                while True:
                    received += await conn.receive()
            except anyio.EndOfStream:
                pass
            await conn.send(b'{"jsonrpc":"2.0","id":7,"result":{}}\n')

    async with await anyio.create_unix_listener(sock) as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, answer_after_eof)
        async with running_agent("mcp", "--socket", str(sock)) as bridge:
            assert bridge.stdin is not None
            with anyio.fail_after(5):
                await bridge.stdin.send(b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n')
                await bridge.stdin.aclose()
                assert json.loads(await LineReader(bridge.stdout).rest()) == {"jsonrpc": "2.0", "id": 7, "result": {}}
                assert await bridge.wait() == 0
        tg.cancel_scope.cancel()
    assert received == b'{"jsonrpc":"2.0","id":7,"method":"ping"}\n'


async def test_with_reconnecting_off_the_bridge_exits_0_when_the_server_closes(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive("alice") as hive,
        serve_unix(hive.server, sock) as server,
        running_agent("mcp", "--socket", str(sock), "--reconnect-timeout", "0") as bridge,
    ):
        with anyio.fail_after(5):
            await server.wait_connected(1)
            server.drop_connections()
            assert await bridge.wait() == 0
        assert await LineReader(bridge.stderr).rest() == ""


async def test_the_bridge_replays_initialize_to_a_server_restarted_on_the_same_path(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with FakeHive("alice") as hive, running_agent("mcp", "--socket", str(sock)) as bridge:
        assert bridge.stdin is not None
        stdout = LineReader(bridge.stdout)
        async with serve_unix(hive.server, sock):
            with anyio.fail_after(5):
                await bridge.stdin.send(line(INITIALIZE) + line(INITIALIZED))
                assert json.loads(await stdout.line())["id"] == 1
                await bridge.stdin.send(line(call(2, "whoami")))
                assert json.loads(await stdout.line())["result"]["structuredContent"] == {"result": "alice"}
        # the server is gone, listener and all: the bridge retries until one listens again
        async with serve_unix(hive.server, sock) as server:
            with anyio.fail_after(5):
                # accepted means the bridge is replaying, so the next line waits for the replay
                await server.wait_connected(1)
                await bridge.stdin.send(line(call(3, "whoami")))
                # a server that was never sent initialize refuses tools/call: this answer proves the replay
                answer = json.loads(await stdout.line())
                assert (answer["id"], answer["result"]["structuredContent"]) == (3, {"result": "alice"})
                await bridge.stdin.aclose()
                # the replayed initialize's own answer was swallowed: nothing else reached stdout
                assert await stdout.rest() == ""
                assert await bridge.wait() == 0
        assert "back after" in await LineReader(bridge.stderr).rest()


async def test_a_read_in_flight_when_the_server_goes_away_is_sent_again_and_answered(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    async with (
        FakeHive("alice") as hive,
        serve_unix(hive.server, sock) as server,
        running_agent("mcp", "--socket", str(sock)) as bridge,
    ):
        assert bridge.stdin is not None
        stdout = LineReader(bridge.stdout)
        with anyio.fail_after(5):
            await bridge.stdin.send(line(INITIALIZE) + line(INITIALIZED))
            assert json.loads(await stdout.line())["id"] == 1
            await bridge.stdin.send(line(call(2, "recv", {"timeout_s": 30})))
            await hive.recv_waiting.wait()
            hive.recv_waiting = anyio.Event()
            server.drop_connections()
            # the bridge reconnects and sends the recv again: the new session waits in it
            await hive.recv_waiting.wait()
            assert server.accepted == 2
            hive.put("bob", "hello again")
            answer = json.loads(await stdout.line())
            assert answer["id"] == 2
            assert [m["body"] for m in answer["result"]["structuredContent"]["messages"]] == ["hello again"]


async def test_a_call_in_flight_that_is_not_safe_to_repeat_gets_an_error_and_the_next_call_works(
    short_tmpdir: Path,
) -> None:
    # A peer speaking the wire by hand: it takes report_events and hangs up without answering.
    sock = short_tmpdir / "mcp.sock"
    listener = await anyio.create_unix_listener(sock)
    async with listener, running_agent("mcp", "--socket", str(sock)) as bridge:
        assert bridge.stdin is not None
        stdout = LineReader(bridge.stdout)
        with anyio.fail_after(5):
            first = await listener.accept()
            peer = LineReader(first)
            await bridge.stdin.send(line(INITIALIZE) + line(INITIALIZED))
            assert json.loads(await peer.line())["method"] == "initialize"
            await first.send(line({"jsonrpc": "2.0", "id": 1, "result": INITIALIZE_RESULT}))
            assert json.loads(await stdout.line())["id"] == 1
            assert json.loads(await peer.line())["method"] == "notifications/initialized"
            await bridge.stdin.send(line(call(2, "report_events", {"events": [{"type": "x"}]})))
            assert json.loads(await peer.line())["params"]["name"] == "report_events"
            await first.aclose()
            failed = json.loads(await stdout.line())
            assert (failed["id"], failed["error"]["code"]) == (2, -32000)
            assert "call again" in failed["error"]["message"]
            # the bridge is back on a new connection: it replays initialize, and nothing else is resent
            second = await listener.accept()
            peer = LineReader(second)
            replay = json.loads(await peer.line())
            assert replay["method"] == "initialize"
            await second.send(line({"jsonrpc": "2.0", "id": replay["id"], "result": INITIALIZE_RESULT}))
            assert json.loads(await peer.line())["method"] == "notifications/initialized"
            await bridge.stdin.send(line(call(3, "whoami")))
            assert json.loads(await peer.line())["id"] == 3
            await second.aclose()


async def test_the_bridge_gives_up_reconnecting_after_its_timeout_with_one_line(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "mcp.sock"
    listener = await anyio.create_unix_listener(sock)
    async with running_agent("mcp", "--socket", str(sock), "--reconnect-timeout", "0.5") as bridge:
        with anyio.fail_after(5):
            conn = await listener.accept()
            # the listener goes first, so the bridge's EOF finds nothing to reconnect to
            await listener.aclose()
            await conn.aclose()
            stderr = await LineReader(bridge.stderr).rest()
            assert await bridge.wait() == 1
    assert len(stderr.splitlines()) == 1
    assert str(sock) in stderr
    assert "did not come back within 0.5 s" in stderr


async def test_a_missing_socket_fails_with_one_line_naming_it(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "absent.sock"
    async with running_agent("mcp", "--socket", str(sock), "--reconnect-timeout", "0") as bridge:
        with anyio.fail_after(5):
            stderr = await LineReader(bridge.stderr).rest()
            assert await bridge.wait() == 1
    assert len(stderr.splitlines()) == 1
    assert str(sock) in stderr


async def test_a_socket_that_never_appears_fails_after_the_wait_with_one_line(short_tmpdir: Path) -> None:
    sock = short_tmpdir / "absent.sock"
    async with running_agent("mcp", "--socket", str(sock), "--reconnect-timeout", "0.3") as bridge:
        with anyio.fail_after(5):
            stderr = await LineReader(bridge.stderr).rest()
            assert await bridge.wait() == 1
    [error] = [line for line in stderr.splitlines() if "ERROR" in line]
    assert str(sock) in error
    assert "no hive daemon came up within 0.3 s" in error
