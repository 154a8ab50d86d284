"""`hive-agent mcp`: relays MCP's newline-delimited JSON-RPC between stdio and the agent's hive socket.

Lines pass through byte for byte; a thread pumps stdin->socket while the main thread pumps
socket->stdout. Each line is parsed only for its `id` and `method`, so the bridge knows the
client's `initialize` and which requests still await an answer. Stdin EOF half-closes the socket
so answers still in flight reach stdout; socket EOF after that ends the bridge. Socket EOF while
stdin is open means the daemon went away: the bridge reconnects with backoff, replays `initialize`
(swallowing the answer: the client has one), sends again the calls in flight that are safe to
repeat (reads, and `send`, which the bridge keys so the daemon stores a repeat once), fails the
others with "call again", and resumes, so the client's MCP session carries on. A bridge started
while no daemon listens (a claude turn starting during a restart) waits the same bounded time for
it, queueing the client's lines. Standard library only: claude starts one bridge per session.
"""

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from hyperhive_agent import wire
from hyperhive_agent._unix import connect_unix
from hyperhive_agent.errors import SocketUnavailableError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
STDIN_FD = 0
STDOUT_FD = 1
RECONNECT_TIMEOUT_S = 60.0
BACKOFF_START_S = 0.05
BACKOFF_CAP_S = 1.0
# What stdin may send while the daemon is away; past it, requests fail at once instead of queueing.
MAX_QUEUED_BYTES = 16 * 1024 * 1024
# JSON-RPC's "server error" range: the call did not run to an answer, and calling again is safe to try.
RESTARTED_CODE = -32000
RESTARTED_MESSAGE = "the hive daemon restarted during this call; call again"
QUEUE_FULL_MESSAGE = "the hive daemon is restarting and too much is waiting for it; call again"
REPLAY_ID_PREFIX = "hive-agent-bridge/replay/"

RequestId = int | str
# what json.loads returns, spelled out so the bridge needs no `typing` import (~2 ms at start-up)
JsonValue = dict[str, object] | list[object] | str | int | float | bool | None


class _Lines:
    """Cuts a byte stream into runs of complete lines; a partial line waits for the rest."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        """Add `data`; return every complete line buffered so far, newlines included (maybe b"")."""
        start = len(self._buffer)
        self._buffer += data
        # search only the new bytes: a long line arriving in many chunks stays linear
        if self._buffer.find(b"\n", start) < 0:
            return b""
        cut = self._buffer.rfind(b"\n") + 1
        complete = bytes(self._buffer[:cut])
        del self._buffer[:cut]
        return complete

    def rest(self) -> bytes:
        """Whatever is left: a last line without its newline."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


class _Request:
    """A request of the client in flight: its method, and its line when it may be sent again."""

    # a plain class: importing dataclasses would add ~6 ms to every claude session's start
    __slots__ = ("line", "method")

    def __init__(self, method: str, line: bytes | None) -> None:
        self.method = method
        self.line = line


class _Outgoing:
    """A run of the client's lines, and what the bridge must remember once they are sent."""

    __slots__ = ("chunk", "initialize", "initialized", "requests")

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.requests: dict[RequestId, _Request] = {}
        self.initialize: tuple[RequestId, bytes] | None = None
        self.initialized: bytes | None = None


