"""Plain synchronous SQL over the hive's SQLite file: messages and the desired hive.

WAL with `synchronous=FULL`, so a committed row survives `kill -9` and power loss alike. Every
method is one transaction; SQLAlchemy and sqlite3 errors are translated to `StorageError` here and
nowhere else. Callers serialise writes (the async broker holds a one-slot limiter); reads may run
beside them. The message hot path (append, claim, peek) uses two long-lived sqlite3 connections, a
writer and a reader, instead of a Session per call: the ORM's per-call cost was most of a send.
Per-recipient counts by state live in memory, seeded from the table when the store opens and kept
by the only statements that change a message (`append_many`, `claim`), after their commit.
"""

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from hyperhive_core.broker import migrations
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
    StorageError,
    UnknownMessageError,
)
from hyperhive_core.states import MessageState

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
# SQLAlchemy stores an enum column as the member's name.
_QUEUED, _DELIVERED, _ACKED = MessageState.QUEUED.name, MessageState.DELIVERED.name, MessageState.ACKED.name
# The ids of the oldest queued messages of a recipient: at most LIMIT of them, and no more once the
# bodies before one reach MAX_BATCH_BYTES. Parameters: recipient, state, limit, max bytes.
_OLDEST_QUEUED = (
    "SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY id) - size AS before FROM (SELECT id, "
    "length(CAST(body AS BLOB)) AS size FROM message WHERE recipient = ? AND state = ? ORDER BY id LIMIT ?)) "
    "WHERE before < ?"
)
MESSAGE_TABLE = cast(Table, MessageRow.__table__)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]  # sqlmodel adds __table__ at runtime


@dataclass(frozen=True, slots=True)
class DbLimits:
    """How long a write waits for a lock held elsewhere, and how large the file may grow.

    With `max_bytes`, sends stop `send_reserve_bytes` short of it (`DatabaseFullError`), so
    handing out and acknowledging what is queued, which grows rows a little, still has room.
    """

    busy_timeout_ms: int = BUSY_TIMEOUT_MS
    max_bytes: int | None = None

    @property
    def send_reserve_bytes(self) -> int:
        """What sends leave free under `max_bytes` for reads: a tenth of it, at least 128 KiB."""
        return 0 if self.max_bytes is None else max(self.max_bytes // 10, 128 * 1024)


def raw_engine(path: Path) -> Engine:
    """An engine on the SQLite file at `path` as it is: no pragmas, no schema change (for reading it)."""
    return create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})


def open_engine(path: Path, limits: DbLimits = DbLimits()) -> Engine:  # frozen, so shared safely
    """Open (creating if needed) the SQLite database at `path` with the broker's durability settings.

    Raises:
        SchemaVersionError: the file's schema is newer than this code (nothing was written).
        StorageError: the file cannot be opened or its tables cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]  # registered by the decorator
            _apply_pragmas(dbapi_connection, limits)

    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"cannot open the hive database {path}: {exc}") from exc
    try:
        # Refused before anything is written: a newer hyperhive made (or migrated) this file.
        status = migrations.status_of(engine, storage_error)
        migrations.refuse_newer(status)
        if status.current:
            # Tables and columns the models gained before versions were recorded, as before.
            SQLModel.metadata.create_all(engine)
            _add_missing_columns(engine)
        # One daemon owns the file (its flock): what is pending is applied at open.
        migrations.apply_pending(engine, storage_error)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StorageError(f"cannot open the hive database {path}: {exc}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Bring an older database up to the models: columns (with their defaults) and indexes added since."""
    with engine.begin() as conn:
        for table in SQLModel.metadata.sorted_tables:
            present = {row[1] for row in conn.execute(text(f'PRAGMA table_info("{table.name}")'))}
            for column in table.columns:
                if column.name in present:
                    continue
                default: object = getattr(column.default, "arg", None)
                kind = column.type.compile(dialect=engine.dialect)
                literal = (
                    "NULL" if default is None else repr(default if not isinstance(default, bool) else int(default))
                )
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind} DEFAULT {literal}'))
                logger.info("added column %s.%s to the hive database", table.name, column.name)
            for index in table.indexes:
                index.create(conn, checkfirst=True)


