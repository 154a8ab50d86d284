"""The async broker: durable send, blocking recv with in-process wake-ups, and inbox peeks.

SQLite stays the source of truth; a per-recipient `anyio.Event` only says "look again", so a
missed or spurious wake-up costs one query, never a message. Writes go through a one-slot limiter:
one writer thread, no lock contention inside SQLite. Sends that arrive while a commit is running
are group-committed: the next commit takes every waiting message in one transaction and one fsync,
so throughput grows with concurrency while each `send` still returns only after its own commit.
"""

import functools
import time
from dataclasses import dataclass, field

import anyio

from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.store import AppendRequest, HiveStore
from hyperhive_core.config import MAX_BODY_BYTES, MAX_INBOX_DEPTH
from hyperhive_core.errors import BodyTooLargeError
from hyperhive_core.states import MessageState


@dataclass(slots=True, eq=False)
class _Pending:
    """A send waiting for a group commit: `wake` fires when it is stored or refused, or when it must lead."""

    request: AppendRequest
    wake: anyio.Event = field(default_factory=anyio.Event)
    lead: bool = False
    outcome: MessageRow | BaseException | None = None


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
        self._queue: list[_Pending] = []
        self._committing = False

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
        pending = _Pending(AppendRequest(sender, recipient, body, reply_to, time.time(), self._max_inbox_depth))
        self._queue.append(pending)
        # shielded: like a write in a worker thread, a started send finishes even if its caller is
        # cancelled, and a sender chosen to lead the next commit must run it for the others.
        with anyio.CancelScope(shield=True):
            if self._committing:
                await pending.wake.wait()
            else:
                self._committing = pending.lead = True
            if pending.lead:
                await self._commit_queued()
        if isinstance(pending.outcome, BaseException):
            raise pending.outcome
        assert pending.outcome is not None, "a woken send has its outcome"
        return pending.outcome

    async def _commit_queued(self) -> None:
        """Commit every queued send in one transaction, then hand the lead to the next queued send."""
        batch, self._queue = self._queue, []
        try:
            requests = [p.request for p in batch]
            outcomes: list[MessageRow | BaseException] = list(
                await anyio.to_thread.run_sync(self._store.append_many, requests, limiter=self._writer)
            )
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            # Whatever happened, nobody may be left waiting without a leader.
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].wake.set()
            else:
                self._committing = False
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.outcome = outcome
            if isinstance(outcome, MessageRow) and (wakeup := self._wakeups.pop(outcome.recipient, None)) is not None:
                wakeup.set()
            pending.wake.set()

    async def recv(self, recipient: str, *, timeout_s: float, limit: int, after: int | None = None) -> list[MessageRow]:
        """Hand out up to `limit` queued messages, waiting up to `timeout_s` for the first.

        Each message is handed out once: concurrent callers for one recipient never share one.
        Returns an empty list when the timeout passes first. With `after` (the reader's cursor: the
        last id it finished), the reader's leased messages up to it are acknowledged first, and
        what is handed out is leased: `release` (or a restart) returns it to the queue until a
        later cursor acknowledges it.

        Raises:
            StorageError: the database refused the read.
        """
        leased = after is not None
        if after is not None:
            ack = functools.partial(self._store.ack_through, recipient, after, now=time.time())
            await anyio.to_thread.run_sync(ack, limiter=self._writer)
        deadline = anyio.current_time() + timeout_s
        while True:
            # Take the event before looking, so a send that lands in between still wakes us.
            wakeup = self._wakeups.setdefault(recipient, anyio.Event())
            # The in-memory count is exact (it changes only after a commit), so an empty inbox
            # needs no trip to the writer thread.
            if self._store.queued(recipient):
                claim = functools.partial(self._store.claim, recipient, limit, now=time.time(), leased=leased)
                # The claim runs to completion even if the caller is cancelled meanwhile (anyio
                # shields worker threads), and its rows are returned, never dropped.
                if rows := await anyio.to_thread.run_sync(claim, limiter=self._writer):
                    return rows
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return []
            with anyio.move_on_after(remaining):
                await wakeup.wait()

    async def release(self, recipient: str, ids: list[int]) -> None:
        """Return leased, unacknowledged messages to `recipient`'s queue (their session ended)."""
        if ids and await anyio.to_thread.run_sync(self._store.release, recipient, ids, limiter=self._writer):
            if (wakeup := self._wakeups.pop(recipient, None)) is not None:
                wakeup.set()

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient`, consuming nothing."""
        return await anyio.to_thread.run_sync(self._store.peek, recipient, limit)

    async def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state (kept in memory: no thread, no query)."""
        return self._store.counts(recipient)

    async def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient (kept in memory: no thread, no query)."""
        return self._store.unread_counts()
