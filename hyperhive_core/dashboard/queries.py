"""What the dashboard reads from the hive database, through the store's SQLAlchemy engine.

The engine is the store's own (SQLite's file, or the PostgreSQL database the daemons of several
hosts share), so the same queries serve both; the broker's hot-path connections stay the broker's
(on SQLite, WAL lets these reads run beside its writer without blocking it). One query at a time,
in a worker thread; the dashboard writes nothing here. Errors become `StorageError` at this boundary.

The SQL is portable and runs on the pooled connection's own driver cursor: SQLAlchemy's rows
would double the cost of reading a page of 500 messages, and these reads need none of its types.
"""

import functools
import json
import re
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import SQLAlchemyError

from hyperhive_core.broker.engine_errors import engine_error
from hyperhive_core.states import MessageState

T = TypeVar("T")
_COLUMNS = "id, sender, recipient, body, created_at, reply_to, state"
# A thread is a chain of replies; past this many hops up or down it is cut.
MAX_THREAD_DEPTH = 50
MAX_THREAD_MESSAGES = 200


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message as the dashboard shows it."""

    id: int
    sender: str
    recipient: str
    body: str
    created_at: float
    reply_to: int | None
    state: MessageState


@dataclass(frozen=True, slots=True)
class Event:
    """A stored turn event of an agent."""

    id: int
    agent: str
    created_at: float
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Tally:
    """Per-agent counts since a cursor: messages sent and received, and when each agent was last active."""

    sent: dict[str, int]
    received: dict[str, int]
    last_at: dict[str, float]
    last_message_id: int


@dataclass(frozen=True, slots=True)
class EventTimes:
    """When each agent last reported a turn event, for events since a cursor."""

    last_at: dict[str, float]
    last_event_id: int


def _message(row: tuple[Any, ...]) -> Message:
    id_, sender, recipient, body, created_at, reply_to, state = row
    return Message(id_, sender, recipient, body, created_at, reply_to, MessageState[state])


def json_object(text: str) -> dict[str, Any] | None:
    """`text` parsed as a JSON object, or None when it is not one."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def event_data(text: str) -> dict[str, Any]:
    """A stored event's JSON, or a stand-in saying it could not be read."""
    parsed = json_object(text)
    return parsed if parsed is not None else {"type": "unreadable", "text": text[:2000]}


def _event(row: tuple[Any, ...]) -> Event:
    id_, agent, created_at, data = row
    return Event(id_, agent, created_at, event_data(str(data)))


# Portable SQL (SQLite and PostgreSQL) with `:name` parameters: the recursive terms' columns are
# cast to one type, as PostgreSQL wants.
_THREAD_ROOT = (
    "WITH RECURSIVE up(id, reply_to, depth) AS (SELECT id, reply_to, 0 FROM message WHERE id = :id "
    "UNION ALL SELECT m.id, m.reply_to, up.depth + 1 FROM message m JOIN up ON m.id = up.reply_to "
    "WHERE up.depth < :depth) SELECT id FROM up ORDER BY depth DESC LIMIT 1"
)
_THREAD_DOWN = (
    "WITH RECURSIVE down(id, depth) AS (SELECT CAST(:root AS BIGINT), 0 UNION ALL "
    "SELECT m.id, down.depth + 1 FROM message m JOIN down ON m.reply_to = down.id "
    "WHERE m.id > down.id AND down.depth < :depth) "
    f"SELECT {_COLUMNS} FROM message WHERE id IN (SELECT id FROM down) ORDER BY id LIMIT :limit"
)
_LAST_MESSAGE = "SELECT coalesce(max(id), 0) FROM message"
_LAST_EVENT = "SELECT coalesce(max(id), 0) FROM event"
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@functools.cache
def _for_driver(sql: str, engine: str) -> str:
    """`sql` with its `:name` parameters as the engine's driver takes them: sqlite3 as they are,
    psycopg as `%(name)s`."""
    return sql if engine == "sqlite" else _NAMED.sub(r"%(\1)s", sql)


class _Reads:
    """One connection's driver cursor, running the portable SQL above."""

    def __init__(self, cursor: DBAPICursor, engine: str) -> None:
        self._cursor = cursor
        self._engine = engine

    def rows(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple[Any, ...]]:
        """Every row of `sql`."""
        self._cursor.execute(_for_driver(sql, self._engine), dict(params or {}))
        # Both drivers' rows are tuples already.
        return cast(list[tuple[Any, ...]], self._cursor.fetchall())

    def first(self, sql: str, params: Mapping[str, object] | None = None) -> tuple[Any, ...] | None:
        """The first row of `sql`, or None."""
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def number(self, sql: str) -> int:
        """The number `sql` selects."""
        row = self.first(sql)
        return int(row[0]) if row is not None else 0


