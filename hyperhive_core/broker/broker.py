"""The async broker: durable send, blocking recv with in-process wake-ups, and inbox peeks.

SQLite stays the source of truth; a per-recipient `anyio.Event` only says "look again", so a
missed or spurious wake-up costs one query, never a message. Writes go through a one-slot limiter:
one writer thread, no lock contention inside SQLite.
"""

import functools
import time

import anyio

from hyperhive_core.broker.models import MessageRow, MessageState
from hyperhive_core.broker.store import HiveStore
from hyperhive_core.config import MAX_BODY_BYTES, MAX_INBOX_DEPTH
from hyperhive_core.errors import BodyTooLargeError


class Broker:
    """Every message of the hive goes through here."""

    def __init__(
        self, store: HiveStore, *, max_body_bytes: int = MAX_BODY_BYTES, max_inbox_depth: int = MAX_INBOX_DEPTH
    ) -> None:
        self._store = store
        self._max_body_bytes = max_body_bytes
        self._max_inbox_depth = max_inbox_depth
        self._writer = anyio.CapacityLimiter(1)
        self._wakeups: dict[str, anyio.Event] = {}

    @property
    def store(self) -> HiveStore:
        """The SQL store behind the broker."""
        return self._store

    async def send(self, sender: str, recipient: str, body: str, *, reply_to: int | None = None) -> MessageRow:
        """Commit a message and wake its recipient; returns only once the row is durable.

        The recipient must already be known to be valid: the hive checks names, the broker bodies.

        Raises:
            BodyTooLargeError: `body` is over the configured limit.
            InboxFullError: the recipient has too many unread messages.
            UnknownMessageError: `reply_to` names no message the sender took part in.
            StorageError: the database refused the write.
        """
        size = len(body.encode())
        if size > self._max_body_bytes:
            raise BodyTooLargeError(size, self._max_body_bytes)
        append = functools.partial(
            self._store.append,
            sender,
            recipient,
            body,
            reply_to=reply_to,
            now=time.time(),
            max_depth=self._max_inbox_depth,
        )
        row = await anyio.to_thread.run_sync(append, limiter=self._writer)
        if (wakeup := self._wakeups.pop(recipient, None)) is not None:
            wakeup.set()
        return row

    async def recv(self, recipient: str, *, timeout_s: float, limit: int) -> list[MessageRow]:
        """Hand out up to `limit` queued messages, waiting up to `timeout_s` for the first.

        Each message is handed out once: concurrent callers for one recipient never share one.
        Returns an empty list when the timeout passes first.

        Raises:
            StorageError: the database refused the read.
        """
        deadline = anyio.current_time() + timeout_s
        while True:
            # Take the event before looking, so a send that lands in between still wakes us.
            wakeup = self._wakeups.setdefault(recipient, anyio.Event())
            claim = functools.partial(self._store.claim, recipient, limit, now=time.time())
            # The claim runs to completion even if the caller is cancelled meanwhile (anyio
            # shields worker threads), and its rows are returned, never dropped.
            if rows := await anyio.to_thread.run_sync(claim, limiter=self._writer):
                return rows
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return []
            with anyio.move_on_after(remaining):
                await wakeup.wait()

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient`, consuming nothing."""
        return await anyio.to_thread.run_sync(self._store.peek, recipient, limit)

    async def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state."""
        return await anyio.to_thread.run_sync(self._store.counts, recipient)

    async def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient."""
        return await anyio.to_thread.run_sync(self._store.unread_counts)
