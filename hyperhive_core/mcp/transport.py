"""MCP over a unix socket: newline-delimited JSON-RPC, the framing of the SDK's stdio transport.

The SDK has no unix-socket transport, so this builds one the way `stdio_server` is built: a reader
task that parses each line into a `SessionMessage`, a writer task, and two memory streams. A line
that is not JSON-RPC reaches the session as an exception (the SDK answers it); a line over
`max_line_bytes` closes the connection, because the rest of the stream can no longer be framed.
"""

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types
from anyio.abc import ByteStream, ObjectReceiveStream, ObjectSendStream
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.mcp.unix import connect_unix

logger = logging.getLogger(__name__)

# Bounds one JSON-RPC line: a 64 KiB body escaped into JSON plus framing stays far below it.
MAX_LINE_BYTES = 4 * 1024 * 1024

ReadStream = ObjectReceiveStream[SessionMessage | Exception]
WriteStream = ObjectSendStream[SessionMessage]


@asynccontextmanager
async def open_message_streams(
    stream: ByteStream, *, max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncGenerator[tuple[ReadStream, WriteStream]]:
    """Frame `stream` as MCP messages for an SDK session, until either side closes."""
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    buffered = BufferedByteReceiveStream(stream)

    async def read_lines() -> None:
        async with read_writer:
            while True:
                try:
                    line = await buffered.receive_until(b"\n", max_line_bytes)
                except anyio.DelimiterNotFound:
                    logger.warning("closing a connection that sent a line over %d bytes", max_line_bytes)
                    return
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                if not line.strip():
                    continue
                try:
                    message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError as exc:
                    await read_writer.send(exc)
                    continue
                await read_writer.send(SessionMessage(message))

    async def write_lines() -> None:
        async with write_reader:
            async for session_message in write_reader:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await stream.send(data.encode() + b"\n")
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_lines)
        tg.start_soon(write_lines)
        try:
            yield read_stream, write_stream
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def connect_unix_streams(socket: Path) -> AsyncGenerator[tuple[ReadStream, WriteStream]]:
    """Connect to an MCP server on a unix socket, for a client session.

    Raises:
        DaemonUnavailableError: nothing listens on `socket`.
    """
    try:
        stream = await connect_unix(socket)
    except FileNotFoundError as exc:
        raise DaemonUnavailableError(socket, "socket does not exist") from exc
    except ConnectionRefusedError as exc:
        raise DaemonUnavailableError(socket, "connection refused; the daemon is not running") from exc
    except PermissionError as exc:
        raise DaemonUnavailableError(socket, "permission denied; run as the daemon's user") from exc
    async with stream, open_message_streams(stream) as streams:
        yield streams
