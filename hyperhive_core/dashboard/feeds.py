"""Live streams for the dashboard's SSE clients: one reader per source, a bounded queue per client.

A feed reads new rows once (messages after each commit, an agent's turn events as they are
reported), renders them once, and offers each batch to every subscriber without waiting: a
client whose queue is full is dropped (its stream ends, the browser reconnects with
Last-Event-ID and replays from the database), so a slow browser never slows the daemon.

No gaps, no duplicates: a batch says which ids it covers (`after < id <= upto`). A subscriber
keeps the position up to which it has seen the source; a batch that starts past it is preceded
by a catch-up read from the database, and entries at or before it are skipped. The same rule replays a
reconnecting client from its Last-Event-ID.
"""

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from sse_starlette import ServerSentEvent

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.models import EventRow

logger = logging.getLogger(__name__)

# Batches a client may have waiting before it counts as slow and is dropped.
QUEUE_BATCHES = 256
# Rows read from the database at once, by a feed or a replay.
PAGE_ROWS = 500
# A replay longer than this is cut: the client is told to reload instead.
MAX_REPLAY_ROWS = 5_000
# Under a steady flood a feed reads at most this often: many commits, one read.
COALESCE_S = 0.02
# While anyone listens, the message feed looks this often even without a wake-up (another daemon's
# commit whose notification was lost).
RECHECK_S = 1.0
# How long an agent's event feed waits for an event before it looks whether anyone still listens.
EVENT_WAIT_S = 15.0


@dataclass(frozen=True, slots=True)
class Entry:
    """One rendered row: its id (the SSE event id), who it concerns (for filters), and its SSE frame,
    encoded once by the feed for every client."""

    id: int
    agents: tuple[str, ...]
    frame: bytes

    @classmethod
    def of(cls, id: int, agents: tuple[str, ...], data: str, *, event: str) -> "Entry":
        """An entry whose frame is the SSE event `event` with `data`, under the id `id`."""
        return cls(id, agents, ServerSentEvent(data, event=event, id=str(id)).encode())


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries covering every row with `after < id <= upto` (some may be filtered out later)."""

    after: int
    upto: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """A replay too long to send: the client should reload (`skipped` rows were not sent)."""

    skipped: int


# Entries after an id, oldest first: (after, limit, agent filter) -> entries.
Fetch = Callable[[int, int, str | None], Awaitable[list[Entry]]]


@dataclass(eq=False)
class Subscription:
    """One client's bounded queue; `dropped` is set when the client fell too far behind."""

    send: MemoryObjectSendStream[Batch]
    receive: MemoryObjectReceiveStream[Batch]
    dropped: anyio.Event = field(default_factory=anyio.Event)

    def offer(self, batch: Batch) -> bool:
        """Queue `batch` without waiting; False (and dropped) when the queue is full."""
        try:
            self.send.send_nowait(batch)
        except anyio.WouldBlock:
            self.dropped.set()
            self.send.close()
            return False
        except anyio.BrokenResourceError:
            return False
        return True


class Feed:
    """The subscribers of one source and the publishing side of it."""

    def __init__(self, *, queue_batches: int = QUEUE_BATCHES) -> None:
        self._queue_batches = queue_batches
        self._subscribers: set[Subscription] = set()
        self._closed = False
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        """How many clients listen."""
        return len(self._subscribers)

    @contextmanager
    def subscribe(self, dropped: anyio.Event | None = None) -> Generator[Subscription]:
        """A queue that receives every batch published from now on, until the block ends; `dropped`
        (made here when not given) is set if the subscriber falls too far behind."""
        send, receive = anyio.create_memory_object_stream[Batch](self._queue_batches)
        subscription = Subscription(send, receive, dropped or anyio.Event())
        if self._closed:
            send.close()
        else:
            self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            send.close()
            receive.close()

    def close(self) -> None:
        """End every subscriber's stream (after what it has queued), and any later one at once."""
        self._closed = True
        for subscription in self._subscribers:
            subscription.send.close()
        self._subscribers.clear()

    def publish(self, batch: Batch) -> None:
        """Offer `batch` to every subscriber; the slow ones are dropped, never waited for."""
        for subscription in list(self._subscribers):
            if not subscription.offer(batch):
                self._subscribers.discard(subscription)
                self.dropped += 1
                logger.info("a dashboard client fell %d batches behind; dropped (it replays)", self._queue_batches)


