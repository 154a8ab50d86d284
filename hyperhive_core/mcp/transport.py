"""MCP over a unix socket: newline-delimited JSON-RPC, the framing of the SDK's stdio transport.

The SDK has no unix-socket transport, so this builds one the way `stdio_server` is built: a reader
task that parses each line into a `SessionMessage`, a writer task, and two memory streams. The
transport answers what the session never sees itself: a line that is not JSON-RPC gets a JSON-RPC
error (parse error or invalid request, never the input echoed back) and the connection goes on; a
line with more JSON values than a request needs is refused before any Python object is built for
it; a line over `max_line_bytes` gets an error and closes the connection, because the rest of the
stream can no longer be framed.

Every bound is in bytes or work, per connection and per principal (`PrincipalBudget`, shared by
one principal's connections): requests unanswered (count, and bytes of their parsed size), reply
bytes not yet taken by the peer, and lines handled per second (requests, notifications and
garbage alike, one line per turn of the event loop). Past a bound the reader stops reading, so a
peer that floods or never reads its answers stalls itself, not the daemon; a peer that takes no
bytes for `write_stall_s` is disconnected.
"""

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import anyio
import anyio.lowlevel
import mcp_types
import pydantic_core
from anyio.abc import ByteReceiveStream, ByteStream, ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from pydantic import ValidationError

from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.mcp._budget import ELEMENT_COST_BYTES, Allowance, PrincipalBudget, WorkRate
from hyperhive_core.mcp._memory import note_freed
from hyperhive_core.mcp.unix import UnixStream, connect_unix

logger = logging.getLogger(__name__)

# Bounds one JSON-RPC line: what a legitimate request needs. A 64 KiB body escaped into JSON is at
# most 384 KiB (\u0001 for each byte); the turn loop keeps a batch of events under half of this.
MAX_LINE_BYTES = 1024 * 1024
# The longest answer a client takes: a recv or inbox of ~1 MiB of bodies, twice (text and structure).
MAX_REPLY_LINE_BYTES = 16 * 1024 * 1024
# JSON values (objects, arrays, members, elements) one line may hold; a line of `[{},{},…]` builds
# ~100 bytes of Python objects per 3 bytes of JSON, so this bounds what parsing one line costs.
MAX_JSON_VALUES = 100_000
# Requests of one connection being handled at once; claude and the turn loop keep one or two.
MAX_IN_FLIGHT = 8
# Parsed bytes of one connection's unanswered requests, and reply bytes it may leave unread
# before it stops being read.
MAX_HELD_BYTES = 4 * 1024 * 1024
MAX_UNSENT_BYTES = 512 * 1024
# Lines one connection may have handled per second, and in a burst.
LINES_PER_S = 2000.0
LINES_BURST = 1000.0
# A line costs one unit of work, and one more per this many bytes (counting and parsing a MiB
# costs the daemon what a few hundred small lines do).
WORK_UNIT_BYTES = 4 * 1024
# A request this large (in parsed bytes) leaves garbage worth giving back to the OS once answered.
BIG_REQUEST_BYTES = 1024 * 1024
# A peer that takes none of a line for this long is gone or hostile: the connection is closed.
WRITE_STALL_S = 30.0
RECEIVE_BYTES = 64 * 1024

ReadStream = ObjectReceiveStream[SessionMessage | Exception]
WriteStream = ObjectSendStream[SessionMessage]
RequestId = int | str


def _error_line(request_id: RequestId | None, code: int, message: str) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}).encode() + b"\n"
    )


def json_values(line: bytes) -> int:
    """How many JSON values a line holds, about (counted outside strings, without parsing it).

    Linear on any input: escapes are dropped first, so every quote left opens or closes a string.
    """
    if len(line) <= 4096:
        return len(line) // 2 + 1  # cheap bound: every value after the first costs a comma or bracket
    upper = line.count(b",") + line.count(b"[") + line.count(b"{") + 1
    if upper <= MAX_JSON_VALUES:
        return upper  # strings included: a bound, and the common case (a few ms less per MiB)
    bare = line.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes = bare.count(b'"')
    if quotes > 2 * MAX_JSON_VALUES:
        return quotes // 2  # every string is a value (or a member's name)
    outside = b"".join(bare.split(b'"')[::2])
    return outside.count(b",") + outside.count(b"[") + outside.count(b"{") + 1


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


class _Lines:
    """Newline-delimited lines from a byte stream, holding no more than one line's bytes."""

    def __init__(self, stream: ByteReceiveStream, max_bytes: int) -> None:
        self._stream = stream
        self._max = max_bytes
        self._rest = b""
        self.read = 0

    async def next(self) -> bytes | None:
        """The next line, without its newline; None if it runs past the limit (the framing is lost).

        Raises:
            anyio.EndOfStream: the peer closed its side.
        """
        parts: list[bytes] = []
        size = 0
        while True:
            if self._rest:
                data, self._rest = self._rest, b""
            else:
                data = await self._stream.receive(RECEIVE_BYTES)
                self.read += len(data)
            end = data.find(b"\n")
            if end >= 0:
                self._rest = data[end + 1 :]
                if size + end > self._max:
                    return None
                parts.append(data[:end])
                return parts[0] if len(parts) == 1 else b"".join(parts)
            size += len(data)
            if size > self._max:
                return None
            parts.append(data)


