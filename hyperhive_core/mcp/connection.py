"""The MCP connection a tool call arrived on, for state that must end with that connection.

The SDK enters a server's lifespan once per connection it serves (`Server.run`), and hands what it
yields to every request of that connection as `ctx.request_context.lifespan_context`. So the
lifespan of our servers is the connection: `connection_lifespan` makes a `Connection` for it, a
tool reads it with `connection_of(ctx)`, and callbacks registered with `on_close` run, shielded and
bounded, when it ends.
"""

import itertools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import Context

logger = logging.getLogger(__name__)

CLOSE_GRACE_S = 10.0
_ids = itertools.count(1)


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


@asynccontextmanager
async def connection_lifespan(_server: object) -> AsyncGenerator[Connection]:
    """A server's lifespan, entered once per connection: that connection's state, closed with it."""
    connection = Connection()
    try:
        yield connection
    finally:
        await connection.aclose()


def connection_of(ctx: Context[Connection, Any]) -> Connection:
    """The connection the running tool call came in on."""
    return ctx.request_context.lifespan_context
