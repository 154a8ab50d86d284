"""The broker's PostgreSQL engine: one database the daemons of several hosts share.

The message hot path runs on psycopg 3's async connections from a pool, so claims of different
recipients (and of one recipient by several daemons) run side by side: a claim locks the rows it
takes with `FOR UPDATE SKIP LOCKED`, never waiting for, nor taking, another's. A send commits with
`synchronous_commit` on (durable when `send` returns); a hand-out or an acknowledgement may be
redone, so it commits without waiting for the WAL flush (a lost one hands a message out again,
never loses it), as SQLite's does. The other tables go through SQLAlchemy on psycopg's sync driver.
Counts by state are kept in memory as on SQLite, from this process's commits; `refresh` re-reads
them, for what other daemons committed. psycopg's errors become `StorageError` here; no message
names the connection string (it may hold a password).
"""

import logging
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any, LiteralString

import anyio
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError

from hyperhive_core.broker.dburl import shown
from hyperhive_core.broker.migrations import LATEST, Migration, apply_pending, refuse_newer, status_of
from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.storage import (
    MAX_ALREADY_SENT,
    MAX_BATCH_BYTES,
    MESSAGE_COLUMNS,
    UNNAMED_READER_PREFIX,
    Appended,
    AppendRequest,
    message_row,
)
from hyperhive_core.broker.tables import EngineTables
from hyperhive_core.config import LEASE_HOLD_S
from hyperhive_core.errors import (
    BrokerError,
    DatabaseFullError,
    InboxFullError,
    KeyReusedError,
    SchemaVersionError,
    StorageError,
    UnknownMessageError,
)
from hyperhive_core.names import OPERATOR
from hyperhive_core.states import MessageState

logger = logging.getLogger(__name__)

# Connections the pool keeps: enough for concurrent claims, acks and one group commit.
POOL_SIZE = 8
# How long a call waits for a free connection (or for the server) before it fails.
CONNECT_TIMEOUT_S = 10.0
# SQLAlchemy stores an enum column as the member's name; the states are literals in the SQL.
_QUEUED, _DELIVERED, _ACKED = MessageState.QUEUED.name, MessageState.DELIVERED.name, MessageState.ACKED.name
# A recipient's oldest queued messages, locked for this transaction and skipped by any other: at
# most LIMIT, and no more once the bodies before one reach MAX_BATCH_BYTES. Parameters: recipient,
# limit, max bytes. (Locking and a window function cannot share one SELECT, hence the two steps.)
_OLDEST_QUEUED = (
    "WITH picked AS (SELECT id, octet_length(body) AS size FROM message "
    f"WHERE recipient = %s AND state = '{_QUEUED}' ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED), "
    "bounded AS (SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id) - size AS before FROM picked) b "
    "WHERE before < %s) "
)
# The same bound for a look that changes nothing. Parameters: recipient, limit, max bytes.
_PEEK = (
    f"SELECT {MESSAGE_COLUMNS} FROM (SELECT *, sum(octet_length(body)) OVER (ORDER BY id) - octet_length(body) "
    f"AS before FROM (SELECT * FROM message WHERE recipient = %s AND state = '{_QUEUED}' ORDER BY id LIMIT %s) q) b "
    "WHERE before < %s ORDER BY id"
)
# SQLSTATE of a full disk on the server.
_DISK_FULL = "53100"
# The channel a commit that stored messages notifies, once per recipient: "<store id> <recipient>".
CHANNEL = "hive_message"


def pg_storage_error(exc: BaseException) -> StorageError:
    """The `StorageError` for a psycopg (or SQLAlchemy-wrapped) error, in words that say what to do."""
    cause = getattr(exc, "orig", None) or exc
    if getattr(cause, "sqlstate", None) == _DISK_FULL:
        return DatabaseFullError(
            "the PostgreSQL server holding the hive is out of disk space; nothing was stored: "
            "free space on the database server, then try again"
        )
    if isinstance(cause, PoolTimeout | psycopg.OperationalError):
        return StorageError(
            f"cannot reach the hive's PostgreSQL database ({cause.__class__.__name__}: {_first_line(cause)}); "
            "check that the server runs and that --database names it, then try again"
        )
    return StorageError(f"the hive database refused the operation: {cause.__class__.__name__}: {_first_line(cause)}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"


def open_pg_engine(conninfo: str) -> Engine:
    """A SQLAlchemy engine on the database `conninfo` names (psycopg's sync driver), for the ORM tables."""
    # psycopg parses the URL itself (host=/socket/dir and sslmode=… in its query included); SQLAlchemy
    # only pools what it returns.
    return create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(conninfo, connect_timeout=int(CONNECT_TIMEOUT_S))
    )


