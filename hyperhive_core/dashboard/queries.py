"""What the dashboard reads from the hive database, through the store's SQLAlchemy engine.

The engine is the store's own (SQLite's file, or the PostgreSQL database the daemons of several
hosts share), so the same queries serve both; the broker's hot-path connections stay the broker's
(on SQLite, WAL lets these reads run beside its writer without blocking it). One query at a time,
in a worker thread; the dashboard writes nothing here. Errors become `StorageError` at this boundary.
"""

import json
from collections.abc import Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import Connection, Engine, text
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


# Portable SQL (SQLite and PostgreSQL): the recursive terms' columns are cast to one type, as
# PostgreSQL wants, and every value is a bound parameter.
_THREAD_ROOT = text(
    "WITH RECURSIVE up(id, reply_to, depth) AS (SELECT id, reply_to, 0 FROM message WHERE id = :id "
    "UNION ALL SELECT m.id, m.reply_to, up.depth + 1 FROM message m JOIN up ON m.id = up.reply_to "
    "WHERE up.depth < :depth) SELECT id FROM up ORDER BY depth DESC LIMIT 1"
)
_THREAD_DOWN = text(
    "WITH RECURSIVE down(id, depth) AS (SELECT CAST(:root AS BIGINT), 0 UNION ALL "
    "SELECT m.id, down.depth + 1 FROM message m JOIN down ON m.reply_to = down.id "
    "WHERE m.id > down.id AND down.depth < :depth) "
    f"SELECT {_COLUMNS} FROM message WHERE id IN (SELECT id FROM down) ORDER BY id LIMIT :limit"
)
_LAST_MESSAGE = text("SELECT coalesce(max(id), 0) FROM message")
_LAST_EVENT = text("SELECT coalesce(max(id), 0) FROM event")


class HiveReader:
    """Read-only queries over the hive database for the dashboard's views, streams and stats."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._limiter = anyio.CapacityLimiter(1)

    @contextmanager
    def _read(self) -> Generator[Connection]:
        try:
            with self._engine.connect() as db:
                yield db
        except SQLAlchemyError as exc:
            raise engine_error(self._engine, exc) from exc

    @staticmethod
    def _rows(db: Connection, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in db.execute(text(sql), params)]

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
            rows = self._rows(db, f"SELECT {_COLUMNS} FROM message WHERE {where} ORDER BY id LIMIT :limit", params)
            return [_message(r) for r in rows]

    def latest_messages(self, *, limit: int, agent: str | None = None) -> list[Message]:
        """The newest `limit` messages, oldest first; with `agent`, only those it sent or received."""
        where, params = "", dict[str, object](limit=limit)
        if agent is not None:
            where, params["agent"] = "WHERE sender = :agent OR recipient = :agent", agent
        with self._read() as db:
            rows = self._rows(db, f"SELECT {_COLUMNS} FROM message {where} ORDER BY id DESC LIMIT :limit", params)
            return [_message(r) for r in reversed(rows)]

    def thread(self, message_id: int) -> list[Message]:
        """The message's thread: the `reply_to` chain up to its root, and every reply below that root."""
        with self._read() as db:
            root = db.execute(_THREAD_ROOT, {"id": message_id, "depth": MAX_THREAD_DEPTH}).first()
            if root is None:
                return []
            rows = db.execute(_THREAD_DOWN, {"root": root[0], "depth": MAX_THREAD_DEPTH, "limit": MAX_THREAD_MESSAGES})
            return [_message(tuple(r)) for r in rows]

    def last_message_id(self) -> int:
        """The highest message id stored."""
        with self._read() as db:
            return int(db.execute(_LAST_MESSAGE).scalar_one())

    def tally(self, after: int) -> Tally:
        """Messages sent and received per principal, and the latest time of each, for ids > `after`."""
        with self._read() as db:
            upto = int(db.execute(_LAST_MESSAGE).scalar_one())
            window = {"after": after, "upto": upto}
            sent = self._rows(
                db,
                "SELECT sender, count(*), max(created_at) FROM message WHERE id > :after AND id <= :upto "
                "GROUP BY sender",
                window,
            )
            received = self._rows(
                db,
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
            rows = self._rows(
                db,
                "SELECT id, agent, created_at, data FROM event WHERE agent = :agent AND id > :after "
                "ORDER BY id LIMIT :limit",
                {"agent": agent, "after": after, "limit": limit},
            )
            return [_event(r) for r in rows]

    def latest_events(self, agent: str, *, limit: int) -> list[Event]:
        """`agent`'s newest `limit` events, oldest first."""
        with self._read() as db:
            rows = self._rows(
                db,
                "SELECT id, agent, created_at, data FROM event WHERE agent = :agent ORDER BY id DESC LIMIT :limit",
                {"agent": agent, "limit": limit},
            )
            return [_event(r) for r in reversed(rows)]

    def last_event_id(self) -> int:
        """The highest event id stored (of any agent)."""
        with self._read() as db:
            return int(db.execute(_LAST_EVENT).scalar_one())

    def event_times(self, after: int) -> EventTimes:
        """Each agent's latest event time, for events with id > `after`."""
        with self._read() as db:
            upto = int(db.execute(_LAST_EVENT).scalar_one())
            last = self._rows(
                db,
                "SELECT agent, max(created_at) FROM event WHERE id > :after AND id <= :upto GROUP BY agent",
                {"after": after, "upto": upto},
            )
        return EventTimes({str(agent): float(at) for agent, at in last}, max(after, upto))