def _apply_pragmas(connection: Any, limits: DbLimits) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: fsync the WAL on every commit, so an acknowledged send survives power loss too.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(limits.busy_timeout_ms)}")
    if limits.max_bytes is not None:
        # Past this SQLite fails a write with SQLITE_FULL, exactly as on a full disk, and rolls it back.
        page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count={max(1, limits.max_bytes // page_size)}")
    cursor.close()


def _connect(engine: Engine, limits: DbLimits) -> sqlite3.Connection:
    # Autocommit mode: transactions are begun explicitly, so each one is exactly what we wrote.
    connection = sqlite3.connect(engine.url.database or "", isolation_level=None, check_same_thread=False)
    _apply_pragmas(connection, limits)
    return connection


def storage_error(exc: BaseException) -> StorageError:
    """The `StorageError` for a sqlite3 or SQLAlchemy error, in words that say what to do."""
    cause = getattr(exc, "orig", None) or exc
    name = getattr(cause, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return DatabaseFullError(
            "the hive database is full (the disk, or the database's size limit); nothing was stored: "
            "free disk space or raise the limit (hivectl serve --max-db-mb), then try again"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StorageError(
            "the hive database is locked by another process (a second daemon, a backup?); nothing was stored: "
            "try again once it lets go"
        )
    if name == "SQLITE_READONLY" or name.startswith("SQLITE_IOERR"):
        return StorageError(f"the hive database cannot be written ({name}: {cause}); check the disk and its mount")
    return StorageError(f"the hive database refused the operation: {cause.__class__.__name__}: {cause}")


@contextmanager
def _sqlite_errors() -> Generator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise storage_error(exc) from exc


@contextmanager
def _unsynced(db: sqlite3.Connection) -> Generator[sqlite3.Connection]:
    """A transaction committed without its own fsync (WAL + NORMAL), for state that may be redone.

    It survives kill -9 of the daemon (the WAL is in the OS's cache) and the next send's fsync makes
    it durable. Power loss in between can only undo a hand-out or an acknowledgement, so a message
    is handed out once more, never lost; sends keep FULL.
    """
    db.execute("PRAGMA synchronous=NORMAL")
    try:
        with _transaction(db):
            yield db
    finally:
        db.execute("PRAGMA synchronous=FULL")


@contextmanager
def _transaction(db: sqlite3.Connection) -> Generator[sqlite3.Connection]:
    """One write transaction on `db`: committed at the end of the block, rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class HiveStore(EngineTables):
    """Messages and the desired hive in one SQLite file; blocking (`sqlite.SqliteMessageStore` is its async face)."""

    def __init__(
        self, engine: Engine, limits: DbLimits = DbLimits(), *, lease_hold_s: float = LEASE_HOLD_S, now: float = 0.0
    ) -> None:  # frozen
        super().__init__(engine, storage_error)
        self._limits = limits
        self._lease_hold_s = lease_hold_s
        # Earliest `held_until` per recipient: a claim past it first sends expired holds back to the queue.
        self._hold_due: dict[str, float] = {}
        with _sqlite_errors():
            self._writer = _connect(engine, limits)
            self._reader = _connect(engine, limits)
            self._send_page_limit = self._page_limit()
            self._recover_leases(now or time.time())
            self.last_id: int = self._writer.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0]
            seeded = self._writer.execute("SELECT recipient, state, count(*) FROM message GROUP BY recipient, state")
            self._tally = Counter[tuple[str, MessageState]](
                {(recipient, MessageState[state]): n for recipient, state, n in seeded}
            )
        # The broker's limiter already serialises writes; the locks make the store safe on its own.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # Closed with the engine: the daemon disposes of the engine when it stops.
        event.listen(engine, "engine_disposed", self._on_engine_disposed)

    def _page_limit(self) -> int | None:
        if self._limits.max_bytes is None:
            return None
        page_size = int(self._writer.execute("PRAGMA page_size").fetchone()[0])
        return max(1, (self._limits.max_bytes - self._limits.send_reserve_bytes) // page_size)

    def _recover_leases(self, now: float) -> None:
        """Leases end with the daemon's sessions: what an unnamed reader held goes back to the queue,
        and a named reader (the turn loop) gets `lease_hold_s` to come back for what it held."""
        with _transaction(self._writer) as db:
            requeued = db.execute(
                "UPDATE message SET state = ?, leased = 0, reader = NULL, held_until = NULL "
                "WHERE state = ? AND leased = 1 AND (reader IS NULL OR substr(reader, 1, 1) = ?)",
                (_QUEUED, _DELIVERED, UNNAMED_READER_PREFIX),
            ).rowcount
            held = db.execute(
                "UPDATE message SET held_until = ? WHERE state = ? AND leased = 1 AND reader IS NOT NULL",
                (now + self._lease_hold_s, _DELIVERED),
            ).rowcount
        if requeued:
            logger.info("requeued %d leased messages that were not acknowledged before the restart", requeued)
        if held:
            logger.info("holding %d leased messages for their readers for %.0f s", held, self._lease_hold_s)
        for recipient, due in self._writer.execute(
            "SELECT recipient, min(held_until) FROM message WHERE state = ? AND held_until IS NOT NULL "
            "GROUP BY recipient",
            (_DELIVERED,),
        ):
            self._hold_due[recipient] = due

    def _on_engine_disposed(self, _engine: Engine) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's own connections; the engine's are the caller's."""
        self._writer.close()
        self._reader.close()

    # messages

    def append(
        self,
        sender: str,
        recipient: str,
        body: str,
        *,
        reply_to: int | None,
        now: float,
        max_depth: int,
        key: str | None = None,
    ) -> MessageRow:
        """Commit a new queued message and return it; a reply acknowledges the message it answers.

        With `key`, a message `sender` stored before under the same key is returned instead.

        Raises:
            InboxFullError: the recipient already has `max_depth` unread messages.
            UnknownMessageError: `reply_to` names no message the sender took part in.
            KeyReusedError: `key` was used before for a different message.
            DatabaseFullError: the database is at its size limit (minus what reads keep).
        """
        [outcome] = self.append_many([AppendRequest(sender, recipient, body, reply_to, now, max_depth, key)])
        if isinstance(outcome, BrokerError):
            raise outcome
        return outcome.row

    def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended | BrokerError]:
        """Commit several messages in one transaction (one fsync); each is checked as `append` checks it.

        Each message is its own savepoint: one that is refused, or that the database cannot take,
        gets its error in its place and changes nothing; the others are stored.

        Raises:
            StorageError: the database refused the transaction; none of the messages is stored.
        """
        outcomes: list[Appended | BrokerError] = []
        delta = Counter[tuple[str, MessageState]]()
        with self._write_lock, _sqlite_errors(), _transaction(self._writer) as db:
            if self._send_page_limit is not None and self._pages(db) >= self._send_page_limit:
                full = DatabaseFullError(
                    "the hive database is at its size limit (hivectl serve --max-db-mb) less what is kept for "
                    "reading what is queued; nothing was stored: raise the limit, or let agents read their inboxes"
                )
                return [full] * len(requests)
            for request in requests:
                mine = Counter[tuple[str, MessageState]]()
                db.execute("SAVEPOINT one")
                try:
                    outcome: Appended | BrokerError = self._insert(db, request, mine, before=delta)
                except BrokerError as exc:
                    outcome = exc
                except sqlite3.Error as exc:
                    outcome = storage_error(exc)
                except (OverflowError, ValueError, TypeError) as exc:
                    # The tools bound every field; this is the last line, for callers that do not.
                    outcome = BrokerError(f"the message could not be stored ({exc}); nothing was stored")
                if isinstance(outcome, BrokerError):
                    db.execute("ROLLBACK TO one")
                    mine.clear()
                db.execute("RELEASE one")
                delta.update(mine)
                outcomes.append(outcome)
        self._tally.update(delta)
        stored = [o.row.id or 0 for o in outcomes if isinstance(o, Appended)]
        self.last_id = max(self.last_id, *stored) if stored else self.last_id
        return outcomes

    @staticmethod
    def _pages(db: sqlite3.Connection) -> int:
        return int(db.execute("PRAGMA page_count").fetchone()[0]) - int(
            db.execute("PRAGMA freelist_count").fetchone()[0]
        )

    def _insert(
        self,
        db: sqlite3.Connection,
        request: AppendRequest,
        delta: Counter[tuple[str, MessageState]],
        *,
        before: Counter[tuple[str, MessageState]],
    ) -> Appended:
        """Insert one message; `delta` gets its changes to the counts, `before` holds its batch's so far."""
        sender, recipient, reply_to, now = request.sender, request.recipient, request.reply_to, request.now
        if request.key is not None:
            found = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM message WHERE sender = ? AND idem_key = ?", (sender, request.key)
            ).fetchone()
            if found is not None:
                earlier = message_row(found)
                if (earlier.recipient, earlier.body, earlier.reply_to) != (recipient, request.body, reply_to):
                    raise KeyReusedError(request.key, earlier.id or 0)
                return Appended(earlier, duplicate=True)
        queued = self._tally[(recipient, MessageState.QUEUED)] + before[(recipient, MessageState.QUEUED)]
        if queued >= request.max_depth:
            raise InboxFullError(recipient, request.max_depth)
        if reply_to is not None:
            original = db.execute("SELECT sender, recipient, state FROM message WHERE id = ?", (reply_to,)).fetchone()
            if original is None or sender not in (original[0], original[1]):
                raise UnknownMessageError(reply_to)
            if original[1] == sender and original[2] == _DELIVERED:
                db.execute(
                    "UPDATE message SET state = ?, acked_at = ?, held_until = NULL WHERE id = ?",
                    (_ACKED, now, reply_to),
                )
                delta[(sender, MessageState.DELIVERED)] -= 1
                delta[(sender, MessageState.ACKED)] += 1
        cursor = db.execute(
            "INSERT INTO message (sender, recipient, body, created_at, reply_to, state, leased, deliveries, idem_key) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)",
            (sender, recipient, request.body, now, reply_to, _QUEUED, request.key),
        )
        delta[(recipient, MessageState.QUEUED)] += 1
        return Appended(
            MessageRow(
                id=cursor.lastrowid,
                sender=sender,
                recipient=recipient,
                body=request.body,
                created_at=now,
                reply_to=reply_to,
                idem_key=request.key,
            )
        )

    def hold_due(self, recipient: str) -> float | None:
        """When the earliest hold on `recipient`'s leases ends (their reader stayed away); from memory."""
        return self._hold_due.get(recipient)

    def _requeue_expired(self, db: sqlite3.Connection, recipient: str, now: float) -> int:
        due = self._hold_due.get(recipient)
        if due is None or due > now:
            return 0
        expired = db.execute(
            "UPDATE message SET state = ?, leased = 0, reader = NULL, held_until = NULL "
            "WHERE recipient = ? AND state = ? AND held_until IS NOT NULL AND held_until <= ?",
            (_QUEUED, recipient, _DELIVERED, now),
        ).rowcount
        [next_due] = db.execute(
            "SELECT min(held_until) FROM message WHERE recipient = ? AND state = ? AND held_until IS NOT NULL",
            (recipient, _DELIVERED),
        ).fetchone()
        if next_due is None:
            self._hold_due.pop(recipient, None)
        else:
            self._hold_due[recipient] = next_due
        if expired:
            logger.info("%d leases of %s expired with their reader away; back in the queue", expired, recipient)
        return expired

    def claim(
        self, recipient: str, limit: int, *, now: float, reader: str | None = None, ack_through: int | None = None
    ) -> list[MessageRow]:
        """Mark up to `limit` of the oldest queued messages delivered and return them, in one statement.

        With `reader`, they are leased to it: its cursor acknowledges them (`ack_through`), and they
        come back to the queue if it goes away (`release_reader`, `hold_reader`). Leases whose
        reader stayed away past their hold go back to the queue first. With `ack_through` (the
        reader's cursor), its leases up to it are acknowledged in the same transaction.
        """
        due = self._hold_due.get(recipient)
        acking = reader is not None and bool(ack_through)
        if not acking and not self.queued(recipient) and (due is None or due > now):
            return []
        # One UPDATE … RETURNING: the select and the state change cannot interleave with another claim.
        statement = (
            "UPDATE message SET state = ?, delivered_at = coalesce(delivered_at, ?), deliveries = deliveries + 1, "
            f"leased = ?, reader = ?, held_until = NULL WHERE id IN ({_OLDEST_QUEUED}) RETURNING {MESSAGE_COLUMNS}"
        )
        params = (_DELIVERED, now, int(reader is not None), reader, recipient, _QUEUED, limit, MAX_BATCH_BYTES)
        with self._write_lock, _sqlite_errors(), _unsynced(self._writer) as db:
            acked = self._ack_through(db, recipient, reader, ack_through, now) if reader and ack_through else 0
            expired = self._requeue_expired(db, recipient, now)
            rows = [message_row(r) for r in db.execute(statement, params)]
        self._tally[(recipient, MessageState.DELIVERED)] -= acked
        self._tally[(recipient, MessageState.ACKED)] += acked
        self._tally[(recipient, MessageState.DELIVERED)] -= expired
        self._tally[(recipient, MessageState.QUEUED)] += expired - len(rows)
        self._tally[(recipient, MessageState.DELIVERED)] += len(rows)
        return sorted(rows, key=lambda r: r.id or 0)

    def reclaim(self, recipient: str, reader: str, *, after: int, now: float) -> list[MessageRow]:
        """Hand a returning reader back what it holds beyond its cursor `after`, oldest first.

        The reader got these before and did not finish them (its session or the daemon ended);
        they were kept for it (`hold_reader`), so they go to it again, not to another reader.
        """
        statement = (
            "UPDATE message SET held_until = NULL, deliveries = deliveries + 1 WHERE recipient = ? AND reader = ? "
            f"AND leased = 1 AND state = ? AND id > ? RETURNING {MESSAGE_COLUMNS}"
        )
        with self._write_lock, _sqlite_errors(), _unsynced(self._writer) as db:
            rows = [message_row(r) for r in db.execute(statement, (recipient, reader, _DELIVERED, after))]
        return sorted(rows, key=lambda r: r.id or 0)

    def ack_through(self, recipient: str, reader: str, last_id: int, *, now: float) -> int:
        """Acknowledge `reader`'s leases of `recipient` up to id `last_id`; returns how many.

        Only the reader's own: a cursor says how far this reader got, nothing about another's.
        """
        with self._write_lock, _sqlite_errors(), _unsynced(self._writer) as db:
            acked = self._ack_through(db, recipient, reader, last_id, now)
        self._tally[(recipient, MessageState.DELIVERED)] -= acked
        self._tally[(recipient, MessageState.ACKED)] += acked
        return acked

    @staticmethod
    def _ack_through(db: sqlite3.Connection, recipient: str, reader: str, last_id: int, now: float) -> int:
        return db.execute(
            "UPDATE message SET state = ?, acked_at = ?, held_until = NULL "
            "WHERE recipient = ? AND reader = ? AND leased = 1 AND state = ? AND id <= ?",
            (_ACKED, now, recipient, reader, _DELIVERED, last_id),
        ).rowcount

    def ack(self, recipient: str, ids: Sequence[int], *, now: float) -> tuple[list[int], list[int]]:
        """Acknowledge messages handed to `recipient`: (acked now or before, not handed to it)."""
        if not ids:
            return [], []
        marks = ",".join("?" * len(ids))
        with self._write_lock, _sqlite_errors(), _unsynced(self._writer) as db:
            acked = {
                row[0]
                for row in db.execute(
                    "UPDATE message SET state = ?, acked_at = ?, held_until = NULL "
                    f"WHERE recipient = ? AND state = ? AND id IN ({marks}) RETURNING id",
                    (_ACKED, now, recipient, _DELIVERED, *ids),
                )
            }
            before = {
                row[0]
                for row in db.execute(
                    f"SELECT id FROM message WHERE recipient = ? AND state = ? AND id IN ({marks})",
                    (recipient, _ACKED, *ids),
                )
            }
        self._tally[(recipient, MessageState.DELIVERED)] -= len(acked)
        self._tally[(recipient, MessageState.ACKED)] += len(acked)
        done = sorted(acked | before)
        return done, sorted(set(ids) - set(done))

    def release_reader(self, recipient: str, reader: str) -> int:
        """Put every lease `reader` holds back in `recipient`'s queue (its session ended); returns how many."""
        with self._write_lock, _sqlite_errors(), _transaction(self._writer) as db:
            released = db.execute(
                "UPDATE message SET state = ?, leased = 0, reader = NULL, held_until = NULL "
                "WHERE recipient = ? AND reader = ? AND leased = 1 AND state = ?",
                (_QUEUED, recipient, reader, _DELIVERED),
            ).rowcount
        self._tally[(recipient, MessageState.DELIVERED)] -= released
        self._tally[(recipient, MessageState.QUEUED)] += released
        return released

    def hold_reader(self, recipient: str, reader: str, *, now: float) -> int:
        """Keep `reader`'s leases for it for `lease_hold_s` (its session ended); returns how many."""
        until = now + self._lease_hold_s
        with self._write_lock, _sqlite_errors(), _transaction(self._writer) as db:
            held = db.execute(
                "UPDATE message SET held_until = ? WHERE recipient = ? AND reader = ? AND leased = 1 AND state = ?",
                (until, recipient, reader, _DELIVERED),
            ).rowcount
        if held:
            due = self._hold_due.get(recipient)
            self._hold_due[recipient] = until if due is None else min(due, until)
        return held

    def sent_since(self, sender: str, after_id: int, limit: int = MAX_ALREADY_SENT) -> list[MessageRow]:
        """What `sender` sent after message `after_id` was stored, oldest first (ids grow with time)."""
        statement = f"SELECT {MESSAGE_COLUMNS} FROM message WHERE id > ? AND sender = ? ORDER BY id LIMIT ?"
        with self._read_lock, _sqlite_errors():
            return [message_row(r) for r in self._reader.execute(statement, (after_id, sender, limit))]

    def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient` without changing them."""
        statement = f"SELECT {MESSAGE_COLUMNS} FROM message WHERE id IN ({_OLDEST_QUEUED}) ORDER BY id"
        with self._read_lock, _sqlite_errors():
            return [
                message_row(r) for r in self._reader.execute(statement, (recipient, _QUEUED, limit, MAX_BATCH_BYTES))
            ]

    def queued(self, recipient: str) -> int:
        """How many messages wait for `recipient`; from memory, never blocks."""
        return self._tally[(recipient, MessageState.QUEUED)]

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state; from memory, never blocks."""
        return {state: n for state in MessageState if (n := self._tally[(recipient, state)]) > 0}

    def totals(self) -> dict[MessageState, int]:
        """Count every message by state; from memory, never blocks."""
        totals = Counter[MessageState]()
        for (_, state), n in list(self._tally.items()):
            totals[state] += n
        return {state: n for state, n in totals.items() if n > 0}

    def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient, for everyone at once; from memory, never blocks."""
        return {
            recipient: n
            for (recipient, state), n in list(self._tally.items())
            if state == MessageState.QUEUED and n > 0
        }

    def check(self) -> None:
        """Run SQLite's quick integrity check.

        Raises:
            StorageError: the database is damaged.
        """
        with self._session() as session:
            result = session.connection().execute(text("PRAGMA quick_check")).scalar_one()
        if result != "ok":
            raise StorageError(f"the hive database failed its integrity check: {result}")
