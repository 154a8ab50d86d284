"""An agent's `agent.log`: what it writes on stdout and stderr, bounded in bytes and in rate.

The agent writes into a pipe the daemon reads; the daemon appends to the file, rotating it at
`MAX_LOG_BYTES` (one old file kept), and reads at most `BYTES_PER_S` a second after a burst of
`BURST_BYTES`. An agent that writes faster is not dropped from: its writes block on the full pipe,
so a flood slows the flooder, costs the daemon a bounded rate, and can never fill the disk.
"""

import logging
import time
from pathlib import Path
from typing import BinaryIO

import anyio
from anyio.abc import ByteReceiveStream, Process

logger = logging.getLogger(__name__)

MAX_LOG_BYTES = 4 * 1024 * 1024
BYTES_PER_S = 256 * 1024
BURST_BYTES = 1024 * 1024
READ_BYTES = 64 * 1024
# How long closing waits for an agent's pipes and exit once its output ended.
CLOSE_WAIT_S = 5.0


class AgentLog:
    """The file an agent's output goes to: appended, rotated at `max_bytes`, one old file kept."""

    def __init__(self, path: Path, *, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file = path.open("ab")
        self._size = self._file.tell()
        # While a pump copies into it, the pump closes it at its end.
        self.pumping = False

    @property
    def file(self) -> BinaryIO:
        """The open file, for a child that writes into it directly (no daemon task group to pump)."""
        return self._file

    def write(self, data: bytes) -> None:
        """Append `data`, rotating first when it would take the file past its limit."""
        if self._size and self._size + len(data) > self.max_bytes:
            self._file.close()
            self.path.replace(self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("ab")
            self._size = 0
        self._file.write(data[: self.max_bytes])
        self._file.flush()
        self._size += min(len(data), self.max_bytes)

    def close(self) -> None:
        """Close the file; the agent's output after this is not kept. Safe to call twice."""
        self._file.close()

    async def pump(
        self,
        output: ByteReceiveStream,
        *,
        process: Process | None = None,
        bytes_per_s: float = BYTES_PER_S,
        burst: int = BURST_BYTES,
    ) -> None:
        """Copy `output` into the file until it ends, at most `bytes_per_s` after a `burst`; then close
        the file (and `process`'s pipes, once it exited)."""
        self.pumping = True
        tokens = float(burst)
        at = time.monotonic()
        try:
            while True:
                if tokens < 1:
                    # Backpressure: the agent's writes block on the full pipe meanwhile.
                    await anyio.sleep((1 - tokens) / bytes_per_s)
                now = time.monotonic()
                tokens = min(float(burst), tokens + (now - at) * bytes_per_s)
                at = now
                try:
                    data = await output.receive(min(READ_BYTES, max(1, int(tokens))))
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                tokens -= len(data)
                try:
                    self.write(data)
                except (OSError, ValueError):
                    logger.warning("cannot write %s; the agent's output is dropped", self.path, exc_info=True)
                    return
        finally:
            # shielded and bounded: a daemon shutting down still closes what the agent's output held.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_WAIT_S):
                await output.aclose()
                if process is not None:
                    await process.aclose()
            self.close()
