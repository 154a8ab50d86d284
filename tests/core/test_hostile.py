"""Hostile bytes on an agent's socket: the connection gets an error or is closed, the hive carries on.

One daemon serves the whole module (alice and bob, idle); every test attacks alice's socket with a
raw unix connection, as a compromised agent would, then checks that fresh SDK sessions on alice's
and bob's sockets still work and that nothing was stored.
"""

import json
import shutil
import socket
import tempfile
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import mcp_types
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver import MCPServer

from hyperhive_core.client import HiveClient, open_hive_client, open_session
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon, running_daemon
from hyperhive_core.mcp.sockets import MAX_CONNECTIONS_PER_SOCKET
from hyperhive_core.mcp.transport import MAX_LINE_BYTES, open_message_streams
from hyperhive_core.mcp.unix import UnixStream
from tests.core._rawrpc import INITIALIZE, JsonObject, RawConnection, open_raw, rss_bytes
from tests.helpers import IDLE_AGENT, hive_config

PARSE_ERROR = mcp_types.PARSE_ERROR
INVALID_REQUEST = mcp_types.INVALID_REQUEST
# Deep enough to overflow any recursive JSON parser; pydantic's stops at its own limit.
DEEP = 100_000
# How long a raw client waits to conclude that the daemon answers nothing / reads nothing more.
# Only for proving an absence; every positive wait is bounded by fail_after instead.
QUIET_S = 1.0


@dataclass(frozen=True, slots=True)
class RunningHive:
    daemon: Daemon
    config: HiveConfig
    operator: HiveClient

    def socket(self, name: str) -> Path:
        return self.config.agent_socket(name)

    async def stored(self) -> int:
        """Every message the broker holds."""
        return await anyio.to_thread.run_sync(self.daemon.hive.broker.store.message_count)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def hive() -> AsyncGenerator[RunningHive]:
    root = Path(tempfile.mkdtemp(prefix="hh-", dir="/tmp"))
    # The runaway guard would refuse most generated sends; these tests are about the transport and tools.
    config = hive_config(root, agent_command=IDLE_AGENT, rate_limit=1_000_000, max_exchanges=1_000_000)
    try:
        async with running_daemon(config) as daemon, open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn("bob")
            yield RunningHive(daemon, config, operator)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def assert_hive_serves(hive: RunningHive) -> None:
    """Fresh SDK sessions on the attacked socket and on another agent's both work."""
    with anyio.fail_after(10):
        for name in ("alice", "bob"):
            async with open_session(hive.socket(name)) as session:
                result = await session.call_tool("whoami", {})
                assert result.structured_content == {"name": name, "role": "agent"}
        assert [a.name for a in await hive.operator.list_agents()] == ["alice", "bob"]


async def answers_ping(raw: RawConnection) -> bool:
    reply = await raw.request("ping")
    return reply.get("result") == {}


HOSTILE_LINES = [
    pytest.param(b"hello world\n", PARSE_ERROR, None, id="garbage"),
    pytest.param(b'{"jsonrpc":"2.0","id":5,"method":"tools/ca\n', PARSE_ERROR, None, id="truncated-json"),
    pytest.param(b'{"jsonrpc":"2.0","id":5,"method":"ping\xff\xfe"}\n', PARSE_ERROR, None, id="invalid-utf8"),
    pytest.param(b"\x00\x01\xc3\x28" * 256 + b"\n", PARSE_ERROR, None, id="binary"),
    pytest.param(b"[" * 2000 + b"]" * 2000 + b"\n", PARSE_ERROR, None, id="nested-2000-deep"),
    # Refused before parsing: no request holds 100,000 JSON values.
    pytest.param(b"[" * DEEP + b"]" * DEEP + b"\n", INVALID_REQUEST, None, id="nested-100000-deep"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"send","arguments":{"to":"bob","body":'
        + b'{"a":' * DEEP
        + b"1"
        + b"}" * DEEP
        + b"}}}\n",
        INVALID_REQUEST,
        None,
        id="nested-arguments",
    ),
    pytest.param(b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]\n', INVALID_REQUEST, None, id="batch-array"),
    pytest.param(b"[]\n", INVALID_REQUEST, None, id="empty-batch"),
    pytest.param(b'"just a string"\n', INVALID_REQUEST, None, id="bare-string"),
    pytest.param(b'{"jsonrpc":"2.0","id":null,"method":"ping"}\n', INVALID_REQUEST, None, id="null-id"),
    pytest.param(b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}\n', INVALID_REQUEST, None, id="float-id"),
    pytest.param(b'{"jsonrpc":"2.0","id":true,"method":"ping"}\n', INVALID_REQUEST, None, id="bool-id"),
    pytest.param(b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}\n', INVALID_REQUEST, None, id="object-id"),
    pytest.param(
        b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"ping"}\n', PARSE_ERROR, None, id="5000-digit-id"
    ),
    pytest.param(b'{"jsonrpc":"1.0","id":5,"method":"ping"}\n', INVALID_REQUEST, 5, id="wrong-version"),
    pytest.param(b'{"id":"x","method":"ping"}\n', INVALID_REQUEST, "x", id="no-version"),
    pytest.param(b'{"jsonrpc":"2.0","id":5,"method":7}\n', INVALID_REQUEST, 5, id="method-not-a-string"),
]


