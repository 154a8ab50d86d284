"""Unix stream sockets as anyio byte streams, built on `anyio.wait_readable`/`wait_writable`.

Why not `anyio.create_unix_listener`/`connect_unix`: on asyncio, anyio's raw-socket UNIX streams
register `future.set_result` as a selector callback, so a read cancelled in the same loop turn in
which its socket becomes readable (a daemon stopping just as a client hangs up) raises
`InvalidStateError` inside the event loop (same family as anyio issue #1267). `wait_readable`
guards that case, so these streams never do.
"""

import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import ByteStream, TaskGroup

logger = logging.getLogger(__name__)

LISTEN_BACKLOG = 512
ACCEPT_RETRY_S = 0.1
CONNECT_TIMEOUT_S = 5.0
RECEIVE_BYTES = 65536


class UnixStream(ByteStream):
    """A connected unix stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        # How long `send` waits for a peer that takes no bytes; None: as long as it takes.
        self.stall_timeout_s: float | None = None

    @property
    def extra_attributes(self) -> dict[Any, Callable[[], Any]]:
        """No typed attributes: the peer of a unix socket is known from the listening path."""
        return {}

    async def receive(self, max_bytes: int = RECEIVE_BYTES) -> bytes:
        """Receive at least one byte; raise `EndOfStream` when the peer closed its side."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                data = self._sock.recv(max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
                continue
            except OSError as exc:
                raise (anyio.ClosedResourceError() if self._closed else anyio.BrokenResourceError()) from exc
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        """Send every byte of `item`.

        Raises:
            TimeoutError: the peer took no bytes for `stall_timeout_s` (when set).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(item)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                # The timer is armed only here, when the peer's buffer is full: the common send,
                # taken whole by the kernel at once, costs no timer at all.
                with anyio.fail_after(self.stall_timeout_s):
                    await anyio.wait_writable(self._sock)
                continue
            except OSError as exc:
                raise (anyio.ClosedResourceError() if self._closed else anyio.BrokenResourceError()) from exc
            view = view[sent:]

    async def send_eof(self) -> None:
        """Half-close: the peer reads EOF, we can still receive."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def aclose(self) -> None:
        """Close the socket, waking any task that waits on it."""
        if not self._closed:
            self._closed = True
            anyio.notify_closing(self._sock)
            self._sock.close()
        await anyio.lowlevel.checkpoint()


async def connect_unix(path: Path) -> UnixStream:
    """Connect to a listening unix socket.

    Raises:
        OSError: FileNotFoundError, ConnectionRefusedError or PermissionError as the kernel says.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            # The listener's backlog is full: wait for room, then learn how the connect ended.
            with anyio.fail_after(CONNECT_TIMEOUT_S):
                await anyio.wait_writable(sock)
            if code := sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError(code, errno.errorcode.get(code, "connect failed"), str(path)) from None
    except BaseException:
        sock.close()
        raise
    return UnixStream(sock)


def bind_unix(path: Path) -> socket.socket:
    """Bind and listen on `path` (which must not exist)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_unix(
    sock: socket.socket,
    handler: Callable[[UnixStream], Coroutine[Any, Any, None]],
    task_group: TaskGroup,
    *,
    max_connections: int | None = None,
) -> None:
    """Accept connections on a bound socket forever, one `handler` task each; closes the socket on exit.

    At most `max_connections` (when given) are served at once; past that, new connections wait in
    the kernel's listen backlog, costing the daemon no descriptor, until one closes.
    """
    slots = anyio.Semaphore(max_connections if max_connections is not None else 2**31)

    async def run(conn: socket.socket) -> None:
        try:
            stream = UnixStream(conn)
            async with stream:
                await handler(stream)
        finally:
            slots.release()

    try:
        while True:
            await slots.acquire()
            try:
                conn = await _accept(sock)
            except BaseException:
                slots.release()
                raise
            task_group.start_soon(run, conn)
    finally:
        anyio.notify_closing(sock)
        sock.close()


async def _accept(sock: socket.socket) -> socket.socket:
    while True:
        await anyio.wait_readable(sock)
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            continue
        except OSError as exc:
            # Out of file descriptors: keep the listener, let a connection close first.
            logger.warning("cannot accept a connection: %s", exc)
            await anyio.sleep(ACCEPT_RETRY_S)
            continue
        return conn
