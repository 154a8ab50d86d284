"""A minimal synchronous MCP client over the hive's unix socket, standard library only.

One request in flight at a time: responses are matched by id, notifications are dropped, and the
server's own requests get an answer (`ping` an empty result, anything else "method not found")
so the server never waits on us. Lines are bounded by `MAX_LINE_BYTES`.
"""

import json
import logging
import socket
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self, cast

from hyperhive_agent._unix import connect_unix
from hyperhive_agent._version import __version__
from hyperhive_agent.errors import ConnectionLostError, ProtocolError, SocketUnavailableError, ToolCallError

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = "2025-11-25"
CLIENT_NAME = "hive-agent"
# The daemon's transport closes on lines over 4 MiB; answers are bounded the same way.
MAX_LINE_BYTES = 4 * 1024 * 1024
# Bounds the handshake and every call that does not pass its own timeout.
DEFAULT_TIMEOUT_S = 10.0
CHUNK_BYTES = 64 * 1024
METHOD_NOT_FOUND = -32601

JsonObject = dict[str, Any]


class McpClient:
    """A connection to one hive socket. Not thread-safe; `abort` is the one call safe from a signal handler.

    Create it, then `open()` (or use `connect`); `call_tool` until done; `close()`.
    """

    def __init__(self, socket_path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 1
        self._aborted = False
        self._lost_reason: str | None = None
        self.server_info: JsonObject = {}

    def open(self) -> None:
        """Connect and run the MCP handshake (`initialize`, then `notifications/initialized`).

        Raises:
            SocketUnavailableError: the socket cannot be opened.
            ConnectionLostError: the server hung up during the handshake, or `abort` was called.
            ProtocolError: the server refused `initialize`.
        """
        if self._aborted:
            raise ConnectionLostError("aborted")
        self._sock = connect_unix(self.socket_path, self.timeout_s)
        result = self._request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": CLIENT_NAME, "version": __version__},
            },
            timeout_s=self.timeout_s,
        )
        if "error" in result:
            raise ProtocolError(f"initialize refused: {_error_text(result['error'])}")
        info = cast(JsonObject, result.get("result", {})).get("serverInfo", {})
        self.server_info = cast(JsonObject, info) if isinstance(info, dict) else {}
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call_tool(self, name: str, arguments: JsonObject, *, timeout_s: float | None = None) -> JsonObject:
        """Call tool `name` and return its `structuredContent` (`{}` when it has none).

        `timeout_s` bounds the wait for the answer (default: the client's timeout); a tool that
        blocks on purpose, like `recv`, needs a bound longer than its own.

        Raises:
            ToolCallError: the tool reported an error, or the server refused the request.
            ConnectionLostError: the connection closed, broke, or no answer came within the bound.
        """
        response = self._request(
            "tools/call",
            {"name": name, "arguments": arguments},
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
        )
        if "error" in response:
            raise ToolCallError(name, _error_text(response["error"]))
        result = response.get("result")
        if not isinstance(result, dict):
            raise ToolCallError(name, "the server sent a result that is not an object")
        result = cast(JsonObject, result)
        if result.get("isError"):
            raise ToolCallError(name, _content_text(result) or "the tool failed without saying why")
        structured = result.get("structuredContent")
        return cast(JsonObject, structured) if isinstance(structured, dict) else {}

    def abort(self) -> None:
        """Break the connection so a blocked or future call raises `ConnectionLostError`; signal-safe."""
        self._aborted = True
        if self._sock is not None:
            try:
                # shutdown, not close: the fd stays valid under a recv the signal interrupted
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("abort: socket already down")

    def close(self) -> None:
        """Close the connection; the server sees EOF. Safe to call twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(self, method: str, params: JsonObject, *, timeout_s: float) -> JsonObject:
        request_id = self._next_id
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = self._read_message(timeout_s)
            if "method" in message:
                self._answer_server(message)
            elif message.get("id") == request_id:
                return message
            else:
                logger.debug("dropping a response to an id we are not waiting for: %r", message.get("id"))

    def _answer_server(self, message: JsonObject) -> None:
        if "id" not in message:
            return  # a notification: nothing in the hive's toolset needs one
        if message["method"] == "ping":
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
        else:
            error = {"code": METHOD_NOT_FOUND, "message": f"hive-agent does not handle {message['method']!r}"}
            self._send({"jsonrpc": "2.0", "id": message["id"], "error": error})

    def _send(self, message: JsonObject) -> None:
        sock = self._live_socket()
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        try:
            sock.sendall(data)
        except OSError as exc:
            self._lost(f"send failed: {exc}")

    def _read_message(self, timeout_s: float) -> JsonObject:
        while True:
            line = self._read_line(timeout_s)
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                logger.warning("dropping a line from the server that is not JSON")
                continue
            if isinstance(message, dict):
                return cast(JsonObject, message)
            logger.warning("dropping a line from the server that is not a JSON-RPC object")

    def _read_line(self, timeout_s: float) -> bytes:
        sock = self._live_socket()
        sock.settimeout(timeout_s)
        while (end := self._buffer.find(b"\n")) < 0:
            if len(self._buffer) > MAX_LINE_BYTES:
                self._lost(f"the server sent a line over {MAX_LINE_BYTES} bytes")
            try:
                chunk = sock.recv(CHUNK_BYTES)
            except TimeoutError:
                self._lost(f"no answer within {timeout_s:g} s")
            except OSError as exc:
                self._lost(str(exc))
            if not chunk:
                self._lost("the server closed the connection")
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line

    def _live_socket(self) -> socket.socket:
        if self._aborted:
            self._lost("aborted")
        if self._lost_reason is not None:
            raise ConnectionLostError(self._lost_reason)
        if self._sock is None:
            raise RuntimeError("McpClient.open() was not called, or the client is closed")
        return self._sock

    def _lost(self, reason: str) -> NoReturn:
        # remembered so later calls fail the same way instead of as lifecycle misuse
        self._lost_reason = reason
        self.close()
        raise ConnectionLostError(reason)


def connect(socket_path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> McpClient:
    """Connect to the hive socket at `socket_path` and finish the MCP handshake.

    Raises:
        SocketUnavailableError: the socket cannot be opened.
        ConnectionLostError: the server hung up during the handshake.
        ProtocolError: the server refused `initialize`.
    """
    client = McpClient(socket_path, timeout_s=timeout_s)
    try:
        client.open()
    except BaseException:
        client.close()
        raise
    return client


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(cast(JsonObject, error).get("message", error))
    return str(error)


def _content_text(result: JsonObject) -> str:
    content = result.get("content")
    if not isinstance(content, list):
        return ""
    blocks = [cast(JsonObject, block) for block in cast(list[object], content) if isinstance(block, dict)]
    return "\n".join(str(block.get("text", "")) for block in blocks if block.get("type") == "text")


__all__ = ["ConnectionLostError", "McpClient", "ProtocolError", "SocketUnavailableError", "ToolCallError", "connect"]
