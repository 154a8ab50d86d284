"""Test MCP servers on unix sockets: the SDK's `MCPServer` served the way the daemon serves agents.

`serve_unix` listens on a socket and runs one SDK session per connection; `FakeHive` is a tiny
in-memory hive (`recv`/`send`/`whoami`/`peers`/`report_events`) so the agent's turn loop can be
driven end to end.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

from hyperhive_core.mcp.transport import open_message_streams


@dataclass
class UnixServer:
    """A running listener: counts connections and can drop them all, as a daemon restart would."""

    path: Path
    accepted: int = 0
    _scopes: list[anyio.CancelScope] = field(default_factory=list[anyio.CancelScope])
    _connected: anyio.Event = field(default_factory=anyio.Event)

    def drop_connections(self) -> None:
        """Close every open connection from the server side."""
        for scope in self._scopes:
            scope.cancel()

    async def wait_connected(self, count: int) -> None:
        """Wait until `count` connections have been accepted in total."""
        while self.accepted < count:
            await self._connected.wait()

    def _note_connection(self, scope: anyio.CancelScope) -> None:
        self._scopes.append(scope)
        self.accepted += 1
        self._connected.set()
        self._connected = anyio.Event()


@asynccontextmanager
async def serve_unix(server: MCPServer, path: Path) -> AsyncGenerator[UnixServer]:
    """Serve `server` on a unix socket at `path` until the context exits."""
    listener = await anyio.create_unix_listener(path)
    state = UnixServer(path)

    async def handle(conn: anyio.abc.SocketStream) -> None:
        with anyio.CancelScope() as scope:
            state._note_connection(scope)
            async with conn, open_message_streams(conn) as (read, write):
                low = server._lowlevel_server
                await low.run(read, write, low.create_initialization_options())

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield state
        finally:
            tg.cancel_scope.cancel()


class WireMessage(BaseModel):
    """A message as the daemon's `recv` returns it."""

    id: int
    sender: str
    recipient: str
    body: str
    created_at: str
    reply_to: int | None = None
    state: str = "delivered"


class RecvResult(BaseModel):
    messages: list[WireMessage]
    remaining: int


class EventReceipt(BaseModel):
    stored: int


class SendResult(BaseModel):
    id: int
    recipient: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Sent:
    """One `send` call the agent made."""

    to: str
    body: str
    reply_to: int | None


class FakeHive:
    """One agent's view of a hive, in memory: the test puts messages in and watches what comes out.

    `send` to `"ghost"` fails with a tool error, like a send to an agent that does not exist.
    Reported turn events arrive on `events`, and each call's size is kept in `report_sizes`;
    more than 100 events in one call are refused, as the daemon does.
    Use it as an async context manager so its streams are closed.
    """

    MAX_EVENTS_PER_CALL = 100

    def __init__(self, agent: str = "alice") -> None:
        self.agent = agent
        self._next_id = 1
        self._inbox_in, self._inbox_out = anyio.create_memory_object_stream[WireMessage](100)
        self.sent_in: MemoryObjectSendStream[Sent]
        self.sent: MemoryObjectReceiveStream[Sent]
        self.sent_in, self.sent = anyio.create_memory_object_stream[Sent](100)
        self.events_in: MemoryObjectSendStream[dict[str, Any]]
        self.events: MemoryObjectReceiveStream[dict[str, Any]]
        self.events_in, self.events = anyio.create_memory_object_stream[dict[str, Any]](10_000)
        self.report_sizes: list[int] = []
        self.recv_waiting = anyio.Event()
        self.server = self._build()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for stream in (self._inbox_in, self._inbox_out, self.sent_in, self.sent, self.events_in, self.events):
            stream.close()

    def put(self, sender: str, body: str) -> int:
        """Queue a message for the agent and return its id."""
        msg = WireMessage(
            id=self._take_id(),
            sender=sender,
            recipient=self.agent,
            body=body,
            created_at="2025-01-01T00:00:00+00:00",
        )
        self._inbox_in.send_nowait(msg)
        return msg.id

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _build(self) -> MCPServer:
        server = MCPServer(name="hive")

        @server.tool()
        async def whoami() -> str:
            """Your agent name."""
            return self.agent

        @server.tool()
        async def recv(timeout_s: float = 30, max: int = 10) -> RecvResult:
            """Wait up to timeout_s for messages."""
            self.recv_waiting.set()
            messages: list[WireMessage] = []
            with anyio.move_on_after(timeout_s):
                messages.append(await self._inbox_out.receive())
            while messages and len(messages) < max:
                try:
                    messages.append(self._inbox_out.receive_nowait())
                except anyio.WouldBlock:
                    break
            return RecvResult(messages=messages, remaining=self._inbox_out.statistics().current_buffer_used)

        @server.tool()
        async def send(to: str, body: str, reply_to: int | None = None) -> SendResult:
            """Send a message."""
            if to == "ghost":
                raise ToolError(f"unknown agent {to!r}; known: operator")
            await self.sent_in.send(Sent(to=to, body=body, reply_to=reply_to))
            return SendResult(id=self._take_id(), recipient=to, created_at="2025-01-01T00:00:01+00:00")

        @server.tool()
        async def peers() -> list[str]:
            """Everyone you can send to."""
            return ["operator"]

        @server.tool()
        async def report_events(events: list[dict[str, Any]]) -> EventReceipt:
            """For the agent's turn loop: store turn events."""
            if len(events) > self.MAX_EVENTS_PER_CALL:
                raise ToolError(f"at most {self.MAX_EVENTS_PER_CALL} events per call, not {len(events)}")
            self.report_sizes.append(len(events))
            for event in events:
                await self.events_in.send(event)
            return EventReceipt(stored=len(events))

        return server