@asynccontextmanager
async def open_message_streams(
    stream: ByteStream,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_in_flight: int = MAX_IN_FLIGHT,
    principal: PrincipalBudget | None = None,
    write_stall_s: float = WRITE_STALL_S,
) -> AsyncGenerator[tuple[ReadStream, WriteStream]]:
    """Frame `stream` as MCP messages for an SDK session, until either side closes.

    `principal`, shared by every connection of one principal, bounds what they hold and do
    together; each request holds its share until answered or abandoned.
    """
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)
    lines = _Lines(stream, max_line_bytes)
    write_lock = anyio.Lock()
    slots = [Allowance(max_in_flight), *(() if principal is None else (principal.in_flight,))]
    held = [Allowance(MAX_HELD_BYTES), *(() if principal is None else (principal.held_bytes,))]
    unsent = [(Allowance(MAX_UNSENT_BYTES), MAX_UNSENT_BYTES)]
    if principal is not None:
        unsent.append((principal.unsent_bytes, principal.unsent_bytes.capacity))
    rates = [WorkRate(LINES_PER_S, LINES_BURST), *(() if principal is None else (principal.lines,))]
    # What each unanswered request holds (bytes of its parsed size), by id: a peer reusing one id
    # for many requests still holds one share per request.
    unanswered: dict[RequestId, list[int]] = {}
    # Set once nothing more can be written; `waiting` is the reader's wait for room, which only
    # an answer written would end. (A read is never cancelled from here: anyio's own unix streams,
    # used by the tests' fakes, break on a read cancelled as data arrives.)
    gone = False
    waiting: anyio.CancelScope | None = None

    def release(cost: int) -> None:
        for allowance in slots:
            allowance.release(1)
        for allowance in held:
            allowance.release(cost)
        if cost >= BIG_REQUEST_BYTES:
            note_freed(cost)

    def settle(request_id: RequestId) -> None:
        costs = unanswered.get(request_id)
        if costs:
            release(costs.pop())
            if not costs:
                del unanswered[request_id]

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
            for allowance, _ in unsent:
                allowance.add(len(data))
            try:
                await send(data)
                return True
            except TimeoutError:
                stalled = True
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            finally:
                for allowance, _ in unsent:
                    allowance.remove(len(data))
        # The connection is over: the reader ends at the EOF or close, or instead of waiting for room.
        gone = True
        if waiting is not None:
            waiting.cancel()
        if stalled:
            logger.warning("closing a connection that took no bytes for %.0f s", write_stall_s)
            await stream.aclose()
        return False

    async def take_room(cost: int) -> bool:
        """Wait until the connection and its principal can hold one more request; False if the connection ended."""
        nonlocal waiting
        taken: list[tuple[Allowance, int]] = []
        with anyio.CancelScope() as waiting:
            # A peer whose answers wait unread is not read from until it reads them.
            for allowance, level in unsent:
                await allowance.wait_below(level)
            for allowance, units in [*((a, 1) for a in slots), *((a, cost) for a in held)]:
                if gone:
                    break
                await allowance.acquire(units)
                taken.append((allowance, units))
        waiting = None
        if gone or len(taken) < len(slots) + len(held):
            for allowance, units in taken:
                allowance.release(units)
            return False
        return True

    async def read_lines() -> None:
        async with read_writer:
            while True:
                try:
                    line = await lines.next()
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                size = max_line_bytes if line is None else len(line)
                for rate in rates:
                    await rate.spend(1 + size // WORK_UNIT_BYTES)
                # One line per connection per turn of the loop: other connections' lines interleave.
                await anyio.lowlevel.checkpoint()
                if line is None:
                    logger.warning("closing a connection that sent a line over %d bytes", max_line_bytes)
                    refusal = f"Invalid Request: line over {max_line_bytes} bytes; closing the connection"
                    await write_line(_error_line(None, mcp_types.INVALID_REQUEST, refusal))
                    note_freed(max_line_bytes)
                    return
                if not line.strip():
                    continue
                values = json_values(line)
                if values > MAX_JSON_VALUES:
                    refusal = (
                        f"Invalid Request: the line holds more than {MAX_JSON_VALUES} JSON values; "
                        "no request needs that many, send fewer (e.g. smaller batches)"
                    )
                    note_freed(len(line))
                    if not await write_line(_error_line(None, mcp_types.INVALID_REQUEST, refusal)):
                        return
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
                    cost = len(line) + ELEMENT_COST_BYTES * min(values, len(line))
                    # Back-pressure: a peer that does not read its answers stops being read.
                    if not await take_room(cost):
                        return
                    unanswered.setdefault(message.id, []).append(cost)
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
        # Requests the connection took down with it give their principal's share back.
        for costs in unanswered.values():
            for cost in costs:
                release(cost)
        unanswered.clear()
        note_freed(lines.read)


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
    # A client takes the daemon's answers, which may be longer than any request it may send.
    async with stream, open_message_streams(stream, max_line_bytes=MAX_REPLY_LINE_BYTES) as streams:
        yield streams
