"""MCP over a unix socket: newline-delimited JSON-RPC, the framing of the SDK's stdio transport.

The SDK has no unix-socket transport, so this builds one the way `stdio_server` is built: a reader
task that parses each line into a `SessionMessage`, a writer task, and two memory streams. The
transport answers what the session never sees itself: a line that is not JSON-RPC gets a JSON-RPC
error (parse error or invalid request, never the input echoed back) and the connection goes on; a
line over `max_line_bytes` gets an error and closes the connection, because the rest of the stream
can no longer be framed. Bounds: at most `max_in_flight` requests of a connection unanswered, and
of all the connections sharing a `principal_in_flight` semaphore (past either, the reader stops
reading, so a peer that never reads its answers stalls itself, not the daemon); a peer that takes
no bytes for `write_stall_s` is disconnected.
"""

import json
import logging
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import anyio
import mcp_types
import pydantic_core
from anyio.abc import ByteStream, ObjectReceiveStream, ObjectSendStream
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from pydantic import ValidationError

from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.mcp.unix import UnixStream, connect_unix

logger = logging.getLogger(__name__)

# Bounds one JSON-RPC line: a 64 KiB body escaped into JSON plus framing stays far below it.
MAX_LINE_BYTES = 4 * 1024 * 1024
# Requests of one connection being handled at once; claude and the turn loop keep one or two.
MAX_IN_FLIGHT = 16
# A peer that takes none of a line for this long is gone or hostile: the connection is closed.
WRITE_STALL_S = 30.0

ReadStream = ObjectReceiveStream[SessionMessage | Exception]
WriteStream = ObjectSendStream[SessionMessage]
RequestId = int | str


def _error_line(request_id: RequestId | None, code: int, message: str) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}).encode() + b"\n"
    )


def _id_of(line: bytes) -> tuple[bool, RequestId | None]:
    """Whether a line that is valid JSON has an "id" member, and that id if it is a valid one."""
    try:
        value: object = pydantic_core.from_json(line)
    except ValueError:
        return False, None
    if not isinstance(value, dict):
        return False, None
    members = cast(dict[str, object], value)
    if "id" not in members:
        return False, None
    request_id = members["id"]
    if isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool)):
        return True, request_id
    return True, None


def _refusal(line: bytes, exc: ValidationError | None) -> bytes:
    """The JSON-RPC error for a line that is not a message the session can take."""
    if exc is not None and any(e["type"] == "json_invalid" for e in exc.errors(include_input=False)):
        return _error_line(None, mcp_types.PARSE_ERROR, "Parse error: the line is not one JSON value in UTF-8")
    _, request_id = _id_of(line)
    return _error_line(
        request_id,
        mcp_types.INVALID_REQUEST,
        "Invalid Request: not a JSON-RPC 2.0 request, notification or response (batches are not supported)",
    )


