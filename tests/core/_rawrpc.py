"""A raw newline-delimited JSON-RPC client on a unix socket, for tests that write what an attacker would."""

import json
import os
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio

from hyperhive_core.mcp.unix import UnixStream, connect_unix

JsonObject = dict[str, Any]
PROTOCOL_VERSION = "2025-11-25"
INITIALIZE: JsonObject = {
    "protocolVersion": PROTOCOL_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "mallory", "version": "0"},
}


class RawConnection:
    """One connection: send any bytes, read whole JSON lines back, see when the daemon hangs up."""

    def __init__(self, stream: UnixStream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._next_id = 1000

    async def send_bytes(self, data: bytes) -> None:
        """Send bytes exactly as given: no framing, no encoding."""
        await self.stream.send(data)

    async def send(self, message: object) -> None:
        """Send one JSON value as one line."""
        await self.stream.send(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def read_message(self) -> JsonObject | None:
        """The next line the daemon wrote, parsed; None once the daemon closed the connection."""
        while (end := self._buffer.find(b"\n")) < 0:
            try:
                chunk = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return cast(JsonObject, json.loads(line))

    async def read_until_closed(self) -> list[JsonObject]:
        """Every message written before the daemon hung up (waits for the hang-up)."""
        messages: list[JsonObject] = []
        while (message := await self.read_message()) is not None:
            messages.append(message)
        return messages

    async def request(self, method: str, params: object = None, *, request_id: object = None) -> JsonObject:
        """Send a request and return the response to it, skipping anything else.

        Raises:
            ConnectionError: the daemon closed the connection first.
        """
        if request_id is None:
            self._next_id += 1
            request_id = self._next_id
        message: JsonObject = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while True:
            reply = await self.read_message()
            if reply is None:
                raise ConnectionError(f"the daemon closed the connection instead of answering {method}")
            if "method" not in reply and reply.get("id") == request_id:
                return reply

    async def initialize(self) -> JsonObject:
        """The MCP handshake; returns the initialize result."""
        reply = await self.request("initialize", INITIALIZE)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return cast(JsonObject, reply["result"])

    async def call_tool(self, name: str, arguments: object) -> JsonObject:
        """A tools/call; returns the whole response (result or error)."""
        return await self.request("tools/call", {"name": name, "arguments": arguments})


@asynccontextmanager
async def open_raw(path: Path) -> AsyncGenerator[RawConnection]:
    """A raw connection to a socket, closed on exit."""
    stream = await connect_unix(path)
    async with stream:
        yield RawConnection(stream)


def rss_bytes() -> int:
    """This process's resident set size (the daemon runs in the test's process)."""
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def tool_error_text(response: JsonObject) -> str:
    """The text of a refused tools/call (a JSON-RPC error or a result with isError)."""
    if "error" in response:
        return str(response["error"].get("message", ""))
    result = cast(JsonObject, response["result"])
    assert result.get("isError"), response
    return "\n".join(str(block.get("text", "")) for block in result.get("content", []))
