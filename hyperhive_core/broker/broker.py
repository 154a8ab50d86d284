"""The async broker: durable send, blocking recv with in-process wake-ups, and inbox peeks.

The database (a `MessageStore`: SQLite or PostgreSQL) stays the source of truth; a per-recipient
`anyio.Event` only says "look again", so a missed or spurious wake-up costs one query, never a
message. Sends that arrive while a commit is running are group-committed: the next commit takes
every waiting message in one transaction and one fsync, so throughput grows with concurrency while
each `send` still returns only after its own commit.
Each message in a group is its own savepoint: one that fails fails alone. A `RecvGate` may hold a
recipient's messages back (its turns are paused): its `recv` then hands nothing out until woken.
"""

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio

from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.storage import Appended, AppendRequest, MessageStore
from hyperhive_core.config import MAX_BODY_BYTES, MAX_INBOX_DEPTH
from hyperhive_core.errors import BodyNotTextError, BodyTooLargeError, DatabaseFullError, EmptyBodyError
from hyperhive_core.states import MessageState

# statvfs is cheap, but not free on every send: the free space is looked at most this often.
DISK_CHECK_EVERY_S = 1.0


@dataclass(slots=True, eq=False)
class _Pending:
    """A send waiting for a group commit: `wake` fires when it is stored or refused, or when it must lead."""

    request: AppendRequest
    wake: anyio.Event = field(default_factory=anyio.Event)
    lead: bool = False
    outcome: Appended | BaseException | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """What one `recv` hands out, and, when some of it was handed out before, what the reader sent since."""

    messages: list[MessageRow]
    already_sent: list[MessageRow] = field(default_factory=list[MessageRow])


@dataclass(slots=True)
class DiskGuard:
    """Refuses new messages while the state dir's filesystem has less than `min_free_bytes` free.

    The room left is for what must keep working on a full disk: handing out and acknowledging
    what is already queued (the operator can still read its agents' last words).
    """

    path: Path | None = None
    min_free_bytes: int = 0
    _checked_at: float = -1e9
    _free: int = 2**62

    def free_bytes(self, *, now: float | None = None) -> int:
        """Bytes free for the daemon's user (cached for `DISK_CHECK_EVERY_S`)."""
        now = time.monotonic() if now is None else now
        if self.path is not None and now - self._checked_at >= DISK_CHECK_EVERY_S:
            try:
                stats = os.statvfs(self.path)
                self._free = stats.f_bavail * stats.f_frsize
            except OSError:
                self._free = 2**62  # a vanished dir is the database's problem to report
            self._checked_at = now
        return self._free

    def check(self) -> None:
        """Raises DatabaseFullError when the disk is below the reserve."""
        if self.min_free_bytes and (free := self.free_bytes()) < self.min_free_bytes:
            raise DatabaseFullError(
                f"the disk holding the hive's state has {free // 2**20} MiB free, under the "
                f"{self.min_free_bytes // 2**20} MiB kept so queued messages can still be read; nothing was "
                "stored: free disk space, then send again"
            )


class RecvGate(Protocol):
    """Decides whether a recipient's messages may be handed out now (the budget keeper pauses turns)."""

    async def hold(self, recipient: str, queued: int) -> bool:
        """True while `recipient`'s messages must stay queued; whoever opens the gate wakes it (`Broker.wake`)."""
        ...


