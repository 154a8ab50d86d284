"""Where each agent runs, when the daemons of several hosts share one PostgreSQL database.

Each daemon publishes its host and its agents every `HEARTBEAT_S` (`publish`); a `send` to an
agent this daemon does not run asks here which host does (`host_of`), and the message is stored
for it like any other: its own daemon's listener wakes its `recv`. A name stays with the host that
placed it while that host heart-beats; a host silent for `DOWN_AFTER_S` is down, and another host
that runs an agent of that name takes it over.
"""

import logging
import time
from collections.abc import Callable, Sequence
from typing import LiteralString

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hyperhive_core.broker.postgres import pg_storage_error
from hyperhive_core.broker.storage import Placed
from hyperhive_core.errors import HiveError

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
# How often the agents' names (in memory) are compared with what was last published.
CHANGE_CHECK_S = 0.05
DOWN_AFTER_S = 10.0
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS daemon_host (host text PRIMARY KEY, heartbeat_at double precision NOT NULL)",
    "CREATE TABLE IF NOT EXISTS placement (name text PRIMARY KEY, host text NOT NULL, "
    "heartbeat_at double precision NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_placement_host ON placement (host)",
)


class Placement:
    """The shared table of hosts and their agents, as one daemon (`host`) sees and writes it."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[TupleRow]], host: str) -> None:
        self._pool = pool
        self.host = host

    async def create(self) -> None:
        """Create the tables if they are missing.

        Raises:
            StorageError: the server refused.
        """
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.connection() as conn, conn.transaction():
                    found = await (
                        await conn.execute("SELECT to_regclass('daemon_host'), to_regclass('placement')")
                    ).fetchone()
                    if found is not None and None not in found:
                        return  # as in create_schema: a daemon's role may not touch the schema
                    for statement in SCHEMA:
                        await conn.execute(statement.encode())
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc

    async def publish(self, names: Sequence[str], *, now: float) -> list[str]:
        """Say this host is up and runs `names` (and no other agent); returns the names another live host holds.

        Raises:
            StorageError: the server refused.
        """
        wanted = sorted(set(names))
        placed: list[TupleRow] = []
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.connection() as conn, conn.transaction():
                    await conn.execute(
                        "INSERT INTO daemon_host (host, heartbeat_at) VALUES (%s, %s) "
                        "ON CONFLICT (host) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
                        (self.host, now),
                    )
                    await conn.execute(
                        "DELETE FROM placement WHERE host = %s AND NOT (name = ANY(%s::text[]))", (self.host, wanted)
                    )
                    # Take a name over only from a host that stopped heart-beating.
                    placed = await (
                        await conn.execute(
                            "INSERT INTO placement (name, host, heartbeat_at) "
                            "SELECT n, %s, %s FROM unnest(%s::text[]) n ON CONFLICT (name) "
                            "DO UPDATE SET host = EXCLUDED.host, heartbeat_at = EXCLUDED.heartbeat_at "
                            "WHERE placement.host = EXCLUDED.host OR placement.heartbeat_at < %s RETURNING name",
                            (self.host, now, wanted, now - DOWN_AFTER_S),
                        )
                    ).fetchall()
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc
        return sorted(set(wanted) - {str(row[0]) for row in placed})

    async def place(self, names: Sequence[str]) -> None:
        """Publish `names` as this host's agents now (see `publish`), ahead of the next heartbeat.

        Raises:
            StorageError: the server refused.
        """
        await self.publish(names, now=time.time())

    async def host_of(self, name: str) -> str | None:
        """The live host that runs `name`, or None (no host does, or its host is down).

        Raises:
            StorageError: the server refused.
        """
        rows = await self._fetch(
            "SELECT p.host FROM placement p JOIN daemon_host d ON d.host = p.host "
            "WHERE p.name = %s AND d.heartbeat_at >= %s",
            (name, time.time() - DOWN_AFTER_S),
        )
        return str(rows[0][0]) if rows else None

    async def everyone(self) -> list[Placed]:
        """Every placed agent of every host, by name.

        Raises:
            StorageError: the server refused.
        """
        rows = await self._fetch(
            "SELECT p.name, p.host, coalesce(d.heartbeat_at, 0) >= %s FROM placement p "
            "LEFT JOIN daemon_host d ON d.host = p.host ORDER BY p.name",
            (time.time() - DOWN_AFTER_S,),
        )
        return [Placed(str(name), str(host), bool(up)) for name, host, up in rows]

    async def hosts(self) -> dict[str, bool]:
        """Every host that ever heart-beat, and whether it is up.

        Raises:
            StorageError: the server refused.
        """
        rows = await self._fetch("SELECT host, heartbeat_at >= %s FROM daemon_host", (time.time() - DOWN_AFTER_S,))
        return {str(host): bool(up) for host, up in rows}

    async def _fetch(self, statement: LiteralString, params: tuple[object, ...]) -> list[TupleRow]:
        rows: list[TupleRow] = []
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.connection() as conn:
                    rows = await (await conn.execute(statement, params)).fetchall()
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc
        return rows


async def heartbeat(placement: Placement, names: Callable[[], Sequence[str]]) -> None:
    """Publish this host's agents every `HEARTBEAT_S`, and within `CHANGE_CHECK_S` of a change to them
    (a spawned agent can send once placed), until cancelled; a failed beat is logged and retried."""
    warned: set[str] = set()
    published: list[str] | None = None
    failing = False
    due = 0.0
    while True:
        current = sorted(names())
        # After a failure, the next try waits for the beat: no hammering of a database that is down.
        if (current != published and not failing) or anyio.current_time() >= due:
            try:
                taken = await placement.publish(current, now=time.time())
            except HiveError as exc:
                failing = True
                logger.warning("could not publish this host's agents (%s); trying again", exc)
            else:
                failing = False
                published = current
                for name in set(taken) - warned:
                    logger.warning("agent %s runs here but is placed on another live host; messages go there", name)
                warned = set(taken)
            due = anyio.current_time() + HEARTBEAT_S
        await anyio.sleep(CHANGE_CHECK_S)
