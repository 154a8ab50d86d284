"""Server-sent event responses that end with the dashboard, or with their client when it falls behind.

sse-starlette's `EventSourceResponse` brings keep-alive pings, a timeout on each send (a client
that stops reading is cut off) and disconnect handling. Its own shutdown detection looks for
uvicorn's signal handlers and a process-wide flag, neither of which a daemon serving several
hives in one process (the tests do) can use; each stream here ends instead when its dashboard
stops or its client was dropped.
"""

from collections.abc import AsyncIterable
from typing import Any

import anyio
from sse_starlette import EventSourceResponse

# A keep-alive comment this often, so proxies and the browser keep an idle stream open.
PING_S = 15.0
# A send that waits longer than this (the client stopped reading) ends the stream.
SEND_TIMEOUT_S = 10.0
# How soon the browser reconnects after a stream ended.
RETRY_MS = 1_000


class HiveEventStream(EventSourceResponse):
    """An SSE response that ends when `stop` is set (the dashboard stops, or the client was dropped)."""

    def __init__(self, content: AsyncIterable[Any], *, stop: anyio.Event, also: anyio.Event | None = None) -> None:
        # sse-starlette types `content` with bare `dict`s, which strict pyright reads as partly unknown.
        super().__init__(content, ping=PING_S, send_timeout=SEND_TIMEOUT_S)  # pyright: ignore[reportUnknownMemberType]
        self._stops = (stop, also) if also is not None else (stop,)

    async def _listen_for_exit_signal_with_grace(self) -> None:
        """Return when any stop event is set; the response's task group then ends the stream."""
        async with anyio.create_task_group() as tg:

            async def wait(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            for event in self._stops:
                tg.start_soon(wait, event)