@asynccontextmanager
async def open_message_streams(
    stream: ByteStream,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_in_flight: int = MAX_IN_FLIGHT,
    principal_in_flight: anyio.Semaphore | None = None,
    write_stall_s: float = WRITE_STALL_S,
) -> AsyncGenerator[tuple[ReadStream, WriteStream]]:
    """Frame `stream` as MCP messages for an SDK session, until either side closes.

    `principal_in_flight`, shared by every connection of one principal, bounds the requests they
    have unanswered together; each request holds one of its slots until answered or abandoned.
    """
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    buffered = BufferedByteReceiveStream(stream)
    write_lock = anyio.Lock()
    in_flight = (anyio.Semaphore(max_in_flight), *(() if principal_in_flight is None else (principal_in_flight,)))
    unanswered: Counter[RequestId] = Counter()
    # Set once nothing more can be written; `waiting_for_slot` is the reader's wait for a request
    # slot, which only an answer written would end. (A read is never cancelled from here: anyio's
    # own unix streams, used by the tests' fakes, break on a read cancelled as data arrives.)
    gone = False
    waiting_for_slot: anyio.CancelScope | None = None

    def settle(request_id: RequestId) -> None:
        # Counted per id: a peer reusing one id for many requests still holds one slot per request.
        if unanswered[request_id] > 0:
            unanswered[request_id] -= 1
            if not unanswered[request_id]:
                del unanswered[request_id]
            for slots in in_flight:
                slots.release()

    if isinstance(stream, UnixStream):
        stream.stall_timeout_s = write_stall_s

    async def send(data: bytes) -> None:
        if isinstance(stream, UnixStream):
            await stream.send(data)  # times a stalled peer out itself, only when it stalls
        else:
            with anyio.fail_after(write_stall_s):
                await stream.send(data)

    async def write_line(data: bytes) -> bool:
        """Write one line whole; on a peer that is gone or takes nothing for too long, hang up."""
        nonlocal gone
        stalled = False
        async with write_lock:
            try:
                await send(data)
                return True
            except TimeoutError:
                stalled = True
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
        # The connection is over: the reader ends at the EOF or close, or instead of waiting for a slot.
        gone = True
        if waiting_for_slot is not None:
            waiting_for_slot.cancel()
        if stalled:
            logger.warning("closing a connection that took no bytes for %.0f s", write_stall_s)
            await stream.aclose()
        return False

    async def take_slot() -> bool:
        """Wait for a request slot of the connection and of its principal; False if the connection ended."""
        nonlocal waiting_for_slot
        held: list[anyio.Semaphore] = []
        with anyio.CancelScope() as waiting_for_slot:
            for slots in in_flight:
                if gone:
                    break
                await slots.acquire()
                held.append(slots)
        waiting_for_slot = None
        if gone or len(held) < len(in_flight):
            for slots in held:
                slots.release()
            return False
        return True

    async def read_lines() -> None:
        async with read_writer:
            while True:
                try:
                    line = await buffered.receive_until(b"\n", max_line_bytes)
                except anyio.DelimiterNotFound:
                    line = None
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                # receive_until lets a line through that ends in the chunk that crossed the limit.
                if line is None or len(line) > max_line_bytes:
                    logger.warning("closing a connection that sent a line over %d bytes", max_line_bytes)
                    refusal = f"Invalid Request: line over {max_line_bytes} bytes; closing the connection"
                    await write_line(_error_line(None, mcp_types.INVALID_REQUEST, refusal))
                    return
                if not line.strip():
                    continue
                try:
                    message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValidationError as exc:
                    if not await write_line(_refusal(line, exc)):
                        return
                    continue
                if isinstance(message, mcp_types.JSONRPCNotification) and _id_of(line)[0]:
                    # A request whose id is null, a bool, a float or an object parses as a
                    # notification and would go unanswered.
                    if not await write_line(_refusal(line, None)):
                        return
                    continue
                metadata = None
                if isinstance(message, mcp_types.JSONRPCRequest):
                    # Back-pressure: a peer that does not read its answers stops being read.
                    if not await take_slot():
                        return
                    unanswered[message.id] += 1
                    request_id = message.id

                    async def unanswered_hook(request_id: RequestId = request_id) -> None:
                        settle(request_id)

                    metadata = ServerMessageMetadata(on_request_unanswered=unanswered_hook)
                await read_writer.send(SessionMessage(message, metadata=metadata))

    async def write_lines() -> None:
        async with write_reader:
            async for session_message in write_reader:
                message = session_message.message
                data = message.model_dump_json(by_alias=True, exclude_unset=True)
                if not await write_line(data.encode() + b"\n"):
                    return
                if isinstance(message, mcp_types.JSONRPCResponse | mcp_types.JSONRPCError) and message.id is not None:
                    settle(message.id)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_lines)
            tg.start_soon(write_lines)
            try:
                yield read_stream, write_stream
            finally:
                tg.cancel_scope.cancel()
    finally:
        # Requests the connection took down with it give their principal's slots back.
        if principal_in_flight is not None:
            for _ in range(unanswered.total()):
                principal_in_flight.release()


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
