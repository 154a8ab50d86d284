"""Wake-ups across daemons on one PostgreSQL database: one LISTEN connection per daemon, and a re-check.

A commit that stores messages notifies `postgres.CHANNEL` once per recipient; each daemon's
listener wakes that recipient's waiting `recv` (which then claims from the database). A
notification is only a hint: after every (re)connect, and every `RECHECK_S` while connected, the
listener re-reads every queue's length and wakes whoever has more waiting than it knew, so a lost
notification (or one sent while this daemon was reconnecting) delays a message by at most that
long, never loses it. The same re-check takes back the leases a down host held on this host's
agents (`PgStore.adopt_orphans`).
"""

import logging
import time

import anyio
import psycopg
from anyio.abc import TaskStatus

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.dburl import shown
from hyperhive_core.broker.placement import DOWN_AFTER_S
from hyperhive_core.broker.postgres import CHANNEL, CONNECT_TIMEOUT_S, PgStore
from hyperhive_core.errors import StorageError

logger = logging.getLogger(__name__)

RECHECK_S = 1.0
# Waits between attempts to reconnect, growing to the last.
RECONNECT_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)


async def listen_for_messages(
    conninfo: str,
    store: PgStore,
    broker: Broker,
    *,
    recheck_s: float = RECHECK_S,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Wake the recipients of what other daemons commit, until cancelled; ready once it listens.

    Raises:
        StorageError: the first connection failed (later ones are retried, with a warning).
    """
    failures = 0
    started = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
            )
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                if failures:
                    logger.info("listening for the hive's messages again on %s", shown(conninfo))
                failures = 0
                # Whatever was committed while nobody listened.
                await _recheck(store, broker)
                if not started:
                    started = True
                    task_status.started()
                while True:
                    async for note in conn.notifies(timeout=recheck_s):
                        origin, _, recipient = note.payload.partition(" ")
                        if origin != store.store_id and recipient:
                            await store.recount(recipient)
                            broker.wake(recipient)
                            broker.note_commit()  # the dashboard's message feed reads it too
                    await _recheck(store, broker)
            finally:
                # shielded: a cancelled listener must still close its connection (not leave it to the GC)
                with anyio.CancelScope(shield=True):
                    await conn.close()
        except (psycopg.OperationalError, StorageError) as exc:
            if not started:
                raise StorageError(f"cannot listen for the hive's messages on {shown(conninfo)}: {exc}") from exc
            delay = RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)]
            failures += 1
            logger.warning("lost the connection that listens for the hive's messages (%s); again in %.1f s", exc, delay)
            await anyio.sleep(delay)


async def _recheck(store: PgStore, broker: Broker) -> None:
    # First what a down host's daemon held of this host's agents (it will never acknowledge it).
    for recipient in await store.adopt_orphans(now=time.time(), down_after_s=DOWN_AFTER_S):
        broker.wake(recipient)
    for recipient in await store.recheck():
        broker.wake(recipient)