@pytest.mark.parametrize(("line", "code", "request_id"), HOSTILE_LINES)
async def test_a_malformed_line_gets_a_json_rpc_error_and_the_connection_still_works(
    hive: RunningHive, line: bytes, code: int, request_id: object
) -> None:
    stored = await hive.stored()
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()
            await raw.send_bytes(line)
            reply = await raw.read_message()
            assert reply is not None
            assert reply["error"]["code"] == code, reply
            assert reply["id"] == request_id, reply
            assert "Traceback" not in json.dumps(reply)
            assert len(json.dumps(reply)) < 1000, "the error does not echo the input back"
            assert await answers_ping(raw)
    await assert_hive_serves(hive)
    assert await hive.stored() == stored


async def test_a_hundred_malformed_lines_in_a_row_get_a_hundred_errors(hive: RunningHive) -> None:
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()
            await raw.send_bytes(b"}{\n" * 100)
            replies = [await raw.read_message() for _ in range(100)]
            assert all(r is not None and r["error"]["code"] == PARSE_ERROR for r in replies)
            assert await answers_ping(raw)
    await assert_hive_serves(hive)


@pytest.mark.parametrize(
    "request_id",
    [123456789012345678901234567890, -(2**63), "", "ü" * 1000],
    ids=["huge-int", "min-int", "empty", "long"],
)
async def test_unusual_but_valid_request_ids_are_answered_with_the_same_id(
    hive: RunningHive, request_id: object
) -> None:
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()
            reply = await raw.request("tools/call", {"name": "whoami", "arguments": {}}, request_id=request_id)
            assert reply["id"] == request_id
            assert reply["result"]["structuredContent"] == {"name": "alice", "role": "agent"}


