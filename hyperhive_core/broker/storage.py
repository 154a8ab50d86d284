"""What the broker needs of a database, whichever engine holds it: `MessageStore`, and its values.

Two engines implement it: SQLite (`sqlite.SqliteMessageStore`, the embedded default) and
PostgreSQL (`postgres.PgStore`, one database shared by the daemons of several hosts). Both keep
the same rules: a send returns once its row is durable, a message is handed out to one reader at a
time, a cursor acknowledges only its own reader's leases, a key stores a send once per sender.
Reads marked "from memory" never block: each store keeps per-recipient counts by state, changed
only after its own commits (and, on PostgreSQL, refreshed from the database).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlmodel import SQLModel

from hyperhive_core.broker.models import AgentRow, EventRow, MessageRow
from hyperhive_core.errors import BrokerError
from hyperhive_core.states import MessageState

# At most this many of a reader's own earlier sends come with a message handed out again.
MAX_ALREADY_SENT = 20
# Leases of a reader that did not name itself: "~" cannot start a name a client gives.
UNNAMED_READER_PREFIX = "~"
# Bodies one recv or inbox hands out at most (and always one message): bounds the bytes of every
# answer the daemon builds, so a client that never reads its answers cannot make it hold much.
MAX_BATCH_BYTES = 1024 * 1024
# The message table's columns in the order `message_row` reads them.
MESSAGE_COLUMNS = (
    "id, sender, recipient, body, created_at, reply_to, state, delivered_at, acked_at, leased, reader, deliveries"
)
# Pruning an agent's old events costs a DELETE; do it once every this many appends.
PRUNE_EVERY = 100


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One message to store; see `MessageStore.append_many`."""

    sender: str
    recipient: str
    body: str
    reply_to: int | None
    now: float
    max_depth: int
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    """A stored message; `duplicate` when a send with the same key had stored it before."""

    row: MessageRow
    duplicate: bool = False


def message_row(row: tuple[Any, ...]) -> MessageRow:
    """The message of a row selected as `MESSAGE_COLUMNS` (the state as its member's name, as SQLAlchemy stores it)."""
    id_, sender, recipient, body, created_at, reply_to, state, delivered_at, acked_at, leased, reader, deliveries = row
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
        reader=reader,
        deliveries=deliveries or 0,
    )


class MessageStore(Protocol):
    """The hive's messages, turn events and desired agents in one database."""

    @property
    def engine(self) -> Engine:
        """A SQLAlchemy engine on the same database, for the tables other subsystems keep."""
        ...

    @property
    def last_id(self) -> int:
        """The highest message id this process knows committed."""
        ...

    async def append_many(self, requests: Sequence[AppendRequest]) -> list[Appended | BrokerError]:
        """Commit several messages in one transaction; each is checked alone and fails alone.

        A message fails with `InboxFullError` (its recipient has `max_depth` unread),
        `UnknownMessageError` (`reply_to` names no message its sender took part in), `KeyReusedError`
        (its key stored a different message) or `DatabaseFullError`; a reply acknowledges the
        message it answers; a key its sender used before returns that message as a duplicate.

        Raises:
            StorageError: the database refused the transaction; none of the messages is stored.
        """
        ...

    async def claim(
        self, recipient: str, limit: int, *, now: float, reader: str | None = None, ack_through: int | None = None
    ) -> list[MessageRow]:
        """Mark up to `limit` of the oldest queued messages delivered (leased to `reader`) and return them.

        Leases whose reader stayed away past their hold go back to the queue first; with
        `ack_through` (the reader's cursor) its leases up to it are acknowledged in the same transaction.
        """
        ...

    async def reclaim(self, recipient: str, reader: str, *, after: int, now: float) -> list[MessageRow]:
        """Hand a returning reader back what it holds beyond its cursor `after`, oldest first."""
        ...

    async def ack_through(self, recipient: str, reader: str, last_id: int, *, now: float) -> int:
        """Acknowledge `reader`'s own leases of `recipient` up to id `last_id`; returns how many."""
        ...

    async def ack(self, recipient: str, ids: Sequence[int], *, now: float) -> tuple[list[int], list[int]]:
        """Acknowledge messages handed to `recipient`: (acked now or before, not handed to it)."""
        ...

    async def release_reader(self, recipient: str, reader: str) -> int:
        """Put every lease `reader` holds back in `recipient`'s queue; returns how many."""
        ...

    async def hold_reader(self, recipient: str, reader: str, *, now: float) -> int:
        """Keep `reader`'s leases for it for the store's lease hold; returns how many."""
        ...

    async def sent_since(self, sender: str, after_id: int, limit: int = MAX_ALREADY_SENT) -> list[MessageRow]:
        """What `sender` sent after message `after_id` was stored, oldest first."""
        ...

    async def peek(self, recipient: str, limit: int) -> list[MessageRow]:
        """The oldest queued messages for `recipient`, unchanged."""
        ...

    def hold_due(self, recipient: str) -> float | None:
        """When the earliest hold on `recipient`'s leases ends; from memory."""
        ...

    def queued(self, recipient: str) -> int:
        """How many messages wait for `recipient`; from memory."""
        ...

    def counts(self, recipient: str) -> dict[MessageState, int]:
        """`recipient`'s messages by state; from memory."""
        ...

    def totals(self) -> dict[MessageState, int]:
        """Every message by state; from memory."""
        ...

    def unread_counts(self) -> dict[str, int]:
        """Queued messages per recipient; from memory."""
        ...

    # Blocking calls, run in a worker thread by their callers (SQLAlchemy sessions on `engine`).

    def message_count(self) -> int:
        """Count every stored message."""
        ...

    def append_events(
        self, agent: str, events: Sequence[tuple[str, str]], *, now: float, keep: int, also: Sequence[SQLModel] = ()
    ) -> int:
        """Store `(type, json)` events for `agent` (and `also` rows, same commit), keeping its newest `keep`."""
        ...

    def events(self, agent: str, *, after: int | None, limit: int) -> list[EventRow]:
        """`agent`'s events after id `after`, oldest first; with `after=None`, the last `limit` of them."""
        ...

    def agents(self) -> Sequence[AgentRow]:
        """Every agent of the desired hive, by name."""
        ...

    def delete_agent(self, name: str) -> None:
        """Remove an agent from the desired hive; its messages stay as history."""
        ...


@dataclass(frozen=True, slots=True)
class Placed:
    """One agent of a hive of several hosts: its host, and whether that host heart-beats."""

    name: str
    host: str
    up: bool


class AgentDirectory(Protocol):
    """Which host runs an agent this daemon does not (the daemons of several hosts share one database)."""

    @property
    def host(self) -> str:
        """This daemon's host."""
        ...

    async def host_of(self, name: str) -> str | None:
        """The live host that runs `name`, or None."""
        ...

    async def everyone(self) -> list[Placed]:
        """Every placed agent of every host, by name."""
        ...

    async def hosts(self) -> dict[str, bool]:
        """Every host that ever heart-beat, and whether it is up."""
        ...

    async def place(self, names: Sequence[str]) -> None:
        """Publish `names` as this host's agents now, ahead of the next heartbeat."""
        ...
