"""`hive-agent serve`: the turn loop, `recv` -> driver -> repeat, for as long as the agent runs.

The loop outlives the daemon: a lost or missing socket is retried with capped backoff and logged
once per outage. `stop()` is safe from a signal handler and ends the loop promptly, even while
blocked in a long `recv`, by shutting the socket under it.
"""

import ctypes
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hyperhive_agent.client import McpClient
from hyperhive_agent.drivers import Driver
from hyperhive_agent.errors import ConnectionLostError, ProtocolError, SocketUnavailableError, ToolCallError
from hyperhive_agent.tools import HiveTools

logger = logging.getLogger(__name__)

RECV_TIMEOUT_S = 30.0
RECV_MAX_MESSAGES = 10
BACKOFF_START_S = 0.05
BACKOFF_CAP_S = 1.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """How the turn loop talks to the hive."""

    socket_path: Path
    recv_timeout_s: float = RECV_TIMEOUT_S
    recv_max_messages: int = RECV_MAX_MESSAGES


class TurnLoop:
    """Feeds each batch from `recv` to a driver, reconnecting whenever the hive goes away."""

    def __init__(self, config: LoopConfig, driver: Driver) -> None:
        self.config = config
        self.driver = driver
        self._stopping = threading.Event()
        self._client: McpClient | None = None

    def run(self) -> None:
        """Serve turns until `stop()` is called."""
        backoff_s = BACKOFF_START_S
        outage: str | None = None
        while not self._stopping.is_set():
            client = McpClient(self.config.socket_path)
            # published before the handshake so stop() can break a hung connect too
            self._client = client
            try:
                client.open()
                if outage is not None:
                    logger.info("reconnected to the hive at %s", self.config.socket_path)
                    outage = None
                backoff_s = BACKOFF_START_S
                self._serve(HiveTools(client))
            except (SocketUnavailableError, ConnectionLostError, ProtocolError) as exc:
                if self._stopping.is_set():
                    break
                if outage is None:
                    outage = str(exc)
                    logger.warning("%s; retrying until the hive is back", exc)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_CAP_S)
            finally:
                self._client = None
                client.close()
        logger.info("turn loop stopped")

    def stop(self) -> None:
        """End the loop as soon as possible; safe to call from a signal handler."""
        self._stopping.set()
        client = self._client
        if client is not None:
            client.abort()

    def _serve(self, tools: HiveTools) -> None:
        while not self._stopping.is_set():
            try:
                batch = tools.recv(self.config.recv_timeout_s, self.config.recv_max_messages)
            except ToolCallError as exc:
                # a refused recv will be refused again at once: wait like an outage, not a busy loop
                logger.error("recv refused: %s", exc.text)
                self._stopping.wait(BACKOFF_CAP_S)
                continue
            if not batch.messages:
                continue
            try:
                self.driver.run_turn(batch.messages, tools)
            except ToolCallError as exc:
                logger.warning("turn ended early, a tool call was refused: %s", exc)


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM us when our parent dies; exit at once if it already has.

    Quietly does nothing where `prctl` is unavailable.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        # the parent died before prctl took effect, so no signal will ever come
        logger.warning("parent %d is gone; exiting", parent_pid)
        raise SystemExit(0)


def run_serve(config: LoopConfig, driver: Driver) -> None:
    """Run the turn loop in the main thread until SIGTERM or SIGINT."""
    loop = TurnLoop(config, driver)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("got %s, stopping", signal.Signals(signum).name)
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info("serving %s with the %s driver", config.socket_path, driver.name)
    loop.run()