class HiveReader:
    """Read-only queries over the hive database for the dashboard's views, streams and stats."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._limiter = anyio.CapacityLimiter(1)

    @contextmanager
    def _read(self) -> Generator[_Reads]:
        dialect = self._engine.dialect
        try:
            # The pool's connection goes back rolled back: these reads leave no transaction open.
            with self._engine.connect() as db:
                raw = db.connection.dbapi_connection
                assert raw is not None, "a checked-out connection has its driver connection"
                cursor = raw.cursor()
                try:
                    yield _Reads(cursor, dialect.name)
                finally:
                    cursor.close()
        except (SQLAlchemyError, dialect.loaded_dbapi.Error) as exc:
            raise engine_error(self._engine, exc) from exc

    async def run(self, query: Callable[[], T]) -> T:
        """Run one of the sync queries below in the reader's worker thread."""
        return await anyio.to_thread.run_sync(query, limiter=self._limiter)

    # messages

    def messages_after(self, after: int, *, limit: int, agent: str | None = None) -> list[Message]:
        """Messages with id > `after`, oldest first; with `agent`, only those it sent or received."""
        where, params = "id > :after", dict[str, object](after=after, limit=limit)
        if agent is not None:
            where += " AND (sender = :agent OR recipient = :agent)"
            params["agent"] = agent
        with self._read() as db:
            rows = db.rows(f"SELECT {_COLUMNS} FROM message WHERE {where} ORDER BY id LIMIT :limit", params)
            return [_message(r) for r in rows]

    def latest_messages(self, *, limit: int, agent: str | None = None) -> list[Message]:
        """The newest `limit` messages, oldest first; with `agent`, only those it sent or received."""
        where, params = "", dict[str, object](limit=limit)
        if agent is not None:
            where, params["agent"] = "WHERE sender = :agent OR recipient = :agent", agent
        with self._read() as db:
            rows = db.rows(f"SELECT {_COLUMNS} FROM message {where} ORDER BY id DESC LIMIT :limit", params)
            return [_message(r) for r in reversed(rows)]

    def thread(self, message_id: int) -> list[Message]:
        """The message's thread: the `reply_to` chain up to its root, and every reply below that root."""
        with self._read() as db:
            root = db.first(_THREAD_ROOT, {"id": message_id, "depth": MAX_THREAD_DEPTH})
            if root is None:
                return []
            rows = db.rows(_THREAD_DOWN, {"root": root[0], "depth": MAX_THREAD_DEPTH, "limit": MAX_THREAD_MESSAGES})
            return [_message(r) for r in rows]

    def last_message_id(self) -> int:
        """The highest message id stored."""
        with self._read() as db:
            return db.number(_LAST_MESSAGE)

    def tally(self, after: int) -> Tally:
        """Messages sent and received per principal, and the latest time of each, for ids > `after`."""
        with self._read() as db:
            upto = db.number(_LAST_MESSAGE)
            window = {"after": after, "upto": upto}
            sent = db.rows(
                "SELECT sender, count(*), max(created_at) FROM message WHERE id > :after AND id <= :upto "
                "GROUP BY sender",
                window,
            )
            received = db.rows(
                "SELECT recipient, count(*), max(created_at) FROM message WHERE id > :after AND id <= :upto "
                "GROUP BY recipient",
                window,
            )
        last_at: dict[str, float] = {}
        for name, _, at in [*sent, *received]:
            last_at[name] = max(float(at), last_at.get(name, 0.0))
        return Tally(
            sent={name: int(n) for name, n, _ in sent},
            received={name: int(n) for name, n, _ in received},
            last_at=last_at,
            last_message_id=max(after, upto),
        )

    # turn events

    def events_after(self, agent: str, after: int, *, limit: int) -> list[Event]:
        """`agent`'s events with id > `after`, oldest first."""
        with self._read() as db:
            rows = db.rows(
                "SELECT id, agent, created_at, data FROM event WHERE agent = :agent AND id > :after "
                "ORDER BY id LIMIT :limit",
                {"agent": agent, "after": after, "limit": limit},
            )
            return [_event(r) for r in rows]

    def latest_events(self, agent: str, *, limit: int) -> list[Event]:
        """`agent`'s newest `limit` events, oldest first."""
        with self._read() as db:
            rows = db.rows(
                "SELECT id, agent, created_at, data FROM event WHERE agent = :agent ORDER BY id DESC LIMIT :limit",
                {"agent": agent, "limit": limit},
            )
            return [_event(r) for r in reversed(rows)]

    def last_event_id(self) -> int:
        """The highest event id stored (of any agent)."""
        with self._read() as db:
            return db.number(_LAST_EVENT)

    def event_times(self, after: int) -> EventTimes:
        """Each agent's latest event time, for events with id > `after`."""
        with self._read() as db:
            upto = db.number(_LAST_EVENT)
            last = db.rows(
                "SELECT agent, max(created_at) FROM event WHERE id > :after AND id <= :upto GROUP BY agent",
                {"after": after, "upto": upto},
            )
        return EventTimes({str(agent): float(at) for agent, at in last}, max(after, upto))