def create_schema(engine: Engine) -> list[Migration]:
    """As the schema's owner: bring the database to this code's schema; returns what was applied. Blocking.

    Raises:
        SchemaVersionError: the database is newer than this code.
        StorageError: the server refused (or cannot be reached).
    """
    return apply_pending(engine, pg_storage_error)


# May this connection's role change the schema: own the tables (or be a superuser), or, on an empty
# database, create tables. A daemon's role holds row privileges only (trust.py).
_MAY_ALTER = (
    "SELECT coalesce((SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables "
    "WHERE schemaname = current_schema() AND tablename = 'message'), "
    "has_schema_privilege(current_schema(), 'CREATE'))"
)


def check_schema(engine: Engine, shown_url: str) -> list[Migration]:
    """At a daemon's start: apply what is pending when it all only adds and this role may; blocking.

    Returns what was applied (usually nothing: `hivectl migrate` ran before).

    Raises:
        SchemaVersionError: the database is newer than this code, or behind and this daemon may not
            bring it up (the message says who runs what).
        StorageError: the server refused (or cannot be reached).
    """
    try:
        status = status_of(engine, pg_storage_error)
    except StorageError as exc:
        if not isinstance(getattr(exc.__cause__, "orig", None), psycopg.errors.InsufficientPrivilege):
            raise
        raise SchemaVersionError(
            f"this daemon's role may not read the hive database's schema version ({_first_line(exc)}): run "
            f"`hivectl migrate --database {shown_url}` as the schema owner (it grants the hosts' roles what "
            "they need), then start again",
            current=0,
        ) from exc
    refuse_newer(status)
    if not status.pending:
        return []
    try:
        with engine.connect() as conn:
            may_alter = bool(conn.exec_driver_sql(_MAY_ALTER).scalar_one())
    except SQLAlchemyError as exc:
        raise pg_storage_error(exc) from exc
    offline = [m for m in status.pending if not m.online]
    if offline or not may_alter:
        why = (
            f"migration {offline[0].version} ({offline[0].description}) changes existing data"
            if offline
            else "this daemon's role may not change the schema"
        )
        raise SchemaVersionError(
            f"the hive database is at schema version {status.current} and this hyperhive needs {LATEST}; "
            f"{why}, so it was left as it is: run `hivectl migrate --database {shown_url}` as the schema owner, "
            "then start again",
            current=status.current,
        )
    return apply_pending(engine, pg_storage_error, only=status.pending)


async def _configure(connection: AsyncConnection[TupleRow]) -> None:
    # Durable at commit, whatever the server's or the role's default says.
    await connection.execute("SET synchronous_commit TO on")


@asynccontextmanager
async def open_pg_store(
    conninfo: str, *, host: str | None = None, lease_hold_s: float = LEASE_HOLD_S, pool_size: int = POOL_SIZE
) -> AsyncGenerator["PgStore"]:
    """Connect to the hive's PostgreSQL database as the daemon of `host` (default: this machine's name),
    check its schema (see `check_schema`), recover this host's leases, yield the store.

    Raises:
        SchemaVersionError: the schema does not fit this code and this daemon may not fix it.
        StorageError: the server cannot be reached or refused.
    """
    engine = open_pg_engine(conninfo)
    pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
        conninfo,
        # A fixed size, all opened before the store is used: a pool that grows opens connections in
        # the background, and closing it while one is being opened leaks that one.
        min_size=pool_size,
        max_size=pool_size,
        open=False,
        timeout=CONNECT_TIMEOUT_S,
        kwargs={"autocommit": True},
        configure=_configure,
        name="hive",
    )
    try:
        await anyio.to_thread.run_sync(check_schema, engine, shown(conninfo))
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc
        store = PgStore(engine, pool, host=host or socket.gethostname(), lease_hold_s=lease_hold_s)
        await store.load(now=time.time())
        yield store
    finally:
        with anyio.CancelScope(shield=True):
            await pool.close()
            engine.dispose()


