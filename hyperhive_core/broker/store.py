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
from collections import Counter
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, delete, event, func, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel, col, create_engine, select

from hyperhive_core.broker.models import AgentRow, EventRow, MessageRow
from hyperhive_core.errors import BrokerError, HiveError, InboxFullError, StorageError, UnknownMessageError
from hyperhive_core.states import MessageState

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
# SQLAlchemy stores an enum column as the member's name.
_QUEUED, _DELIVERED, _ACKED = MessageState.QUEUED.name, MessageState.DELIVERED.name, MessageState.ACKED.name
_MESSAGE_COLUMNS = "id, sender, recipient, body, created_at, reply_to, state, delivered_at, acked_at, leased"
# Bodies one recv or inbox hands out at most (and always one message): bounds the bytes of every
# answer the daemon builds, so a client that never reads its answers cannot make it hold much.
MAX_BATCH_BYTES = 1024 * 1024
# The ids of the oldest queued messages of a recipient: at most LIMIT of them, and no more once the
# bodies before one reach MAX_BATCH_BYTES. Parameters: recipient, state, limit, max bytes.
_OLDEST_QUEUED = (
    "SELECT id FROM (SELECT id, SUM(size) OVER (ORDER BY id) - size AS before FROM (SELECT id, "
    "length(CAST(body AS BLOB)) AS size FROM message WHERE recipient = ? AND state = ? ORDER BY id LIMIT ?)) "
    "WHERE before < ?"
)
# Pruning an agent's old events costs a DELETE; do it once every this many appends.
PRUNE_EVERY = 100
MESSAGE_TABLE = cast(Table, MessageRow.__table__)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]  # sqlmodel adds __table__ at runtime


@dataclass(frozen=True, slots=True)
class DbLimits:
    """How long a write waits for a lock held elsewhere, and how large the file may grow."""

    busy_timeout_ms: int = BUSY_TIMEOUT_MS
    max_bytes: int | None = None


def open_engine(path: Path, limits: DbLimits = DbLimits()) -> Engine:  # frozen, so shared safely
    """Open (creating if needed) the SQLite database at `path` with the broker's durability settings.

    Raises:
        StorageError: the file cannot be opened or its tables cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]  # registered by the decorator
            _apply_pragmas(dbapi_connection, limits)

        SQLModel.metadata.create_all(engine)
        _add_missing_columns(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"cannot open the hive database {path}: {exc}") from exc
    return engine


def _add_missing_columns(engine: Engine) -> None:
    """Bring an older database up to the models: columns added since are added with their defaults."""
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


def _message(row: tuple[Any, ...]) -> MessageRow:
    id_, sender, recipient, body, created_at, reply_to, state, delivered_at, acked_at, leased = row
    return MessageRow(
        id=id_,
        sender=sender,
        recipient=recipient,
        body=body,
        created_at=created_at,
        reply_to=reply_to,
        state=MessageState[state],
        delivered_at=delivered_at,
        acked_at=acked_at,
        leased=bool(leased),
    )


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One message to store; see `HiveStore.append`."""

    sender: str
    recipient: str
    body: str
    reply_to: int | None
    now: float
    max_depth: int


