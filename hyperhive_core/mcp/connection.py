"""The MCP connection a tool call arrived on, for state that must end with that connection.

`serve_connection` opens one `Connection` per accepted socket and sets it in a context variable;
the SDK runs every request of the session in tasks started inside it, so a tool reads it with
`current_connection()`. Callbacks registered with `on_close` run, shielded, when it ends.
"""

import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

import anyio

logger = logging.getLogger(__name__)

CLOSE_GRACE_S = 10.0
_ids = itertools.count(1)
_current: ContextVar["Connection | None"] = ContextVar("hyperhive_connection", default=None)


class Connection:
    """One client connection to one principal's socket."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self.state: dict[str, object] = {}

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` when the connection ends, however it ends."""
        self._on_close.append(callback)

    async def aclose(self) -> None:
        """Run the close callbacks, newest first."""
        # shielded and bounded: a daemon being cancelled must still hand back what the session held.
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_GRACE_S):
            for callback in reversed(self._on_close):
                try:
                    await callback()
                except Exception:
                    logger.exception("cleanup of connection %d failed", self.id)


def current_connection() -> Connection | None:
    """The connection the running tool call came in on; None outside a served connection."""
    return _current.get()


@asynccontextmanager
async def open_connection() -> AsyncGenerator[Connection]:
    """A connection for the duration of the block; its close callbacks run on exit."""
    connection = Connection()
    token = _current.set(connection)
    try:
        yield connection
    finally:
        _current.reset(token)
        await connection.aclose()
