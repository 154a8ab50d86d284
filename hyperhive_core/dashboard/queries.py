"""What the dashboard reads from the hive database, on its own read-only connection.

The broker's writer and reader connections stay the broker's: the dashboard opens the file with
`mode=ro` (WAL lets it read beside the writer without blocking it) and runs one query at a time in
a worker thread. It writes nothing here; sqlite3 errors become `StorageError` at this boundary.
"""

import json
import sqlite3
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio

from hyperhive_core.broker.store import storage_error
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


class HiveReader:
    """Read-only queries over the hive database for the dashboard's views, streams and stats."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")
            self._db = db
        return self._db

    def close(self) -> None:
        """Close the connection (the next query opens it again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _read(self) -> Generator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connect()
            except sqlite3.Error as exc:
                raise storage_error(exc) from exc

    async def run(self, query: Callable[[], T]) -> T:
        """Run one of the sync queries below in the reader's worker thread."""
        return await anyio.to_thread.run_sync(query, limiter=self._limiter)

    # messages

    def messages_after(self, after: int, *, limit: int, agent: str | None = None) -> list[Message]:
        """Messages with id > `after`, oldest first; with `agent`, only those it sent or received."""
        where, params = "id > ?", [after]
        if agent is not None:
            where += " AND (sender = ? OR recipient = ?)"
            params += [agent, agent]
        with self._read() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM message WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
            return [_message(r) for r in rows]

    def latest_messages(self, *, limit: int, agent: str | None = None) -> list[Message]:
        """The newest `limit` messages, oldest first; with `agent`, only those it sent or received."""
        where, params = "", list[object]()
        if agent is not None:
            where, params = "WHERE sender = ? OR recipient = ?", [agent, agent]
        with self._read() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM message {where} ORDER BY id DESC LIMIT ?", (*params, limit))
            return [_message(r) for r in reversed(rows.fetchall())]

    def thread(self, message_id: int) -> list[Message]:
        """The message's thread: the `reply_to` chain up to its root, and every reply below that root."""
        up = (
            "WITH RECURSIVE up(id, reply_to, depth) AS (SELECT id, reply_to, 0 FROM message WHERE id = ? "
            "UNION ALL SELECT m.id, m.reply_to, up.depth + 1 FROM message m JOIN up ON m.id = up.reply_to "
            "WHERE up.depth < ?) SELECT id FROM up ORDER BY depth DESC LIMIT 1"
        )
        down = (
            "WITH RECURSIVE down(id, depth) AS (SELECT ?, 0 UNION ALL SELECT m.id, down.depth + 1 FROM message m "
            "JOIN down ON m.reply_to = down.id WHERE m.id > down.id AND down.depth < ?) "
            f"SELECT {_COLUMNS} FROM message WHERE id IN (SELECT id FROM down) ORDER BY id LIMIT ?"
        )
        with self._read() as db:
            root = db.execute(up, (message_id, MAX_THREAD_DEPTH)).fetchone()
            if root is None:
                return []
            rows = db.execute(down, (root[0], MAX_THREAD_DEPTH, MAX_THREAD_MESSAGES))
            return [_message(r) for r in rows]

    def last_message_id(self) -> int:
        """The highest message id stored."""
        with self._read() as db:
            return int(db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0])

    def tally(self, after: int) -> Tally:
        """Messages sent and received per principal, and the latest time of each, for ids > `after`."""
        with self._read() as db:
            upto = int(db.execute("SELECT coalesce(max(id), 0) FROM message").fetchone()[0])
            window = (after, upto)
            sent = db.execute(
                "SELECT sender, count(*), max(created_at) FROM message WHERE id > ? AND id <= ? GROUP BY sender", window
            ).fetchall()
            received = db.execute(
                "SELECT recipient, count(*), max(created_at) FROM message WHERE id > ? AND id <= ? GROUP BY recipient",
                window,
            ).fetchall()
        last_at: dict[str, float] = {}
        for name, _, at in [*sent, *received]:
            last_at[name] = max(at, last_at.get(name, 0.0))
        return Tally(
            sent={name: n for name, n, _ in sent},
            received={name: n for name, n, _ in received},
            last_at=last_at,
            last_message_id=max(after, upto),
        )

    # turn events

    def events_after(self, agent: str, after: int, *, limit: int) -> list[Event]:
        """`agent`'s events with id > `after`, oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, agent, created_at, data FROM event WHERE agent = ? AND id > ? ORDER BY id LIMIT ?",
                (agent, after, limit),
            )
            return [_event(r) for r in rows]

    def latest_events(self, agent: str, *, limit: int) -> list[Event]:
        """`agent`'s newest `limit` events, oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT id, agent, created_at, data FROM event WHERE agent = ? ORDER BY id DESC LIMIT ?",
                (agent, limit),
            ).fetchall()
            return [_event(r) for r in reversed(rows)]

    def last_event_id(self) -> int:
        """The highest event id stored (of any agent)."""
        with self._read() as db:
            return int(db.execute("SELECT coalesce(max(id), 0) FROM event").fetchone()[0])

    def event_times(self, after: int) -> EventTimes:
        """Each agent's latest event time, for events with id > `after`."""
        with self._read() as db:
            upto = int(db.execute("SELECT coalesce(max(id), 0) FROM event").fetchone()[0])
            last = db.execute(
                "SELECT agent, max(created_at) FROM event WHERE id > ? AND id <= ? GROUP BY agent", (after, upto)
            ).fetchall()
        return EventTimes(dict(last), max(after, upto))
