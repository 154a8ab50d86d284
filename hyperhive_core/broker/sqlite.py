"""The broker's SQLite engine: `HiveStore`'s blocking calls, run in worker threads.

Writes go through a one-slot limiter: one writer thread, no lock contention inside SQLite (the
broker's group commit makes that one thread commit many sends per fsync). Reads of the hot path
run beside the writer on the store's own reader connection.
"""

import functools
from collections.abc import Sequence

import anyio
from sqlalchemy import Engine
from sqlmodel import SQLModel

from hyperhive_core.broker.models import AgentRow, EventRow, MessageRow
from hyperhive_core.broker.storage import MAX_ALREADY_SENT, Appended, AppendRequest
from hyperhive_core.broker.store import HiveStore
from hyperhive_core.errors import BrokerError
from hyperhive_core.states import MessageState


class SqliteMessageStore:
    """`MessageStore` on one SQLite file."""

    def __init__(self, store: HiveStore) -> None:
        self.store = store
        self._writer = anyio.CapacityLimiter(1)

    @property
    def engine(self) -> Engine:
        """The SQLite file's engine."""
        return self.store.engine

    @property
    def last_id(self) -> int:
        """The highest message id committed."""
        return self.store.last_id

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended | BrokerError]:
        """See `MessageStore.append_many`: one transaction, one fsync."""
        return await anyio.to_thread.run_sync(self.store.append_many, requests, limiter=self._writer)

    async def claim(
        self, recipient: str, limit: int, *, now: float, reader: str | None = None, ack_through: int | None = None
    ) -> list[MessageRow]:
        """See `MessageStore.claim`."""
        claim = functools.partial(self.store.claim, recipient, limit, now=now, reader=reader, ack_through=ack_through)
        # anyio shields worker threads: the claim runs to completion even if the caller is
        # cancelled meanwhile, and the broker returns its rows, never drops them.
        return await anyio.to_thread.run_sync(claim, limiter=self._writer)

    async def reclaim(self, recipient: str, reader: str, *, after: int, now: float) -> list[MessageRow]:
        """See `MessageStore.reclaim`."""
        reclaim = functools.partial(self.store.reclaim, recipient, reader, after=after, now=now)
        return await anyio.to_thread.run_sync(reclaim, limiter=self._writer)

    async def ack_through(self, recipient: str, reader: str, last_id: int, *, now: float) -> int:
        """See `MessageStore.ack_through`."""
        ack = functools.partial(self.store.ack_through, recipient, reader, last_id, now=now)
        return await anyio.to_thread.run_sync(ack, limiter=self._writer)

    async def ack(self, recipient: str, ids: Sequence[int], *, now: float) -> tuple[list[int], list[int]]:
        """See `MessageStore.ack`."""
        ack = functools.partial(self.store.ack, recipient, ids, now=now)
        return await anyio.to_thread.run_sync(ack, limiter=self._writer)

    async def release_reader(self, recipient: str, reader: str) -> int:
        """See `MessageStore.release_reader`."""
        return await anyio.to_thread.run_sync(self.store.release_reader, recipient, reader, limiter=self._writer)

    async def hold_reader(self, recipient: str, reader: str, *, now: float) -> int:
        """See `MessageStore.hold_reader`."""
        hold = functools.partial(self.store.hold_reader, recipient, reader, now=now)
        return await anyio.to_thread.run_sync(hold, limiter=self._writer)

    async def sent_since(self, sender: str, after_id: int, limit: int = MAX_ALREADY_SENT) -> list[MessageRow]:
        """See `MessageStore.sent_since`."""
        return await anyio.to_thread.run_sync(self.store.sent_since, sender, after_id, limit)

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """See `MessageStore.peek`."""
        return await anyio.to_thread.run_sync(self.store.peek, recipient, limit)

    def hold_due(self, recipient: str) -> float | None:
        """See `MessageStore.hold_due`."""
        return self.store.hold_due(recipient)

    def queued(self, recipient: str) -> int:
        """See `MessageStore.queued`."""
        return self.store.queued(recipient)

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """See `MessageStore.counts`."""
        return self.store.counts(recipient)

    def totals(self) -> dict[MessageState, int]:
        """See `MessageStore.totals`."""
        return self.store.totals()

    def unread_counts(self) -> dict[str, int]:
        """See `MessageStore.unread_counts`."""
        return self.store.unread_counts()

    def message_count(self) -> int:
        """See `MessageStore.message_count`."""
        return self.store.message_count()

    def append_events(
        self, agent: str, events: Sequence[tuple[str, str]], *, now: float, keep: int, also: Sequence[SQLModel] = ()
    ) -> int:
        """See `MessageStore.append_events`."""
        return self.store.append_events(agent, events, now=now, keep=keep, also=also)

    def events(self, agent: str, *, after: int | None, limit: int) -> list[EventRow]:
        """See `MessageStore.events`."""
        return self.store.events(agent, after=after, limit=limit)

    def agents(self) -> Sequence[AgentRow]:
        """See `MessageStore.agents`."""
        return self.store.agents()

    def delete_agent(self, name: str) -> None:
        """See `MessageStore.delete_agent`."""
        self.store.delete_agent(name)