class Broker:
    """Every message of the hive goes through here."""

    def __init__(
        self,
        store: MessageStore,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_inbox_depth: int = MAX_INBOX_DEPTH,
        disk: DiskGuard | None = None,
    ) -> None:
        self._store = store
        self._max_body_bytes = max_body_bytes
        self._max_inbox_depth = max_inbox_depth
        self.disk = disk or DiskGuard()
        self._wakeups: dict[str, anyio.Event] = {}
        self._queue: list[_Pending] = []
        self._committing = False
        # Set by the hive: who may not be handed messages now. None: everyone may.
        self.gate: RecvGate | None = None
        # Set, then replaced, after each commit that stored a message: for watchers (the dashboard).
        self._committed = anyio.Event()

    @property
    def store(self) -> MessageStore:
        """The database behind the broker."""
        return self._store

    async def send(
        self, sender: str, recipient: str, body: str, *, reply_to: int | None = None, key: str | None = None
    ) -> Appended:
        """Commit a message and wake its recipient; returns only once the row is durable.

        The recipient must already be known to be valid: the hive checks names, the broker bodies.
        With `key`, a message the sender stored before under that key is returned, not stored again.

        Raises:
            EmptyBodyError: `body` is empty or only whitespace.
            BodyNotTextError: `body` holds a NUL character or a lone surrogate.
            BodyTooLargeError: `body` is over the configured limit.
            InboxFullError: the recipient has too many unread messages.
            UnknownMessageError: `reply_to` names no message the sender took part in.
            KeyReusedError: `key` stored a different message before.
            DatabaseFullError: the disk or the database's size limit leaves no room for new messages.
            StorageError: the database refused the write.
        """
        try:
            size, text = len(body.encode()), True
        except UnicodeEncodeError:  # a lone surrogate: sized as it would be stored, refused below
            size, text = len(body.encode(errors="surrogatepass")), False
        if size > self._max_body_bytes:
            raise BodyTooLargeError(size, self._max_body_bytes)
        if not body.strip():
            raise EmptyBodyError
        # PostgreSQL's text holds neither, and SQLite's would hand back what no reader can decode:
        # refused alike on both engines, before the message joins a group commit.
        if not text or "\x00" in body:
            raise BodyNotTextError
        self.disk.check()
        request = AppendRequest(sender, recipient, body, reply_to, time.time(), self._max_inbox_depth, key)
        pending = _Pending(request)
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
            outcomes: list[Appended | BaseException] = list(await self._store.append_many(requests))
        except Exception as exc:
            outcomes = [exc] * len(batch)
        finally:
            # Whatever happened, nobody may be left waiting without a leader.
            if self._queue:
                self._queue[0].lead = True
                self._queue[0].wake.set()
            else:
                self._committing = False
        stored = False
        for pending, outcome in zip(batch, outcomes, strict=True):
            pending.outcome = outcome
            if isinstance(outcome, Appended) and not outcome.duplicate:
                self.wake(outcome.row.recipient)
                stored = True
            pending.wake.set()
        if stored:
            self.note_commit()

    def note_commit(self) -> None:
        """Wake whoever waits on `next_commit`: this broker stored a message, or (on a database several
        daemons share) another daemon did."""
        self._committed.set()
        self._committed = anyio.Event()

    def next_commit(self) -> anyio.Event:
        """An event set when the next commit that stores a message is done; take it before looking at
        `store.last_id`, so a commit in between still wakes the watcher."""
        return self._committed

    def wake(self, recipient: str) -> None:
        """Make `recipient`'s waiting `recv` calls look again (a message came, or the gate opened)."""
        if (wakeup := self._wakeups.pop(recipient, None)) is not None:
            wakeup.set()

    async def recv(
        self,
        recipient: str,
        *,
        timeout_s: float,
        limit: int,
        after: int | None = None,
        reader: str | None = None,
        returning: bool = False,
    ) -> Received:
        """Hand out up to `limit` queued messages, waiting up to `timeout_s` for the first.

        Each message is handed out once: concurrent callers for one recipient never share one.
        Returns an empty list when the timeout passes first. With a `reader` (and its cursor
        `after`, the last id it finished), the reader's own leases up to the cursor are
        acknowledged first, and what is handed out is leased to it: it comes back to the queue
        if the reader goes away (`release_reader`, `hold_reader`) before a later cursor covers it.
        `returning` says the reader just (re)attached: what it still holds beyond its cursor is
        handed back to it first. While the gate holds the recipient, nothing is handed out (the
        cursor still acknowledges): the call waits for a wake-up or its timeout.

        Raises:
            StorageError: the database refused the read.
        """
        # The cursor's acknowledgement rides with the first claim (one transaction), or goes alone
        # before anything else happens: never after a wait.
        pending_ack = after if reader is not None and after else None

        async def acknowledge() -> None:
            nonlocal pending_ack
            if pending_ack is not None and reader is not None:
                last, pending_ack = pending_ack, None
                await self._store.ack_through(recipient, reader, last, now=time.time())

        reclaim_first = reader is not None and returning
        deadline = anyio.current_time() + timeout_s
        while True:
            # Take the event before looking, so a send that lands in between still wakes us.
            wakeup = self._wakeups.setdefault(recipient, anyio.Event())
            now = time.time()
            hold_due = self._store.hold_due(recipient)
            # The in-memory count is exact (it changes only after a commit), so an empty inbox
            # needs no trip to the writer thread.
            queued = self._store.queued(recipient)
            due = hold_due is not None and hold_due <= now
            gate = self.gate
            held = gate is not None and bool(queued or due or reclaim_first) and await gate.hold(recipient, queued)
            if not held:
                if reclaim_first and reader is not None:
                    reclaim_first = False
                    await acknowledge()
                    if rows := await self._store.reclaim(recipient, reader, after=after or 0, now=now):
                        return await self._received(recipient, rows)
                if queued or due:
                    cursor, pending_ack = pending_ack, None
                    # shielded: a claim runs to completion even if the caller is cancelled meanwhile,
                    # and its rows are returned, never dropped.
                    rows: list[MessageRow] = []
                    with anyio.CancelScope(shield=True):
                        rows = await self._store.claim(recipient, limit, now=now, reader=reader, ack_through=cursor)
                    if rows:
                        return await self._received(recipient, rows)
                    hold_due = self._store.hold_due(recipient)
            await acknowledge()
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return Received([])
            if hold_due is not None and not held:
                # A lease whose reader stayed away comes back to the queue then: look again.
                remaining = min(remaining, max(hold_due - time.time(), 0.0) + 0.001)
            with anyio.move_on_after(remaining):
                await wakeup.wait()

    async def _received(self, recipient: str, rows: list[MessageRow]) -> Received:
        again = [r.id for r in rows if r.deliveries > 1 and r.id is not None]
        if not again:
            return Received(rows)
        since = await self._store.sent_since(recipient, min(again))
        return Received(rows, since)

    async def ack(self, recipient: str, ids: Sequence[int]) -> tuple[list[int], list[int]]:
        """Acknowledge messages handed to `recipient`: (acknowledged, not handed to it)."""
        return await self._store.ack(recipient, ids, now=time.time())

    async def release_reader(self, recipient: str, reader: str) -> None:
        """Return an unnamed reader's leases to `recipient`'s queue (its session ended)."""
        if await self._store.release_reader(recipient, reader):
            self.wake(recipient)

    async def hold_reader(self, recipient: str, reader: str) -> None:
        """Keep a named reader's leases for it a while (its session ended; it may come back)."""
        if await self._store.hold_reader(recipient, reader, now=time.time()):
            # A waiting recv must learn when the hold ends, to take the messages then.
            self.wake(recipient)

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """Return the oldest queued messages for `recipient`, consuming nothing."""
        return await self._store.peek(recipient, limit)

    async def counts(self, recipient: str) -> dict[MessageState, int]:
        """Count `recipient`'s messages by state (kept in memory: no thread, no query)."""
        return self._store.counts(recipient)

    async def unread_counts(self) -> dict[str, int]:
        """Count queued messages per recipient (kept in memory: no thread, no query)."""
        return self._store.unread_counts()
