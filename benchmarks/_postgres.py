"""The PostgreSQL rows: throughput of 1, 2 and 4 daemons sharing one database, and a wake-up across daemons.

The server is a real one (Debian's), started in a temp dir by `tests.postgres` with fsync on, as
a production server runs; every daemon is a real `Daemon` child on its own run and state dirs.
Cross-daemon delivery is measured at the broker (two stores with their listeners in one process,
a `send` through one and a waiting `recv` on the other), beside the same on one store: what
NOTIFY adds. The store's own rate (`store_rate`: batches appended straight to `PgStore`s, no MCP,
no daemon) says what the engine can commit here, beside what the daemons reach through MCP.
"""

import functools
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

import anyio

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.listener import listen_for_messages
from hyperhive_core.broker.postgres import PgStore, open_pg_store
from hyperhive_core.broker.storage import AppendRequest
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


async def _store_rate(url: str, stores: int, writers: int, batch: int, seconds: float) -> tuple[int, float]:
    """Messages committed (durably) by `stores` stores, each with `writers` tasks appending `batch` at a time."""
    sent = 0
    stop = anyio.Event()

    async def write(store: PgStore, w: int) -> None:
        nonlocal sent
        while not stop.is_set():
            requests = [
                AppendRequest(f"w{w}", f"r{w}", "x" * 64, None, now=time.time(), max_depth=10**9) for _ in range(batch)
            ]
            await store.append_many(requests)
            sent += batch

    async with AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(open_pg_store(url, pool_size=writers)) for _ in range(stores)]
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for s, store in enumerate(opened):
                for k in range(writers):
                    tg.start_soon(write, store, s * writers + k)
            await anyio.sleep(seconds)
            stop.set()
        elapsed = time.perf_counter() - start
    return sent, elapsed


def store_rate(server: PgServer, *, stores: int, writers: int, batch: int, seconds: float) -> tuple[int, float]:
    """The PostgreSQL store's own rate, no MCP and no daemon: what the engine can commit on this machine."""
    return anyio.run(functools.partial(_store_rate, server.new_database(), stores, writers, batch, seconds))
