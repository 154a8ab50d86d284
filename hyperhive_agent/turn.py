"""`hive-agent serve`: the turn loop, `recv` -> driver -> repeat, for as long as the agent runs.

The loop outlives the daemon: a lost or missing socket is retried with capped backoff and logged
once per outage. A turn that fails (claude hung or crashed) is logged and reported as a
`turn_error` event, and the loop goes on with the next batch. `stop()` is safe from a signal
handler and ends the loop promptly, even while blocked in a long `recv` or a claude run.
"""

import ctypes
import dataclasses
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from hyperhive_agent import wire
from hyperhive_agent.client import McpClient
from hyperhive_agent.drivers import Driver
from hyperhive_agent.errors import (
    ConnectionLostError,
    ProtocolError,
    SocketUnavailableError,
    ToolCallError,
    TurnFailedError,
)
from hyperhive_agent.events import EventLog, JsonObject, hive_event
from hyperhive_agent.tools import Batch, HiveTools, Message

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

    def __init__(self, config: LoopConfig, driver: Driver, events: EventLog | None = None) -> None:
        self.config = config
        self.driver = driver
        # events emitted before the first connection (the driver choice) wait in here for it
        self.events = events or EventLog()
        self._stopping = threading.Event()
        self._client: McpClient | None = None
        self._turns = 0
        # The last message id whose turn finished; 0 asks for cursor-acknowledged delivery from the start.
        self._cursor = 0

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
                tools = HiveTools(client)
                self.events.bind(tools)
                self.events.flush()
                self._serve(tools)
            except (SocketUnavailableError, ConnectionLostError, ProtocolError) as exc:
                if self._stopping.is_set():
                    break
                if outage is None:
                    outage = str(exc)
                    logger.warning("%s; retrying until the hive is back", exc)
                self._stopping.wait(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_CAP_S)
            finally:
                self.events.bind(None)
                self._client = None
                client.close()
        logger.info("turn loop stopped")

    def stop(self) -> None:
        """End the loop as soon as possible; safe to call from a signal handler."""
        self._stopping.set()
        self.driver.cancel()
        client = self._client
        if client is not None:
            client.abort()

    def _serve(self, tools: HiveTools) -> None:
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            try:
                # Named: after a reconnect (a daemon restart) what this loop held comes back to it, and
                # its cursor acknowledges only what it was handed itself.
                batch = tools.recv(
                    self.config.recv_timeout_s,
                    self.config.recv_max_messages,
                    after=self._cursor,
                    reader=wire.TURN_LOOP_READER,
                )
            except ToolCallError as exc:
                # a refused recv will be refused again at once: wait like an outage, not a busy loop
                logger.error("recv refused: %s", exc.text)
                self._stopping.wait(BACKOFF_CAP_S)
                continue
            if not batch.messages:
                self.driver.rest(time.monotonic() - idle_since)
                continue
            self._turn(_with_sent_before(batch), tools)
            idle_since = time.monotonic()
            # Finished, even if it failed (a turn that failed would fail again): the next recv
            # acknowledges it. A turn cut short by a lost connection never gets here, so the
            # daemon hands its messages out again.
            self._cursor = max(self._cursor, *(m.id for m in batch.messages))

    def _turn(self, messages: tuple[Message, ...], tools: HiveTools) -> None:
        self._turns += 1
        turn = self._turns
        driver = self.driver.name
        ids = [m.id for m in messages]
        senders = ", ".join(sorted({m.sender for m in messages}))
        self.events.emit(
            hive_event(
                "turn_start",
                f"turn {turn}: {len(ids)} message(s) from {senders}",
                turn=turn,
                driver=driver,
                message_ids=ids,
            )
        )
        started = time.monotonic()
        outcome: JsonObject
        try:
            self.driver.run_turn(messages, tools, self.events)
        except TurnFailedError as exc:
            logger.error("turn %d failed: %s", turn, exc.reason)
            outcome = hive_event("turn_error", exc.reason, turn=turn, driver=self.driver.name)
        except ToolCallError as exc:
            logger.warning("turn %d ended early, a tool call was refused: %s", turn, exc)
            outcome = hive_event("turn_error", str(exc), turn=turn, driver=self.driver.name)
        else:
            outcome = hive_event("turn_end", f"turn {turn} done", turn=turn, driver=self.driver.name)
        outcome["duration_ms"] = round((time.monotonic() - started) * 1000)
        self.events.emit(outcome)
        self.events.flush()


def _with_sent_before(batch: Batch) -> tuple[Message, ...]:
    """The batch's messages, each one handed out again carrying what was sent since it first came."""
    if not batch.already_sent:
        return batch.messages
    return tuple(
        dataclasses.replace(m, sent_before=tuple(s for s in batch.already_sent if s.id > m.id))
        if m.deliveries > 1
        else m
        for m in batch.messages
    )


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


def run_serve(config: LoopConfig, driver: Driver, events: EventLog | None = None) -> None:
    """Run the turn loop in the main thread until SIGTERM or SIGINT."""
    loop = TurnLoop(config, driver, events)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("got %s, stopping", signal.Signals(signum).name)
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info("serving %s", config.socket_path)
    loop.run()