async def test_a_line_over_the_size_limit_gets_an_error_and_the_connection_is_closed(hive: RunningHive) -> None:
    stored = await hive.stored()
    # A well-formed send whose line is one byte over the limit: refused, never stored.
    head = b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"send","arguments":{"to":"bob","body":"'
    tail = b'"}}}\n'
    line = head + b"x" * (MAX_LINE_BYTES + 1 - len(head) - len(tail) + 1) + tail
    assert len(line.rstrip(b"\n")) == MAX_LINE_BYTES + 1
    with anyio.fail_after(20):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()

            async def push() -> None:
                # The daemon may hang up before it has read everything.
                try:
                    await raw.send_bytes(line)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass

            replies: list[JsonObject] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(push)
                replies += await raw.read_until_closed()
            assert [r["error"]["code"] for r in replies] == [INVALID_REQUEST]
            assert str(MAX_LINE_BYTES) in replies[0]["error"]["message"]
    await assert_hive_serves(hive)
    assert await hive.stored() == stored


async def test_a_request_before_initialize_gets_an_error_and_stores_nothing(hive: RunningHive) -> None:
    stored = await hive.stored()
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            reply = await raw.call_tool("send", {"to": "bob", "body": "sneaky"})
            assert "error" in reply, reply
            await raw.initialize()
            assert await answers_ping(raw)
    await assert_hive_serves(hive)
    assert await hive.stored() == stored


async def test_a_second_initialize_changes_no_identity(hive: RunningHive) -> None:
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()
            again = await raw.request("initialize", {**INITIALIZE, "clientInfo": {"name": "bob", "version": "0"}})
            assert "result" in again or "error" in again
            reply = await raw.call_tool("whoami", {})
            assert reply["result"]["structuredContent"] == {"name": "alice", "role": "agent"}
    await assert_hive_serves(hive)


async def test_a_client_that_connects_and_sends_nothing_blocks_no_one(hive: RunningHive) -> None:
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as idle:
            await assert_hive_serves(hive)
            # The idle connection is left open, not answered: nothing to answer.
            with anyio.move_on_after(QUIET_S):
                await idle.read_message()
                pytest.fail("the daemon wrote to a client that asked nothing")


async def test_connections_past_the_cap_wait_until_one_closes_and_other_sockets_carry_on(hive: RunningHive) -> None:
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            held = [
                await stack.enter_async_context(open_raw(hive.socket("alice")))
                for _ in range(MAX_CONNECTIONS_PER_SOCKET)
            ]
            for raw in held:
                await raw.initialize()
            async with open_raw(hive.socket("alice")) as extra:
                await extra.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
                # Over the cap, the connection waits in the kernel's backlog: not served, not closed.
                with anyio.move_on_after(QUIET_S) as quiet:
                    await extra.read_message()
                assert quiet.cancelled_caught, "a connection over the cap was served"
                async with open_session(hive.socket("bob")) as bob:
                    assert (await bob.call_tool("whoami", {})).structured_content == {"name": "bob", "role": "agent"}
                assert [a.name for a in await hive.operator.list_agents()] == ["alice", "bob"]
                # One held connection closes: the waiting one is served.
                await held.pop().stream.aclose()
                reply = await extra.read_message()
                assert reply is not None
                assert reply["id"] == 1
                assert "result" in reply
    await assert_hive_serves(hive)


@asynccontextmanager
async def never_reading_flood(path: Path, total: int = 5000) -> AsyncGenerator[tuple[int, int]]:
    """Connect, then write `total` padded requests without ever reading; yields (bytes sent, bytes meant).

    Writing stops once the socket has stayed full for QUIET_S: the daemon stopped reading.
    """
    pad = "x" * 1000
    lines = [json.dumps({"jsonrpc": "2.0", "id": -1, "method": "initialize", "params": INITIALIZE}).encode() + b"\n"]
    lines.append(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n")
    lines += [
        json.dumps(
            {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "peers", "arguments": {"pad": pad}}}
        ).encode()
        + b"\n"
        for i in range(total)
    ]
    data = memoryview(b"".join(lines))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    sent = 0
    try:
        sock.connect(str(path))
        with anyio.fail_after(30):
            while sent < len(data):
                try:
                    sent += sock.send(data[sent:])
                    continue
                except BlockingIOError:
                    pass
                # The daemon reads on only if it has room; once it stops, the socket stays full.
                with anyio.move_on_after(QUIET_S) as stalled:
                    await anyio.wait_writable(sock)
                if stalled.cancelled_caught:
                    break
        yield sent, len(data)
    finally:
        anyio.notify_closing(sock)
        sock.close()


async def test_a_client_that_floods_requests_and_never_reads_is_throttled_at_bounded_memory(hive: RunningHive) -> None:
    before = rss_bytes()
    async with never_reading_flood(hive.socket("alice")) as (sent, meant):
        assert sent < meant, "the daemon read every request of a client that reads no answer"
        grown = rss_bytes() - before
        assert grown < 48 * 1024 * 1024, f"the daemon grew by {grown / 2**20:.0f} MiB"
        # The stuck connection holds up no one, not even alice's own next session.
        await assert_hive_serves(hive)
    await assert_hive_serves(hive)


async def test_flooding_connections_of_one_agent_use_up_only_that_agents_share(hive: RunningHive) -> None:
    with anyio.fail_after(30):
        async with AsyncExitStack() as floods:
            for _ in range(2):
                await floods.enter_async_context(never_reading_flood(hive.socket("alice")))
            # What the floods wrote is in the kernel's buffers; the daemon takes from them until
            # alice's share is full. Waited for on the daemon's own count, not on a quiet second
            # (a loaded machine can be quiet for a second with slots still free).
            share = hive.daemon.sockets.budget_of(hive.socket("alice"))
            assert share is not None
            await share.in_flight.wait_full()
            # Two stuck connections hold every request slot alice has: her next session waits...
            async with open_raw(hive.socket("alice")) as waiting:
                await waiting.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE})
                with anyio.move_on_after(QUIET_S) as quiet:
                    await waiting.read_message()
                assert quiet.cancelled_caught, "alice was served past her share"
                # ...while bob and the operator are served at once.
                async with open_session(hive.socket("bob")) as bob:
                    assert (await bob.call_tool("whoami", {})).structured_content == {"name": "bob", "role": "agent"}
                assert [a.name for a in await hive.operator.list_agents()] == ["alice", "bob"]
                # The stuck connections hang up: their slots come back and the waiting one is served.
                await floods.aclose()
                reply = await waiting.read_message()
                assert reply is not None
                assert (reply["id"], "result" in reply) == (1, True)
    await assert_hive_serves(hive)


