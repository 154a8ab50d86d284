"""Server-sent event responses that end with the dashboard, or with their client when it falls behind.

sse-starlette's `EventSourceResponse` brings keep-alive pings, a timeout on each send (a client
that stops reading is cut off) and disconnect handling. Its own shutdown detection looks for
uvicorn's signal handlers and a process-wide flag, neither of which a daemon serving several
hives in one process (the tests do) can use; each stream here ends instead when its dashboard
stops or its client was dropped.
"""

import logging
from collections.abc import AsyncIterable
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

# A keep-alive comment this often, so proxies and the browser keep an idle stream open.
PING_S = 15.0
# A send that waits longer than this (the client stopped reading) ends the stream.
SEND_TIMEOUT_S = 10.0
# How soon the browser reconnects after a stream ended.
RETRY_MS = 1_000
# After the dashboard stops, how long a stream may take to end by itself before it is cut.
STOP_GRACE_S = 1.0


class StreamCount:
    """How many SSE streams are open, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    @property
    def full(self) -> bool:
        """Whether no more streams may open now."""
        return self.open >= self.limit


class HiveEventStream(EventSourceResponse):
    """An SSE response whose content ends by itself when the dashboard stops (its feeds close), and
    which is cut if it has not `STOP_GRACE_S` after `stop`; a client that stops reading is cut after
    `SEND_TIMEOUT_S`."""

    def __init__(self, content: AsyncIterable[Any], *, stop: anyio.Event, count: StreamCount) -> None:
        # sse-starlette types `content` with bare `dict`s, which strict pyright reads as partly unknown.
        super().__init__(content, ping=PING_S, send_timeout=SEND_TIMEOUT_S)  # pyright: ignore[reportUnknownMemberType]
        self._stop = stop
        self._count = count

    async def _listen_for_exit_signal_with_grace(self) -> None:
        """Return (and so cut the stream) a grace period after `stop`, unless the stream ended first."""
        await self._stop.wait()
        await anyio.sleep(STOP_GRACE_S)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream; a client that stopped reading is dropped quietly (it replays when it is back)."""
        self._count.open += 1
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.info("a dashboard client stopped reading its stream for %g s; dropped", SEND_TIMEOUT_S)
        finally:
            self._count.open -= 1
