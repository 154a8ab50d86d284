"""The PostgreSQL rows: throughput of 1, 2 and 4 daemons sharing one database, and a wake-up across daemons.

The server is a real one (Debian's), started in a temp dir by `tests.postgres` with fsync on, as
a production server runs; every daemon is a real `Daemon` child on its own run and state dirs.
Cross-daemon delivery is measured at the broker (two stores with their listeners in one process,
a `send` through one and a waiting `recv` on the other), beside the same on one store: what
NOTIFY adds. Sends between agents of different daemons through their sockets need placement
(issue 15, step 3), which is not built yet.
"""

import functools
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager

import anyio

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.listener import listen_for_messages
from hyperhive_core.broker.postgres import open_pg_store
from tests.postgres import PgServer, postgres_bin, running_postgres

DAEMONS = (1, 2, 4)


async def _wake_samples(url: str, n: int, *, across: bool) -> list[float]:
    """`n` times: a recv waits, a send is made; the time from the send's call to the recv's return."""

    @asynccontextmanager
    async def daemon() -> AsyncGenerator[Broker]:
        async with open_pg_store(url) as store, anyio.create_task_group() as tg:
            broker = Broker(store, max_inbox_depth=10**9)
            await tg.start(functools.partial(listen_for_messages, url, store, broker, recheck_s=600))
            yield broker
            tg.cancel_scope.cancel()

    samples: list[float] = []
    async with daemon() as a, daemon() as b:
        reader = b if across else a
        for i in range(n):
            returned: list[float] = []
            start = 0.0

            async def wait(returned: list[float] = returned) -> None:
                await reader.recv("wake", timeout_s=10, limit=1)
                returned.append(time.perf_counter())

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.wait_all_tasks_blocked()
                start = time.perf_counter()
                await a.send("bench", "wake", f"ping {i}")
            samples.append(returned[0] - start)
    return samples


def wake_samples(server: PgServer, n: int) -> tuple[list[float], list[float]]:
    """Wake-up times on one store, then across two (each on a fresh database)."""
    same = anyio.run(functools.partial(_wake_samples, server.new_database(), n, across=False))
    across = anyio.run(functools.partial(_wake_samples, server.new_database(), n, across=True))
    return same, across


@contextmanager
def durable_server() -> Generator[PgServer | None]:
    """A PostgreSQL server with fsync on, or None when PostgreSQL is not installed here."""
    bindir = postgres_bin()
    if bindir is None:
        yield None
        return
    with running_postgres(bindir, durable=True) as server:
        yield server