class PgStore(EngineTables):
    """`MessageStore` on a PostgreSQL database."""

    def __init__(
        self,
        engine: Engine,
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]],
        *,
        host: str,
        lease_hold_s: float = LEASE_HOLD_S,
    ) -> None:
        super().__init__(engine, pg_storage_error)
        self._pool = pool
        # Set on every lease this store hands out: its restart recovers those and no other host's.
        self.host = host
        self._lease_hold_s = lease_hold_s
        self._hold_due: dict[str, float] = {}
        self._tally = Counter[tuple[str, MessageState]]()
        self._last_id = 0
        # Names this store's notifications, so its own listener skips what it already knows.
        self.store_id = secrets.token_hex(6)

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        """The store's connections, for the other shared tables (placement)."""
        return self._pool

    @property
    def last_id(self) -> int:
        """The highest message id this daemon knows committed (its own, and what `refresh` saw)."""
        return self._last_id

    @asynccontextmanager
    async def _transaction(self, *, durable: bool = True) -> AsyncGenerator[AsyncConnection[TupleRow]]:
        """One transaction on a pooled connection; `durable=False` for state that may be redone.

        Shielded, as a write in SQLite's worker thread is: a started transaction runs to its end (and
        its connection goes back to the pool) even if the caller is cancelled meanwhile.
        """
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.connection() as conn, conn.transaction():
                    if not durable:
                        await conn.execute("SET LOCAL synchronous_commit TO off")
                    yield conn
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc

    async def load(self, *, now: float) -> None:
        """Recover this host's leases as SQLite's store does at open, and read the counts and the last id.

        Only leases this host's daemon handed out (or, once, those handed out before leases named
        their host): another host's daemon is serving its own, and `adopt_orphans` takes them over
        only once that host is down.

        Raises:
            StorageError: the server refused.
        """
        async with self._transaction() as conn:
            requeued = (
                await conn.execute(
                    f"UPDATE message SET state = '{_QUEUED}', leased = false, reader = NULL, held_until = NULL, "
                    f"lease_host = NULL WHERE state = '{_DELIVERED}' AND leased "
                    "AND (lease_host = %s OR lease_host IS NULL) "
                    "AND (reader IS NULL OR substr(reader, 1, 1) = %s)",
                    (self.host, UNNAMED_READER_PREFIX),
                )
            ).rowcount
            held = (
                await conn.execute(
                    f"UPDATE message SET held_until = %s, lease_host = %s WHERE state = '{_DELIVERED}' AND leased "
                    "AND reader IS NOT NULL AND (lease_host = %s OR lease_host IS NULL)",
                    (now + self._lease_hold_s, self.host, self.host),
                )
            ).rowcount
        if requeued:
            logger.info("requeued %d leased messages that were not acknowledged before the restart", requeued)
        if held:
            logger.info("holding %d leased messages for their readers for %.0f s", held, self._lease_hold_s)
        await self.refresh()

    async def adopt_orphans(self, *, now: float, down_after_s: float) -> list[str]:
        """Take back the leases a down host's daemon held on the agents this host now runs; returns
        the recipients whose messages went back to their queue.

        A host is down when its heartbeat (`placement.daemon_host`) is older than `down_after_s`. Of
        its leases on agents placed here (and on the operator, whose inbox every host serves), an
        unnamed reader's go back to the queue, and a named reader's (the turn loop's) are held for
        the lease hold, for that reader to come back for here. Cheap when there are none: one
        statement per call, on the leased rows only.

        Raises:
            StorageError: the server refused.
        """
        orphaned = (
            f"state = '{_DELIVERED}' AND leased AND lease_host IS NOT NULL AND lease_host <> %s "
            "AND (recipient = %s OR recipient IN (SELECT name FROM placement WHERE host = %s)) "
            "AND NOT EXISTS (SELECT 1 FROM daemon_host d WHERE d.host = message.lease_host AND d.heartbeat_at >= %s)"
        )
        since = now - down_after_s
        async with self._transaction() as conn:
            requeued = await (
                await conn.execute(
                    f"UPDATE message SET state = '{_QUEUED}', leased = false, reader = NULL, held_until = NULL, "
                    f"lease_host = NULL WHERE {orphaned} AND (reader IS NULL OR substr(reader, 1, 1) = %s) "
                    "RETURNING recipient",
                    (self.host, OPERATOR, self.host, since, UNNAMED_READER_PREFIX),
                )
            ).fetchall()
            held = await (
                await conn.execute(
                    f"UPDATE message SET held_until = %s, lease_host = %s WHERE {orphaned} "
                    "AND reader IS NOT NULL AND substr(reader, 1, 1) <> %s RETURNING recipient",
                    (now + self._lease_hold_s, self.host, self.host, OPERATOR, self.host, since, UNNAMED_READER_PREFIX),
                )
            ).fetchall()
        back = Counter(str(r[0]) for r in requeued)
        for recipient, n in back.items():
            self._tally[(recipient, MessageState.DELIVERED)] = max(
                self._tally[(recipient, MessageState.DELIVERED)] - n, 0
            )
            self._tally[(recipient, MessageState.QUEUED)] += n
        until = now + self._lease_hold_s
        for recipient in {str(r[0]) for r in held}:
            due = self._hold_due.get(recipient)
            self._hold_due[recipient] = until if due is None else min(due, until)
        if requeued or held:
            logger.warning(
                "took over leases of hosts that stopped heart-beating: %d back in the queue, %d held for their readers",
                len(requeued),
                len(held),
            )
        return sorted(back)

    async def refresh(self) -> None:
        """Read the counts by state, the holds and the last id from the database (others commit too).

        Raises:
            StorageError: the server refused.
        """
        async with self._transaction() as conn:
            counts = await (
                await conn.execute("SELECT recipient, state::text, count(*) FROM message GROUP BY recipient, state")
            ).fetchall()
            holds = await (
                await conn.execute(
                    f"SELECT recipient, min(held_until) FROM message WHERE state = '{_DELIVERED}' "
                    "AND held_until IS NOT NULL GROUP BY recipient"
                )
            ).fetchall()
            row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM message")).fetchone()
        self._tally = Counter({(recipient, MessageState[state]): n for recipient, state, n in counts})
        self._hold_due = {str(recipient): float(due) for recipient, due in holds}
        self._last_id = max(self._last_id, int(row[0]) if row else 0)

    async def recount(self, recipient: str) -> int:
        """Read how many messages wait for `recipient` (another daemon stored one); returns it.

        Raises:
            StorageError: the server refused.
        """
        async with self._transaction() as conn:
            row = await (
                await conn.execute(
                    f"SELECT count(*) FROM message WHERE recipient = %s AND state = '{_QUEUED}'", (recipient,)
                )
            ).fetchone()
        queued = int(row[0]) if row else 0
        self._tally[(recipient, MessageState.QUEUED)] = queued
        return queued

    async def recheck(self) -> list[str]:
        """Re-read every recipient's queue length; returns those with more waiting than this store counted.

        What other daemons stored reaches this one by notification; this finds it when one was lost.

        Raises:
            StorageError: the server refused.
        """
        async with self._transaction() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT recipient, count(*) FROM message WHERE state = '{_QUEUED}' GROUP BY recipient"
                )
            ).fetchall()
        queued = {str(recipient): int(n) for recipient, n in rows}
        grown = [r for r, n in queued.items() if n > self._tally[(r, MessageState.QUEUED)]]
        for recipient, state in list(self._tally):
            if state == MessageState.QUEUED and recipient not in queued:
                self._tally[(recipient, state)] = 0
        for recipient, n in queued.items():
            self._tally[(recipient, MessageState.QUEUED)] = n
        return grown

    # messages

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended | BrokerError]:
        """See `MessageStore.append_many`: one transaction; the whole group in a few statements when it can.

        The group is checked with one query per kind (keys, replies) and stored by one INSERT
        (`_append_set`); when that INSERT fails (a key another daemon stored meanwhile, a row the
        trust rules refuse), the group is stored again one message per savepoint, where a message
        that fails fails alone. A savepoint per message costs three round trips, which bounded a
        store's group commits to a few hundred messages a second.
        """
        outcomes: list[Appended | BrokerError] = []
        delta = Counter[tuple[str, MessageState]]()
        async with self._transaction() as conn:
            one_by_one: Sequence[AppendRequest] = ()
            try:
                async with conn.transaction():
                    outcomes = await self._append_set(conn, requests, delta)
            except (psycopg.IntegrityError, psycopg.DataError, psycopg.errors.InsufficientPrivilege) as exc:
                logger.debug("a group commit is stored one message at a time: %s", _first_line(exc))
                outcomes, delta, one_by_one = [], Counter[tuple[str, MessageState]](), requests
            for request in one_by_one:
                mine = Counter[tuple[str, MessageState]]()
                try:
                    async with conn.transaction():
                        outcome: Appended | BrokerError = await self._insert(conn, request, mine, before=delta)
                except BrokerError as exc:
                    outcome = exc
                except psycopg.errors.UniqueViolation:
                    # Another daemon stored the same key first: its message is the answer.
                    outcome = await self._keyed(conn, request) or BrokerError(
                        "the message could not be stored (its key was taken meanwhile); send it again"
                    )
                except psycopg.errors.InsufficientPrivilege as exc:
                    # Row-level security (trust.py): this daemon's role may not write as that sender.
                    logger.warning("the database refused a message from %s: %s", request.sender, _first_line(exc))
                    outcome = BrokerError(
                        f"the database refused to store a message from {request.sender!r}: this host's role may "
                        "only send as the agents placed on its host; nothing was stored"
                    )
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    # The tools bound every field; this is the last line, for callers that do not.
                    outcome = BrokerError(f"the message could not be stored ({_first_line(exc)}); nothing was stored")
                if isinstance(outcome, BrokerError):
                    mine.clear()
                delta.update(mine)
                outcomes.append(outcome)
            woken = sorted({o.row.recipient for o in outcomes if isinstance(o, Appended) and not o.duplicate})
            if woken:
                # Delivered at commit, to every daemon listening: the recipient's may be another host's.
                await conn.execute(
                    "SELECT pg_notify(%s::text, %s::text || ' ' || r) FROM unnest(%s::text[]) r",
                    (CHANNEL, self.store_id, woken),
                )
        self._tally.update(delta)
        stored = [o.row.id or 0 for o in outcomes if isinstance(o, Appended)]
        self._last_id = max(self._last_id, *stored) if stored else self._last_id
        return outcomes

    async def _keyed(self, conn: AsyncConnection[TupleRow], request: AppendRequest) -> Appended | None:
        assert request.key is not None
        cursor = await conn.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM message WHERE sender = %s AND idem_key = %s", (request.sender, request.key)
        )
        found = await cursor.fetchone()
        if found is None:
            return None
        earlier = message_row(found)
        if (earlier.recipient, earlier.body, earlier.reply_to) != (request.recipient, request.body, request.reply_to):
            raise KeyReusedError(request.key, earlier.id or 0)
        return Appended(earlier, duplicate=True)

    async def _insert(
        self,
        conn: AsyncConnection[TupleRow],
        request: AppendRequest,
        delta: Counter[tuple[str, MessageState]],
        *,
        before: Counter[tuple[str, MessageState]],
    ) -> Appended:
        sender, recipient, reply_to, now = request.sender, request.recipient, request.reply_to, request.now
        if request.key is not None and (earlier := await self._keyed(conn, request)) is not None:
            return earlier
        queued = self._tally[(recipient, MessageState.QUEUED)] + before[(recipient, MessageState.QUEUED)]
        if queued >= request.max_depth:
            raise InboxFullError(recipient, request.max_depth)
        if reply_to is not None:
            original = await (
                await conn.execute("SELECT sender, recipient, state::text FROM message WHERE id = %s", (reply_to,))
            ).fetchone()
            if original is None or sender not in (original[0], original[1]):
                raise UnknownMessageError(reply_to)
            if original[1] == sender and original[2] == _DELIVERED:
                await conn.execute(
                    f"UPDATE message SET state = '{_ACKED}', acked_at = %s, held_until = NULL WHERE id = %s",
                    (now, reply_to),
                )
                delta[(sender, MessageState.DELIVERED)] -= 1
                delta[(sender, MessageState.ACKED)] += 1
        row = await (
            await conn.execute(
                "INSERT INTO message (sender, recipient, body, created_at, reply_to, state, leased, deliveries, "
                f"idem_key) VALUES (%s, %s, %s, %s, %s, '{_QUEUED}', false, 0, %s) RETURNING id",
                (sender, recipient, request.body, now, reply_to, request.key),
            )
        ).fetchone()
        assert row is not None, "INSERT … RETURNING returns the row"
        delta[(recipient, MessageState.QUEUED)] += 1
        return Appended(
            MessageRow(
                id=int(row[0]),
                sender=sender,
                recipient=recipient,
                body=request.body,
                created_at=now,
                reply_to=reply_to,
                idem_key=request.key,
            )
        )

    async def _append_set(
        self,
        conn: AsyncConnection[TupleRow],
        requests: Sequence[AppendRequest],
        delta: Counter[tuple[str, MessageState]],
    ) -> list[Appended | BrokerError]:
        """Check and store a group with a few set-wide statements; the same outcomes as `_insert` one by one.

        Raises:
            psycopg.Error: the INSERT failed (the caller stores the group one message at a time).
        """
        keyed = [(r.sender, r.key) for r in requests if r.key is not None]
        if len(set(keyed)) < len(keyed):
            # One key twice in a group: the second is the first's duplicate, which only the
            # one-by-one path sees (its first is not stored yet when the group is checked).
            raise psycopg.IntegrityError("a key repeats within one group")
        earlier: dict[tuple[str, str], MessageRow] = {}
        if keyed:
            found = await (
                await conn.execute(
                    f"SELECT {MESSAGE_COLUMNS}, idem_key FROM message WHERE (sender, idem_key) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                    ([sender for sender, _ in keyed], [key for _, key in keyed]),
                )
            ).fetchall()
            earlier = {(str(row[1]), str(row[-1])): message_row(row[:-1]) for row in found}
        replied = sorted({r.reply_to for r in requests if r.reply_to is not None})
        originals: dict[int, tuple[str, str, str]] = {}
        if replied:
            found = await (
                await conn.execute(
                    "SELECT id, sender, recipient, state::text FROM message WHERE id = ANY(%s::bigint[])", (replied,)
                )
            ).fetchall()
            originals = {int(i): (str(sender), str(recipient), str(state)) for i, sender, recipient, state in found}
        outcomes: list[Appended | BrokerError | None] = []
        stored: list[AppendRequest] = []
        acked: list[int] = []
        for request in requests:
            sender, recipient, reply_to = request.sender, request.recipient, request.reply_to
            if request.key is not None and (before := earlier.get((sender, request.key))) is not None:
                if (before.recipient, before.body, before.reply_to) != (recipient, request.body, reply_to):
                    outcomes.append(KeyReusedError(request.key, before.id or 0))
                else:
                    outcomes.append(Appended(before, duplicate=True))
                continue
            if self._tally[(recipient, MessageState.QUEUED)] + delta[(recipient, MessageState.QUEUED)] >= (
                request.max_depth
            ):
                outcomes.append(InboxFullError(recipient, request.max_depth))
                continue
            if reply_to is not None:
                original = originals.get(reply_to)
                if original is None or sender not in (original[0], original[1]):
                    outcomes.append(UnknownMessageError(reply_to))
                    continue
                if original[1] == sender and original[2] == _DELIVERED:
                    # A reply acknowledges what it answers, once (a second reply finds it acknowledged).
                    originals[reply_to] = (original[0], original[1], _ACKED)
                    acked.append(reply_to)
                    delta[(sender, MessageState.DELIVERED)] -= 1
                    delta[(sender, MessageState.ACKED)] += 1
            delta[(recipient, MessageState.QUEUED)] += 1
            stored.append(request)
            outcomes.append(None)
        if acked:
            await conn.execute(
                f"UPDATE message SET state = '{_ACKED}', acked_at = %s, held_until = NULL WHERE id = ANY(%s::bigint[])",
                (requests[0].now, acked),
            )
        ids: list[int] = []
        if stored:
            ids = [
                int(i)
                for (i,) in await (
                    await conn.execute(
                        "SELECT nextval(pg_get_serial_sequence('message', 'id')) FROM generate_series(1, %s)",
                        (len(stored),),
                    )
                ).fetchall()
            ]
            await conn.execute(
                "INSERT INTO message (id, sender, recipient, body, created_at, reply_to, state, leased, deliveries, "
                f"idem_key) SELECT i, s, r, b, c, p, '{_QUEUED}', false, 0, k FROM unnest(%s::bigint[], %s::text[], "
                "%s::text[], %s::text[], %s::float8[], %s::bigint[], %s::text[]) AS t(i, s, r, b, c, p, k)",
                (
                    ids,
                    [r.sender for r in stored],
                    [r.recipient for r in stored],
                    [r.body for r in stored],
                    [r.now for r in stored],
                    [r.reply_to for r in stored],
                    [r.key for r in stored],
                ),
            )
        fresh = iter(zip(ids, stored, strict=True))
        done: list[Appended | BrokerError] = []
        for outcome in outcomes:
            if outcome is not None:
                done.append(outcome)
                continue
            id_, request = next(fresh)
            done.append(
                Appended(
                    MessageRow(
                        id=id_,
                        sender=request.sender,
                        recipient=request.recipient,
                        body=request.body,
                        created_at=request.now,
                        reply_to=request.reply_to,
                        idem_key=request.key,
                    )
                )
            )
        return done

    def hold_due(self, recipient: str) -> float | None:
        """See `MessageStore.hold_due`."""
        return self._hold_due.get(recipient)

    async def _requeue_expired(self, conn: AsyncConnection[TupleRow], recipient: str, now: float) -> int:
        due = self._hold_due.get(recipient)
        if due is None or due > now:
            return 0
        expired = (
            await conn.execute(
                f"UPDATE message SET state = '{_QUEUED}', leased = false, reader = NULL, held_until = NULL "
                f"WHERE recipient = %s AND state = '{_DELIVERED}' AND held_until IS NOT NULL AND held_until <= %s",
                (recipient, now),
            )
        ).rowcount
        row = await (
            await conn.execute(
                f"SELECT min(held_until) FROM message WHERE recipient = %s AND state = '{_DELIVERED}' "
                "AND held_until IS NOT NULL",
                (recipient,),
            )
        ).fetchone()
        next_due = row[0] if row else None
        if next_due is None:
            self._hold_due.pop(recipient, None)
        else:
            self._hold_due[recipient] = next_due
        if expired:
            logger.info("%d leases of %s expired with their reader away; back in the queue", expired, recipient)
        return max(expired, 0)

    async def claim(
        self, recipient: str, limit: int, *, now: float, reader: str | None = None, ack_through: int | None = None
    ) -> list[MessageRow]:
        """See `MessageStore.claim`: the rows taken are locked, and skipped by concurrent claims."""
        statement = (
            f"{_OLDEST_QUEUED}UPDATE message m SET state = '{_DELIVERED}', "
            "delivered_at = coalesce(m.delivered_at, %s), deliveries = m.deliveries + 1, leased = %s, reader = %s, "
            f"held_until = NULL, lease_host = %s FROM bounded WHERE m.id = bounded.id RETURNING "
            + ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
        )
        params = (recipient, limit, MAX_BATCH_BYTES, now, reader is not None, reader, self.host)
        async with self._transaction(durable=False) as conn:
            acked = await self._ack_through(conn, recipient, reader, ack_through, now) if reader and ack_through else 0
            expired = await self._requeue_expired(conn, recipient, now)
            rows = [message_row(r) for r in await (await conn.execute(statement, params)).fetchall()]
        self._tally[(recipient, MessageState.DELIVERED)] += len(rows) - acked - expired
        self._tally[(recipient, MessageState.ACKED)] += acked
        # Never below zero: another daemon may have taken what this one counted (refresh corrects it).
        self._tally[(recipient, MessageState.QUEUED)] = max(
            self._tally[(recipient, MessageState.QUEUED)] + expired - len(rows), 0
        )
        return sorted(rows, key=lambda r: r.id or 0)

    async def reclaim(self, recipient: str, reader: str, *, after: int, now: float) -> list[MessageRow]:
        """See `MessageStore.reclaim`."""
        statement = (
            "UPDATE message SET held_until = NULL, deliveries = deliveries + 1, lease_host = %s "
            "WHERE recipient = %s AND reader = %s "
            f"AND leased AND state = '{_DELIVERED}' AND id > %s RETURNING {MESSAGE_COLUMNS}"
        )
        async with self._transaction(durable=False) as conn:
            params = (self.host, recipient, reader, after)
            rows = [message_row(r) for r in await (await conn.execute(statement, params)).fetchall()]
        return sorted(rows, key=lambda r: r.id or 0)

    async def ack_through(self, recipient: str, reader: str, last_id: int, *, now: float) -> int:
        """See `MessageStore.ack_through`."""
        async with self._transaction(durable=False) as conn:
            acked = await self._ack_through(conn, recipient, reader, last_id, now)
        self._tally[(recipient, MessageState.DELIVERED)] -= acked
        self._tally[(recipient, MessageState.ACKED)] += acked
        return acked

    @staticmethod
    async def _ack_through(
        conn: AsyncConnection[TupleRow], recipient: str, reader: str, last_id: int, now: float
    ) -> int:
        cursor = await conn.execute(
            f"UPDATE message SET state = '{_ACKED}', acked_at = %s, held_until = NULL "
            f"WHERE recipient = %s AND reader = %s AND leased AND state = '{_DELIVERED}' AND id <= %s",
            (now, recipient, reader, last_id),
        )
        return max(cursor.rowcount, 0)

    async def ack(self, recipient: str, ids: Sequence[int], *, now: float) -> tuple[list[int], list[int]]:
        """See `MessageStore.ack`."""
        if not ids:
            return [], []
        wanted = list(ids)
        async with self._transaction(durable=False) as conn:
            acked = {
                int(r[0])
                for r in await (
                    await conn.execute(
                        f"UPDATE message SET state = '{_ACKED}', acked_at = %s, held_until = NULL "
                        f"WHERE recipient = %s AND state = '{_DELIVERED}' AND id = ANY(%s::bigint[]) RETURNING id",
                        (now, recipient, wanted),
                    )
                ).fetchall()
            }
            before = {
                int(r[0])
                for r in await (
                    await conn.execute(
                        f"SELECT id FROM message WHERE recipient = %s AND state = '{_ACKED}' "
                        "AND id = ANY(%s::bigint[])",
                        (recipient, wanted),
                    )
                ).fetchall()
            }
        self._tally[(recipient, MessageState.DELIVERED)] -= len(acked)
        self._tally[(recipient, MessageState.ACKED)] += len(acked)
        done = sorted(acked | before)
        return done, sorted(set(ids) - set(done))

    async def release_reader(self, recipient: str, reader: str) -> int:
        """See `MessageStore.release_reader`."""
        async with self._transaction() as conn:
            released = (
                await conn.execute(
                    f"UPDATE message SET state = '{_QUEUED}', leased = false, reader = NULL, held_until = NULL "
                    f"WHERE recipient = %s AND reader = %s AND leased AND state = '{_DELIVERED}'",
                    (recipient, reader),
                )
            ).rowcount
        self._tally[(recipient, MessageState.DELIVERED)] -= released
        self._tally[(recipient, MessageState.QUEUED)] += released
        return released

    async def hold_reader(self, recipient: str, reader: str, *, now: float) -> int:
        """See `MessageStore.hold_reader`."""
        until = now + self._lease_hold_s
        async with self._transaction() as conn:
            held = (
                await conn.execute(
                    "UPDATE message SET held_until = %s WHERE recipient = %s AND reader = %s AND leased "
                    f"AND state = '{_DELIVERED}'",
                    (until, recipient, reader),
                )
            ).rowcount
        if held:
            due = self._hold_due.get(recipient)
            self._hold_due[recipient] = until if due is None else min(due, until)
        return held

    async def sent_since(self, sender: str, after_id: int, limit: int = MAX_ALREADY_SENT) -> list[MessageRow]:
        """See `MessageStore.sent_since`."""
        statement = f"SELECT {MESSAGE_COLUMNS} FROM message WHERE id > %s AND sender = %s ORDER BY id LIMIT %s"
        return await self._select(statement, (after_id, sender, limit))

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """See `MessageStore.peek`."""
        return await self._select(_PEEK, (recipient, limit, MAX_BATCH_BYTES))

    async def _select(self, statement: LiteralString, params: tuple[Any, ...]) -> list[MessageRow]:
        rows: list[MessageRow] = []
        try:
            with anyio.CancelScope(shield=True):
                async with self._pool.connection() as conn:
                    rows = [message_row(r) for r in await (await conn.execute(statement, params)).fetchall()]
        except (PoolTimeout, psycopg.Error) as exc:
            raise pg_storage_error(exc) from exc
        return rows

    def queued(self, recipient: str) -> int:
        """See `MessageStore.queued`."""
        return self._tally[(recipient, MessageState.QUEUED)]

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """See `MessageStore.counts`."""
        return {state: n for state in MessageState if (n := self._tally[(recipient, state)]) > 0}

    def totals(self) -> dict[MessageState, int]:
        """See `MessageStore.totals`."""
        totals = Counter[MessageState]()
        for (_, state), n in list(self._tally.items()):
            totals[state] += n
        return {state: n for state, n in totals.items() if n > 0}

    def unread_counts(self) -> dict[str, int]:
        """See `MessageStore.unread_counts`."""
        return {
            recipient: n
            for (recipient, state), n in list(self._tally.items())
            if state == MessageState.QUEUED and n > 0
        }