class Bridge:
    """One stdio <-> unix-socket relay that outlives daemon restarts.

    `_lock` guards the connection state, the queue and the in-flight table; `_send_lock` makes a
    send and the close of the socket it uses exclusive; `_stdout_lock` keeps stdout's lines whole.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
        stdin_fd: int = STDIN_FD,
        stdout_fd: int = STDOUT_FD,
    ) -> None:
        self.socket_path = socket_path
        self.reconnect_timeout_s = reconnect_timeout_s
        self._stdin_fd = stdin_fd
        self._stdout_fd = stdout_fd
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stdout_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._server_lines = _Lines()
        # False while (re)connecting: stdin's lines queue up until the replay is done
        self._connected = False
        self._queue: list[_Outgoing] = []
        self._queued_bytes = 0
        self._in_flight: dict[RequestId, _Request] = {}
        # what the lines of requests kept for a retry weigh
        self._retry_bytes = 0
        # names this bridge's idempotency keys: a retried send is stored once, another bridge's never matches
        self._token = os.urandom(6).hex()
        self._initialize: tuple[RequestId, bytes] | None = None
        self._initialized: bytes | None = None
        self._stdin_done = threading.Event()
        # set at stdin EOF to cut a reconnect's backoff short; cleared by the one who waits on it
        self._wakeup = threading.Event()
        self._replays = 0
        self._ever_connected = False

    def run(self) -> None:
        """Relay until stdin and the socket have both closed, or stdout goes away.

        Raises:
            SocketUnavailableError: the hive socket cannot be opened, or the daemon went away and
                did not come back within `reconnect_timeout_s`.
        """
        try:
            self._sock = connect_unix(self.socket_path)
            self._connected = self._ever_connected = True
        except SocketUnavailableError as exc:
            if self.reconnect_timeout_s <= 0:
                raise
            # The daemon may be restarting (a claude turn that starts during a systemd restart):
            # wait for it as after a restart, with the client's lines queued meanwhile.
            logger.info("%s; waiting up to %g s for the hive daemon", exc.reason, self.reconnect_timeout_s)
        try:
            # daemon: a thread blocked reading an open stdin must not keep the process alive
            threading.Thread(target=self._pump_stdin, name="stdin->socket", daemon=True).start()
            if self._connected or self._reconnect(resend_initialize=False):
                self._pump_socket()
        finally:
            with self._send_lock:
                if self._sock is not None:
                    self._sock.close()

    # stdin -> socket (a thread)

    def _pump_stdin(self) -> None:
        lines = _Lines()
        while True:
            try:
                data = os.read(self._stdin_fd, CHUNK_BYTES)
            except OSError as exc:
                logger.debug("stdin broke: %s", exc)
                data = b""
            if not data:
                break
            if chunk := lines.feed(data):
                self._from_client(chunk)
        if rest := lines.rest():
            self._from_client(rest)
        with self._lock:
            self._stdin_done.set()
            sock = self._sock if self._connected else None
        self._wakeup.set()
        if sock is not None:
            # half-close: the server sees EOF, finishes what it owes us, then closes its side
            self._shutdown_write(sock)
        # else the reconnect finishes the queue first, then half-closes

    def _from_client(self, chunk: bytes) -> None:
        lines = chunk.split(b"\n")
        rewritten = False
        requests: dict[RequestId, _Request] = {}
        initialize: tuple[RequestId, bytes] | None = None
        initialized: bytes | None = None
        for index, line in enumerate(lines):
            message = _parse(line)
            if message is None:
                continue
            method = message.get("method")
            if not isinstance(method, str):
                continue  # a response to the server's own request
            request_id = message.get("id")
            if isinstance(request_id, RequestId):
                tool = _tool_called(message) if method == "tools/call" else None
                if tool == wire.SEND and (keyed := self._with_key(message, request_id)) is not None:
                    line = lines[index] = keyed
                    rewritten = True
                retryable = method != "initialize" and (tool is None or tool in wire.RETRYABLE_TOOLS)
                requests[request_id] = _Request(method, line + b"\n" if retryable else None)
                if method == "initialize" and initialize is None:
                    initialize = (request_id, line + b"\n")
            elif method == "notifications/initialized" and initialized is None:
                initialized = line + b"\n"
        if rewritten:
            chunk = b"\n".join(lines)
        out = _Outgoing(chunk)
        out.requests, out.initialize, out.initialized = requests, initialize, initialized
        with self._lock:
            if self._connected:
                self._note_sent(out)
                sock = self._sock
            elif self._queued_bytes + len(chunk) <= MAX_QUEUED_BYTES:
                self._queue.append(out)
                self._queued_bytes += len(chunk)
                return
            else:
                sock = None
        if sock is None:
            logger.warning("the queue for the restarting daemon is full; failing %d request(s)", len(out.requests))
            self._write_stdout(b"".join(_error_line(i, QUEUE_FULL_MESSAGE) for i in out.requests))
            return
        # a send on a dead socket fails quietly: the socket pump sees EOF and fails its requests
        self._send(sock, chunk)

    def _with_key(self, message: dict[str, object], request_id: RequestId) -> bytes | None:
        """The line of a `send` call with an idempotency key added, or None when it has one (or is odd)."""
        arguments = _member(_member(message, "params"), "arguments")
        if arguments is None or "key" in arguments:
            return None
        key = f"bridge-{self._token}-{request_id}"
        if len(key) > wire.MAX_KEY_CHARS or not key.isascii() or not key.isprintable() or " " in key:
            return None  # an id we cannot put in a key: this send is not retried (see _socket_closed)
        arguments["key"] = key
        return _encode(message)[:-1]

    def _note_sent(self, out: _Outgoing) -> None:
        """Record what `out` asks of the daemon; call with `_lock` held, just before sending it."""
        for request in out.requests.values():
            if request.line is not None:
                if self._retry_bytes + len(request.line) > MAX_QUEUED_BYTES:
                    request.line = None  # too much kept already: this one fails instead of being retried
                else:
                    self._retry_bytes += len(request.line)
        self._in_flight.update(out.requests)
        # remembered only once sent: a replay must never run ahead of the client's own initialize
        if self._initialize is None:
            self._initialize = out.initialize
        if self._initialized is None:
            self._initialized = out.initialized

    # socket -> stdout (the main thread)

    def _pump_socket(self) -> None:
        while True:
            sock = self._sock
            assert sock is not None
            try:
                data = sock.recv(CHUNK_BYTES)
            except OSError as exc:
                logger.debug("socket->stdout stopped: %s", exc)
                data = b""
            if not data:
                if self._socket_closed():
                    continue
                return
            if (chunk := self._server_lines.feed(data)) and not self._to_client(chunk):
                return

    def _to_client(self, chunk: bytes) -> bool:
        # unlocked peek: a request registered meanwhile cannot have its answer in this chunk yet
        if self._in_flight:
            answered: list[RequestId] = []
            for line in chunk.split(b"\n"):
                message = _parse(line)
                if (
                    message is not None
                    and "method" not in message
                    and isinstance(request_id := message.get("id"), RequestId)
                ):
                    answered.append(request_id)
            with self._lock:
                for request_id in answered:
                    done = self._in_flight.pop(request_id, None)
                    if done is not None and done.line is not None:
                        self._retry_bytes -= len(done.line)
        return self._write_stdout(chunk)

    def _socket_closed(self) -> bool:
        """Decide what a closed server side means: True to keep pumping on a new connection."""
        with self._lock:
            self._connected = False
            lost = self._in_flight
            self._in_flight = {}
            self._retry_bytes = 0
            sock = self._sock
        assert sock is not None
        with self._send_lock:
            # no stdin send is half-way through this socket once we hold the lock
            sock.close()
        # a partial line from the old daemon is garbage to the client
        self._server_lines = _Lines()
        # an initialize the client still waits on is sent again, not failed: its answer is the client's
        initialize_id = self._initialize[0] if self._initialize is not None else None
        resend_initialize = initialize_id is not None and initialize_id in lost
        retry = {i: r for i, r in lost.items() if r.line is not None and i != initialize_id}
        failed = [i for i in lost if i not in retry and not (resend_initialize and i == initialize_id)]
        if self.reconnect_timeout_s <= 0:
            failed += list(retry)
            retry = {}
        if failed:
            logger.debug("failing %d request(s) the daemon took with it", len(failed))
            if not self._write_stdout(b"".join(_error_line(i, RESTARTED_MESSAGE) for i in failed)):
                return False
        if retry:
            # Sent again first once the daemon is back, ahead of what the client wrote meanwhile.
            out = _Outgoing(b"".join(r.line for r in retry.values() if r.line is not None))
            out.requests = retry
            with self._lock:
                self._queue.insert(0, out)
                self._queued_bytes += len(out.chunk)
            logger.debug("sending %d request(s) again once the daemon is back", len(retry))
        if self.reconnect_timeout_s <= 0 or self._nothing_left():
            if retry:
                self._write_stdout(b"".join(_error_line(i, RESTARTED_MESSAGE) for i in retry))
            return False
        return self._reconnect(resend_initialize)

    def _nothing_left(self) -> bool:
        with self._lock:
            return self._stdin_done.is_set() and not self._queue

    def _reconnect(self, resend_initialize: bool) -> bool:
        started = time.monotonic()
        deadline = started + self.reconnect_timeout_s
        backoff_s = BACKOFF_START_S
        while True:
            try:
                sock = connect_unix(self.socket_path)
            except SocketUnavailableError as exc:
                logger.debug("reconnect: %s", exc.reason)
            else:
                self._ever_connected = True
                if self._replay(sock, deadline, resend_initialize):
                    logger.info("the hive daemon is back after %.2f s; carrying on", time.monotonic() - started)
                    self._resume(sock)
                    return True
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                what = (
                    "the hive daemon went away and did not come back"
                    if self._ever_connected
                    else "no hive daemon came up"
                )
                raise SocketUnavailableError(self.socket_path, f"{what} within {self.reconnect_timeout_s:g} s")
            if self._wakeup.wait(min(backoff_s, remaining_s)):
                self._wakeup.clear()
                if self._nothing_left():
                    return False
            backoff_s = min(backoff_s * 2, BACKOFF_CAP_S)

    def _replay(self, sock: socket.socket, deadline: float, resend_initialize: bool) -> bool:
        """Bring a new connection to where the client's session was; False if it broke on the way.

        Raises:
            SocketUnavailableError: the new daemon refused the client's `initialize`.
        """
        self._sock = sock
        initialize = self._initialize
        if initialize is None:
            return True  # the client had not started its session: nothing to replay
        request_id, line = initialize
        try:
            if resend_initialize:
                # the client never got its answer: this one is for it, so it goes out unchanged
                with self._lock:
                    self._in_flight[request_id] = _Request("initialize", None)
                sock.sendall(line)
                return True
            self._replays += 1
            replay_id = f"{REPLAY_ID_PREFIX}{self._replays}"
            message = _parse(line)
            assert message is not None  # it parsed when the client sent it
            sock.sendall(_encode({**message, "id": replay_id}))
            # bounded: a daemon that accepts but never answers must not outlast the reconnect timeout
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            answer = self._await_answer(sock, replay_id)
            if answer is None:
                sock.close()
                return False
            if "error" in answer:
                sock.close()
                raise SocketUnavailableError(
                    self.socket_path, f"the restarted daemon refused the session's initialize ({answer['error']})"
                )
            sock.settimeout(None)
            if self._initialized is not None:
                sock.sendall(self._initialized)
        except OSError as exc:
            logger.debug("replay failed: %s", exc)
            sock.close()
            return False
        return True

    def _await_answer(self, sock: socket.socket, replay_id: str) -> dict[str, object] | None:
        """Read until the answer to `replay_id` and swallow it; lines before and after go to the client."""
        while data := sock.recv(CHUNK_BYTES):
            chunk = self._server_lines.feed(data)
            lines = chunk.split(b"\n")
            for index, line in enumerate(lines):
                message = _parse(line)
                if message is not None and message.get("id") == replay_id and "method" not in message:
                    before = b"\n".join(lines[:index])
                    after = b"\n".join(lines[index + 1 :])
                    for part in (before + b"\n" if before else b"", after):
                        if part:
                            self._to_client(part)
                    return message
            if chunk:
                self._to_client(chunk)
        return None

    def _resume(self, sock: socket.socket) -> None:
        """Send what stdin queued meanwhile, then let stdin send directly again."""
        while True:
            with self._lock:
                if not self._queue:
                    self._connected = True
                    stdin_done = self._stdin_done.is_set()
                    break
                queue = self._queue
                self._queue = []
                self._queued_bytes = 0
                for out in queue:
                    self._note_sent(out)
            for out in queue:
                self._send(sock, out.chunk)
        if stdin_done:
            self._shutdown_write(sock)

    # plumbing

    def _send(self, sock: socket.socket, data: bytes) -> None:
        with self._send_lock:
            try:
                sock.sendall(data)
            except OSError as exc:
                logger.debug("send to the daemon failed: %s", exc)

    def _shutdown_write(self, sock: socket.socket) -> None:
        with self._send_lock:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                logger.debug("socket already closed at stdin EOF")

    def _write_stdout(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            with self._stdout_lock:
                while view:
                    written = os.write(self._stdout_fd, view)
                    view = view[written:]
        except OSError as exc:
            # a broken pipe: the MCP client went away and nobody is left to read answers
            logger.debug("stdout closed: %s", exc)
            return False
        return True


def _member(message: dict[str, object] | None, name: str) -> dict[str, object] | None:
    """The JSON object `message[name]`, or None when there is none."""
    value: JsonValue = message.get(name) if message is not None else None  # pyright: ignore[reportAssignmentType]  # parsed JSON is JsonValue
    return value if isinstance(value, dict) else None


def _tool_called(message: dict[str, object]) -> str | None:
    params = _member(message, "params")
    name = params.get("name") if params is not None else None
    return name if isinstance(name, str) else None


def _parse(line: bytes) -> dict[str, object] | None:
    """The JSON object on `line`, or None for blank lines and anything else (relayed, never judged)."""
    if not line.strip():
        return None
    try:
        message: JsonValue = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def _encode(message: dict[str, object]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _error_line(request_id: RequestId, text: str) -> bytes:
    return _encode({"jsonrpc": "2.0", "id": request_id, "error": {"code": RESTARTED_CODE, "message": text}})


def run_bridge(socket_path: Path, *, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S) -> None:
    """Relay stdio to the hive socket at `socket_path` until both sides close.

    `reconnect_timeout_s` bounds how long a daemon restart may take; 0 ends the bridge instead.

    Raises:
        SocketUnavailableError: the hive socket cannot be opened, or the daemon did not come back.
    """
    Bridge(socket_path, reconnect_timeout_s=reconnect_timeout_s).run()
