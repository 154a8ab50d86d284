"""`hive-agent mcp`: relays MCP's newline-delimited JSON-RPC between stdio and the agent's hive socket.

Bytes pass through untouched; a thread pumps stdin->socket while the main thread pumps
socket->stdout. Stdin EOF half-closes the socket so answers still in flight reach stdout; socket
EOF ends the bridge. Standard library only: claude starts one bridge per session.
"""

import logging
import os
import socket
import threading
from pathlib import Path

from hyperhive_agent._unix import connect_unix

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
STDIN_FD = 0
STDOUT_FD = 1


class Bridge:
    """One stdio <-> unix-socket relay.

    `_socket_closed` is the seam for surviving a daemon restart: today it ends the relay; later it
    can reconnect and replay the client's `initialize` before pumping resumes.
    """

    def __init__(self, socket_path: Path, *, stdin_fd: int = STDIN_FD, stdout_fd: int = STDOUT_FD) -> None:
        self.socket_path = socket_path
        self._stdin_fd = stdin_fd
        self._stdout_fd = stdout_fd
        self._sock: socket.socket | None = None

    def run(self) -> None:
        """Relay until the server closes the connection or stdout goes away.

        Raises:
            SocketUnavailableError: the hive socket cannot be opened.
        """
        self._sock = connect_unix(self.socket_path)
        try:
            # daemon: a thread blocked reading an open stdin must not keep the process alive
            threading.Thread(target=self._pump_stdin, name="stdin->socket", daemon=True).start()
            self._pump_socket()
        finally:
            self._sock.close()

    def _pump_stdin(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while data := os.read(self._stdin_fd, CHUNK_BYTES):
                sock.sendall(data)
        except OSError as exc:
            # the server hung up first; the socket pump sees EOF and ends the bridge
            logger.debug("stdin->socket stopped: %s", exc)
            return
        try:
            # half-close: the server sees EOF, finishes what it owes us, then closes its side
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            logger.debug("socket already closed at stdin EOF")

    def _pump_socket(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(CHUNK_BYTES)
            except OSError as exc:
                logger.debug("socket->stdout stopped: %s", exc)
                data = b""
            if not data:
                if self._socket_closed():
                    continue
                return
            if not self._write_stdout(data):
                return

    def _socket_closed(self) -> bool:
        """Decide what a closed server side means: True to keep pumping on a new connection."""
        return False

    def _write_stdout(self, data: bytes) -> bool:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._stdout_fd, view)
                view = view[written:]
        except OSError as exc:
            # a broken pipe: the MCP client went away and nobody is left to read answers
            logger.debug("stdout closed: %s", exc)
            return False
        return True


def run_bridge(socket_path: Path) -> None:
    """Relay stdio to the hive socket at `socket_path` until either side closes.

    Raises:
        SocketUnavailableError: the hive socket cannot be opened.
    """
    Bridge(socket_path).run()
