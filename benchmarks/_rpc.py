"""A lean synchronous JSON-RPC line client, standard library only, so the client's own cost stays small.

It speaks MCP's newline-delimited framing over a unix socket or over a child's stdio (the
`hive-agent mcp` bridge), one request in flight at a time, as claude and the turn loop do.
"""

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, cast

JsonObject = dict[str, Any]
CHUNK_BYTES = 64 * 1024
PROTOCOL_VERSION = "2025-11-25"


class ToolFailedError(Exception):
    """A tool call came back with `isError`, or the request was refused."""


class LineClient:
    """Newline-delimited JSON-RPC over a byte pipe; build it with `connect_socket` or `start_bridge`."""

    def __init__(self, write: Callable[[bytes], None], read: Callable[[], bytes], close: Callable[[], None]) -> None:
        self._write = write
        self._read = read
        self._close = close
        self._buffer = bytearray()
        self._next_id = 1

    def request(self, method: str, params: JsonObject) -> JsonObject:
        """Send one request and return its response, skipping anything else the server sends."""
        request_id = self._next_id
        self._next_id += 1
        self.notify(method, params, request_id=request_id)
        while True:
            message = cast(JsonObject, json.loads(self._read_line()))
            if message.get("id") == request_id and "method" not in message:
                return message

    def notify(self, method: str, params: JsonObject | None = None, *, request_id: int | None = None) -> None:
        """Send one message; a request when `request_id` is given."""
        message: JsonObject = {"jsonrpc": "2.0", "method": method}
        if request_id is not None:
            message["id"] = request_id
        if params is not None:
            message["params"] = params
        self._write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def initialize(self) -> Self:
        """Run the MCP handshake."""
        self.request(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}},
        )
        self.notify("notifications/initialized")
        return self

    def call(self, tool: str, arguments: JsonObject) -> JsonObject:
        """Call an MCP tool and return its structured result.

        Raises:
            ToolFailedError: the call was refused.
        """
        response = self.request("tools/call", {"name": tool, "arguments": arguments})
        result = cast(JsonObject | None, response.get("result"))
        if result is None or result.get("isError"):
            raise ToolFailedError(f"{tool}: {response}")
        return cast(JsonObject, result.get("structuredContent") or {})

    def close(self) -> None:
        """Hang up."""
        self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\n")) < 0:
            chunk = self._read()
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line


def connect_socket(path: Path, *, mcp: bool = True) -> LineClient:
    """A client on a unix socket; `mcp` runs the MCP handshake first."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    client = LineClient(sock.sendall, lambda: sock.recv(CHUNK_BYTES), sock.close)
    return client.initialize() if mcp else client


def start_bridge(python: str, path: Path) -> LineClient:
    """A client speaking to a real `hive-agent mcp` bridge on `path`, over the bridge's stdio."""
    process = subprocess.Popen(
        [python, "-m", "hyperhive_agent", "mcp", "--socket", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin_fd, stdout_fd = process.stdin.fileno(), process.stdout.fileno()

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdin_fd, view) :]

    def close() -> None:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()

    return LineClient(write, lambda: os.read(stdout_fd, CHUNK_BYTES), close).initialize()