class MessageFeed(Feed):
    """New messages, read from the database after each commit while anyone listens.

    A commit of this daemon wakes it; on PostgreSQL the listener wakes it for what other daemons
    commit (their notifications), and while anyone listens it also looks every `RECHECK_S`, so a
    lost notification delays a message, never hides it. It reads what is new from the database
    itself: the store's own count of ids knows only this daemon's commits.
    """

    def __init__(
        self, broker: Broker, fetch: Fetch, newest: Callable[[], Awaitable[int]], *, queue_batches: int = QUEUE_BATCHES
    ) -> None:
        super().__init__(queue_batches=queue_batches)
        self._broker = broker
        self._fetch = fetch
        self._newest = newest

    async def run(self) -> None:
        """Publish every committed message, forever."""
        store = self._broker.store
        last = await self._newest()
        look_at = anyio.current_time() + RECHECK_S
        while True:
            committed = self._broker.next_commit()
            if not self.subscribers:
                # Nobody listens: skip ahead (a client that comes later replays from the database).
                # Whether anyone listens is checked after each wait: a client that subscribed
                # meanwhile may not have replayed those rows yet, so the feed publishes them.
                await committed.wait()
                if not self.subscribers:
                    last = max(last, store.last_id)  # this daemon's commits, from memory
                if anyio.current_time() >= look_at:
                    # Other daemons' commits (a shared database), now and then: a client that comes
                    # after a long quiet is not first handed all of them again.
                    newest = await self._newest()
                    if not self.subscribers:
                        last = max(last, newest)
                    look_at = anyio.current_time() + RECHECK_S
                continue
            entries = await self._fetch(last, PAGE_ROWS, None)
            if not entries:
                with anyio.move_on_after(RECHECK_S):
                    await committed.wait()
                continue
            upto = entries[-1].id
            self.publish(Batch(last, upto, tuple(entries)))
            last = upto
            await anyio.sleep(COALESCE_S)


class EventFeed(Feed):
    """One agent's turn events, read as the agent reports them while anyone listens."""

    def __init__(
        self, agent: str, events: EventLog, start: int, convert: Callable[[EventRow], Entry], *, wait_s: float
    ) -> None:
        super().__init__()
        self.agent = agent
        self._wait_s = wait_s
        self._events = events
        self._last = start
        self._convert = convert

    async def run(self, done: Callable[[], None]) -> None:
        """Publish the agent's events until nobody listens; then `done` unregisters the feed."""
        try:
            while self.subscribers:
                rows = await self._events.read(self.agent, after=self._last, limit=PAGE_ROWS, wait_s=self._wait_s)
                if rows:
                    upto = rows[-1].id or self._last
                    self.publish(Batch(self._last, upto, tuple(self._convert(r) for r in rows)))
                    self._last = upto
        finally:
            done()


class EventFeeds:
    """An `EventFeed` per agent somebody watches, each run in the dashboard's task group."""

    def __init__(
        self,
        tg: TaskGroup,
        events: EventLog,
        last_event_id: Callable[[], Awaitable[int]],
        convert: Callable[[EventRow], Entry],
    ) -> None:
        self._tg = tg
        self._events = events
        self._last_event_id = last_event_id
        self._convert = convert
        self._feeds: dict[str, EventFeed] = {}
        self._closed = False

    async def feed(self, agent: str, *, remote: bool = False) -> EventFeed:
        """The running feed of `agent`'s events (started if none runs); subscribe to it at once.

        `remote`: another host's agent, whose reports wake nothing here: its feed looks every `RECHECK_S`.
        """
        if (feed := self._feeds.get(agent)) is not None:
            return feed
        start = await self._last_event_id()
        if (feed := self._feeds.get(agent)) is not None:  # another client started it meanwhile
            return feed
        feed = EventFeed(agent, self._events, start, self._convert, wait_s=RECHECK_S if remote else EVENT_WAIT_S)
        self._feeds[agent] = feed

        def done() -> None:
            if self._feeds.get(agent) is feed:
                del self._feeds[agent]

        if self._closed:
            feed.close()
        else:
            self._tg.start_soon(feed.run, done)
        return feed

    def close(self) -> None:
        """End every stream of every feed, and any opened later."""
        self._closed = True
        for feed in self._feeds.values():
            feed.close()


async def follow(
    feed: Feed, fetch: Fetch, *, cursor: int, agent: str | None = None, dropped: anyio.Event | None = None
) -> AsyncGenerator[list[Entry] | Gap]:
    """Every entry after `cursor` (matching `agent`), then live ones, with no gap and no duplicate;
    in runs (a replayed page, a published batch), each sent to the client in one write.

    Subscribes before the replay, so nothing committed meanwhile is missed. Ends (after a `Gap`)
    when the replay is too long, and when the client fell behind and was dropped: the browser
    reconnects with the last id it got and carries on from the database.
    """
    with feed.subscribe(dropped) as subscription:
        seen = cursor
        replayed = 0
        while True:  # the replay: pages until a short one
            entries = await fetch(seen, PAGE_ROWS, agent)
            if entries:
                yield entries
                seen = entries[-1].id
            replayed += len(entries)
            if len(entries) < PAGE_ROWS:
                break
            if replayed >= MAX_REPLAY_ROWS:
                yield Gap(skipped=replayed)
                return
        async for batch in subscription.receive:
            if subscription.dropped.is_set():
                return
            while batch.after > seen:  # rows the feed published before we caught up
                entries = [e for e in await fetch(seen, PAGE_ROWS, agent) if e.id <= batch.after]
                if entries:
                    yield entries
                if len(entries) < PAGE_ROWS:
                    seen = batch.after
                    break
                seen = entries[-1].id
            entries = [e for e in batch.entries if e.id > seen and (agent is None or agent in e.agents)]
            if entries:
                yield entries
            seen = max(seen, batch.upto)
