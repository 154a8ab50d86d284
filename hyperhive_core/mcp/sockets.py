"""Serves MCP servers on unix sockets: one listener per principal, one MCP session per connection.

The socket's path is the caller's identity, so the server bound to a path is built for exactly
one principal. Re-opening a path is idempotent (the old listener and its sessions go first);
closing removes the socket file. One connection's crash is logged and closes only that connection.
"""

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup, TaskStatus
from mcp.server.mcpserver import MCPServer

from hyperhive_core.errors import HiveError
from hyperhive_core.mcp._budget import PrincipalBudget
from hyperhive_core.mcp._memory import configure_allocator
from hyperhive_core.mcp.transport import open_message_streams
from hyperhive_core.mcp.unix import UnixStream, bind_unix, serve_unix

logger = logging.getLogger(__name__)

# Connections one principal may hold open on its socket; more wait in the listen backlog. Bounds
# the descriptors and sessions one agent can cost the daemon.
MAX_CONNECTIONS_PER_SOCKET = 32


@dataclass(slots=True)
class _Listening:
    scope: anyio.CancelScope
    done: anyio.Event
    # Shared by every connection of this principal: what one agent holds and does, in all.
    budget: PrincipalBudget = field(default_factory=PrincipalBudget)


async def serve_connection(
    server: MCPServer[Any], stream: ByteStream, *, principal: PrincipalBudget | None = None
) -> None:
    """Run one MCP session of `server` over a connected stream until either side closes."""
    # The SDK has no public way to serve an MCPServer over custom streams; its own in-memory
    # client reaches for the wrapped low-level server the same way.
    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    messages = open_message_streams(stream, principal=principal)
    async with stream, messages as (read, write):
        await lowlevel.run(read, write, lowlevel.create_initialization_options())


class SocketHost:
    """Owns every MCP socket of the daemon, inside the daemon's task group."""

    def __init__(self, task_group: TaskGroup) -> None:
        configure_allocator()
        self._tg = task_group
        self._listening: dict[Path, _Listening] = {}

    @property
    def paths(self) -> list[Path]:
        """Every socket being served."""
        return list(self._listening)

    async def open(self, path: Path, server: MCPServer[Any], *, label: str, mode: int = 0o600) -> None:
        """Serve `server` on `path`, replacing whatever was served there.

        Raises:
            HiveError: the socket cannot be bound.
        """
        await self.close(path)
        # Every dir this creates (the run dir's agents/ too) is the daemon user's alone; the socket
        # dir is tightened even when it was left by an earlier daemon or made by a backend.
        for missing in reversed([p for p in (path.parent, *path.parent.parents) if not p.exists()]):
            await anyio.Path(missing).mkdir(mode=0o700, exist_ok=True)
        await anyio.Path(path.parent).chmod(0o700)
        # A file left by a daemon that was killed: nothing listens on it any more.
        await anyio.Path(path).unlink(missing_ok=True)
        try:
            sock = bind_unix(path)
        except OSError as exc:
            raise HiveError(f"cannot listen on {path}: {exc}") from exc
        os.chmod(path, mode)
        entry = _Listening(scope=anyio.CancelScope(), done=anyio.Event())
        self._listening[path] = entry
        await self._tg.start(self._serve, sock, server, label, entry)

    def budget_of(self, path: Path) -> PrincipalBudget | None:
        """What the principal served on `path` holds now over all its connections (None: not served)."""
        entry = self._listening.get(path)
        return None if entry is None else entry.budget

    async def close(self, path: Path) -> None:
        """Stop serving `path`, end its live sessions and remove the socket file."""
        entry = self._listening.pop(path, None)
        if entry is not None:
            entry.scope.cancel()
            await entry.done.wait()
        await anyio.Path(path).unlink(missing_ok=True)

    async def close_all(self) -> None:
        """Close every socket."""
        for path in list(self._listening):
            await self.close(path)

    async def _serve(
        self,
        sock: socket.socket,
        server: MCPServer[Any],
        label: str,
        entry: _Listening,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        budget = entry.budget

        async def handle(stream: UnixStream) -> None:
            try:
                await serve_connection(server, stream, principal=budget)
            except Exception:
                logger.exception("MCP session for %s crashed", label)

        try:
            with entry.scope:
                async with anyio.create_task_group() as connections:
                    task_status.started()
                    await serve_unix(sock, handle, connections, max_connections=MAX_CONNECTIONS_PER_SOCKET)
        finally:
            entry.done.set()