def storage_error(exc: BaseException) -> StorageError:
    """The `StorageError` for a sqlite3 or SQLAlchemy error, in words that say what to do."""
    cause = getattr(exc, "orig", None) or exc
    name = getattr(cause, "sqlite_errorname", "")
    if name == "SQLITE_FULL":
        return StorageError(
            "the hive database is full (the disk, or the database's size limit); nothing was stored: "
            "free disk space or raise the limit, then try again"
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


class HiveStore:
    """Messages and the desired hive in one SQLite file."""

    def __init__(self, engine: Engine, limits: DbLimits = DbLimits()) -> None:  # frozen
        self._engine = engine
        with _sqlite_errors():
            self._writer = _connect(engine, limits)
            self._reader = _connect(engine, limits)
            # Leases end with the daemon: what a session was handed and did not acknowledge before
            # a crash or restart goes back to its recipient's queue.
            requeued = self._writer.execute(
                "UPDATE message SET state = ? WHERE state = ? AND leased = 1", (_QUEUED, _DELIVERED)
            ).rowcount
            if requeued:
                logger.info("requeued %d leased messages that were not acknowledged before the restart", requeued)
            seeded = self._writer.execute("SELECT recipient, state, count(*) FROM message GROUP BY recipient, state")
            self._tally = Counter[tuple[str, MessageState]](
                {(recipient, MessageState[state]): n for recipient, state, n in seeded}
            )
        # The broker's limiter already serialises writes; the locks make the store safe on its own.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # Closed with the engine: the daemon disposes of the engine when it stops.
        event.listen(engine, "engine_disposed", self._on_engine_disposed)

    def _on_engine_disposed(self, _engine: Engine) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's own connections; the engine's are the caller's."""
        self._writer.close()
        self._reader.close()

    @contextmanager
    def _session(self) -> Generator[Session]:
        try:
            with Session(self._engine, expire_on_commit=False) as session:
                yield session
        except HiveError:
            raise
        except SQLAlchemyError as exc:
            raise storage_error(exc) from exc

    # messages

    def append(
        self, sender: str, recipient: str, body: str, *, reply_to: int | None, now: float, max_depth: int
    ) -> MessageRow:
        """Commit a new queued message and return it; a reply acknowledges the message it answers.

        Raises:
            InboxFullError: the recipient already has `max_depth` unread messages.
            UnknownMessageError: `reply_to` names no message the sender took part in.
        """
        [outcome] = self.append_many([AppendRequest(sender, recipient, body, reply_to, now, max_depth)])
        if isinstance(outcome, BrokerError):
            raise outcome
        return outcome

    def append_many(self, requests: Sequence[AppendRequest]) -> list[MessageRow | BrokerError]:
        """Commit several messages in one transaction (one fsync); each is checked as `append` checks it.

        A refused message gets its error in its place and changes nothing; the others are stored.

        Raises:
            StorageError: the database refused the transaction; none of the messages is stored.
        """
        outcomes: list[MessageRow | BrokerError] = []
        delta = Counter[tuple[str, MessageState]]()
        with self._write_lock, _sqlite_errors():
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                for request in requests:
                    try:
                        outcomes.append(self._insert(db, request, delta))
                    except (InboxFullError, UnknownMessageError) as exc:
                        outcomes.append(exc)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        self._tally.update(delta)
        return outcomes

    def _insert(
        self, db: sqlite3.Connection, request: AppendRequest, delta: Counter[tuple[str, MessageState]]
    ) -> MessageRow:
        sender, recipient, reply_to, now = request.sender, request.recipient, request.reply_to, request.now
        if self._tally[(recipient, MessageState.QUEUED)] + delta[(recipient, MessageState.QUEUED)] >= request.max_depth:
            raise InboxFullError(recipient, request.max_depth)
        if reply_to is not None:
            original = db.execute("SELECT sender, recipient, state FROM message WHERE id = ?", (reply_to,)).fetchone()
            if original is None or sender not in (original[0], original[1]):
                raise UnknownMessageError(reply_to)
            if original[1] == sender and original[2] == _DELIVERED:
                db.execute("UPDATE message SET state = ?, acked_at = ? WHERE id = ?", (_ACKED, now, reply_to))
                delta[(sender, MessageState.DELIVERED)] -= 1
                delta[(sender, MessageState.ACKED)] += 1
        cursor = db.execute(
            "INSERT INTO message (sender, recipient, body, created_at, reply_to, state, leased) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            (sender, recipient, request.body, now, reply_to, _QUEUED),
        )
        delta[(recipient, MessageState.QUEUED)] += 1
        return MessageRow(
            id=cursor.lastrowid,
            sender=sender,
            recipient=recipient,
            body=request.body,
            created_at=now,
            reply_to=reply_to,
        )

    def claim(self, recipient: str, limit: int, *, now: float, leased: bool = False) -> list[MessageRow]:
        """Mark up to `limit` of the oldest queued messages delivered (leased) and return them, in one statement."""
        if not self.queued(recipient):
            return []
        # One UPDATE … RETURNING: the select and the state change cannot interleave with another claim.
        statement = (
            f"UPDATE message SET state = ?, delivered_at = ?, leased = {int(leased)} WHERE id IN ({_OLDEST_QUEUED}) "
            f"RETURNING {_MESSAGE_COLUMNS}"
        )
        with self._write_lock, _sqlite_errors():
            db = self._writer
            # A claim commits without its own fsync (WAL + NORMAL: it survives kill -9 of the daemon,
            # and the next send's fsync makes it durable). Power loss in between can only hand a
            # message out a second time, never lose one; sends keep FULL.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                args = (_DELIVERED, now, recipient, _QUEUED, limit, MAX_BATCH_BYTES)
                rows = [_message(r) for r in db.execute(statement, args)]
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                db.execute("PRAGMA synchronous=FULL")
        self._tally[(recipient, MessageState.QUEUED)] -= len(rows)
        self._tally[(recipient, MessageState.DELIVERED)] += len(rows)
        return sorted(rows, key=lambda r: r.id or 0)

    def ack_through(self, recipient: str, last_id: int, *, now: float) -> int:
        """Acknowledge every leased message of `recipient` up to id `last_id`; returns how many.

        A leased message may be queued again (requeued at a restart) when its reader got it just
        before the crash: the reader's cursor says it did, so it is acknowledged, not handed out again.
        """
        where = "recipient = ? AND id <= ? AND leased = 1 AND state IN (?, ?)"
        params = (recipient, last_id, _QUEUED, _DELIVERED)
        with self._write_lock, _sqlite_errors():
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                before = dict(db.execute(f"SELECT state, count(*) FROM message WHERE {where} GROUP BY state", params))
                if before:
                    db.execute(f"UPDATE message SET state = ?, acked_at = ? WHERE {where}", (_ACKED, now, *params))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        for state, n in before.items():
            self._tally[(recipient, MessageState[state])] -= n
            self._tally[(recipient, MessageState.ACKED)] += n
        return sum(before.values())

    def release(self, recipient: str, ids: Sequence[int]) -> int:
        """Put leased messages that were handed out but never acknowledged back in the queue."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self._write_lock, _sqlite_errors():
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                where = f"recipient = ? AND state = ? AND leased = 1 AND id IN ({marks})"
                released = db.execute(
                    f"UPDATE message SET state = ? WHERE {where}", (_QUEUED, recipient, _DELIVERED, *ids)
                ).rowcount
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        self._tally[(recipient, MessageState.DELIVERED)] -= released
        self._tally[(recipient, MessageState.QUEUED)] += released
        return released

    def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient` without changing them."""
        statement = f"SELECT {_MESSAGE_COLUMNS} FROM message WHERE id IN ({_OLDEST_QUEUED}) ORDER BY id"
        with self._read_lock, _sqlite_errors():
            return [_message(r) for r in self._reader.execute(statement, (recipient, _QUEUED, limit, MAX_BATCH_BYTES))]

    def queued(self, recipient: str) -> int:
        """How many messages wait for `recipient`; from memory, never blocks."""
        return self._tally[(recipient, MessageState.QUEUED)]

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state; from memory, never blocks."""
        return {state: n for state in MessageState if (n := self._tally[(recipient, state)]) > 0}

    def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient, for everyone at once; from memory, never blocks."""
        return {
            recipient: n
            for (recipient, state), n in list(self._tally.items())
            if state == MessageState.QUEUED and n > 0
        }

    def message_count(self) -> int:
        """Count every stored message."""
        with self._session() as session:
            return session.exec(select(func.count()).select_from(MessageRow)).one()

    # turn events

    def append_events(self, agent: str, events: Sequence[tuple[str, str]], *, now: float, keep: int) -> int:
        """Store `(type, json)` events for `agent`, dropping its oldest beyond `keep`; returns the last id."""
        with self._session() as session:
            rows = [EventRow(agent=agent, created_at=now, type=kind, data=data) for kind, data in events]
            session.add_all(rows)
            session.flush()
            last = rows[-1].id or 0
            if last % PRUNE_EVERY < len(rows):
                session.connection().execute(
                    delete(EventRow).where(col(EventRow.agent) == agent, col(EventRow.id) <= last - keep)
                )
            session.commit()
            return last

    def events(self, agent: str, *, after: int | None, limit: int) -> list[EventRow]:
        """`agent`'s events after id `after`, oldest first; with `after=None`, the last `limit` of them."""
        with self._session() as session:
            query = select(EventRow).where(col(EventRow.agent) == agent)
            if after is None:
                newest = session.exec(query.order_by(col(EventRow.id).desc()).limit(limit)).all()
                return list(reversed(newest))
            return list(session.exec(query.where(col(EventRow.id) > after).order_by(col(EventRow.id)).limit(limit)))

    # the desired hive

    def agents(self) -> Sequence[AgentRow]:
        """Every agent of the desired hive, by name."""
        with self._session() as session:
            return session.exec(select(AgentRow).order_by(col(AgentRow.name))).all()

    def put_agent(self, row: AgentRow) -> None:
        """Insert or replace an agent of the desired hive."""
        with self._session() as session:
            session.merge(row)
            session.commit()

    def delete_agent(self, name: str) -> None:
        """Remove an agent from the desired hive; its messages stay as history."""
        with self._session() as session:
            row = session.get(AgentRow, name)
            if row is not None:
                session.delete(row)
                session.commit()

    def check(self) -> None:
        """Run SQLite's quick integrity check.

        Raises:
            StorageError: the database is damaged.
        """
        with self._session() as session:
            result = session.connection().execute(text("PRAGMA quick_check")).scalar_one()
        if result != "ok":
            raise StorageError(f"the hive database failed its integrity check: {result}")