async def test_a_connection_whose_reader_stalls_is_closed_after_the_stall_limit() -> None:
    """The transport's write-stall bound, through its `write_stall_s` seam, with a real SDK server session."""
    server: MCPServer[Any] = MCPServer(name="stall")

    @server.tool()
    async def big() -> str:
        """A large answer."""
        return "y" * 100_000

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setblocking(False)
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    try:
        theirs.send(
            json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE}).encode() + b"\n"
        )
        theirs.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        for i in range(1, 20):
            theirs.send(
                json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "big"}}).encode()
                + b"\n"
            )
        with anyio.fail_after(10):
            stream = UnixStream(ours)
            async with stream, open_message_streams(stream, write_stall_s=0.2) as (read, write):
                # Returns only because the transport closed the connection: the peer never reads.
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
    finally:
        theirs.close()


# --- property-based: arbitrary JSON arguments through a real SDK session -------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ARGUMENT_NAMES = ["to", "body", "reply_to", "timeout_s", "max", "limit", "events", "agent", "sender", "name"]
arguments = st.dictionaries(
    st.sampled_from(ARGUMENT_NAMES) | st.text(max_size=10),
    st.sampled_from(["bob", "operator", "alice", "carol", "hm1nd", "", "BOB"]) | json_values,
    max_size=5,
)
TOOLS = ["send", "recv", "inbox", "peers", "whoami", "report_events"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool=st.sampled_from(TOOLS), args=arguments)
async def test_any_json_arguments_get_a_result_or_a_clean_tool_error(
    hive: RunningHive, tool: str, args: dict[str, Any]
) -> None:
    if tool == "recv":
        # recv may wait up to its timeout for a first message: one is always there.
        await hive.operator.send("alice", "for recv")
    stored = await hive.stored()
    with anyio.fail_after(10):
        async with open_session(hive.socket("alice")) as alice:
            result = await alice.call_tool(tool, args)
        text = "\n".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))
        assert "Traceback" not in text
        if not result.is_error:
            assert result.structured_content is not None
        added = await hive.stored() - stored
        well_typed = isinstance(args.get("to"), str) and isinstance(args.get("body"), str)
        if tool == "send" and not result.is_error:
            assert well_typed
            assert added == 1
            recipient = args["to"]
            view = await hive.operator.inbox(recipient)
            receipt = result.structured_content
            assert receipt is not None
            newest = [m for m in view.messages if m.id == receipt["id"]]
            if newest:  # recipient alice may have taken it in a later recv; it is still stored
                assert (newest[0].sender, newest[0].body) == ("alice", args["body"])
        else:
            assert added == 0, f"{tool}({args}) stored a message: {text}"
    await assert_hive_serves_quickly(hive)


async def assert_hive_serves_quickly(hive: RunningHive) -> None:
    with anyio.fail_after(10):
        assert [a.name for a in await hive.operator.list_agents()] == ["alice", "bob"]


def tool_name(params: object) -> object:
    return cast(JsonObject, params).get("name") if isinstance(params, dict) else None


raw_params = (
    st.fixed_dictionaries({"name": st.sampled_from(TOOLS) | json_values, "arguments": json_values}) | json_values
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=raw_params, request_id=st.integers() | st.text(max_size=20))
async def test_any_json_rpc_tools_call_gets_an_answer_with_its_id(
    hive: RunningHive, params: object, request_id: int | str
) -> None:
    stored = await hive.stored()
    with anyio.fail_after(10):
        async with open_raw(hive.socket("alice")) as raw:
            await raw.initialize()
            name = tool_name(params)
            if name == "recv":
                await hive.operator.send("alice", "for recv")
                stored += 1
            reply: JsonObject = await raw.request("tools/call", params, request_id=request_id)
            assert ("result" in reply) != ("error" in reply), reply
            assert "Traceback" not in json.dumps(reply)
            assert await answers_ping(raw)
        if name != "send" or "error" in reply or reply["result"].get("isError"):
            assert await hive.stored() == stored
