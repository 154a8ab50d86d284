"""Who holds leases: readers, and the connections they read on.

A recv with a cursor leases what it hands out to a reader. A reader that names itself (the turn
loop: `turn-loop`) is one logical reader across its connections: when the last of them ends, its
leases are held for it a while (`HiveStore.hold_reader`), and when it comes back it gets them first.
A reader that gives no name is its connection: its leases go back to the queue when the connection
ends. Names are per principal, so no agent can touch another's leases.
"""

from dataclasses import dataclass, field

from hyperhive_core.broker.storage import UNNAMED_READER_PREFIX


@dataclass(frozen=True, slots=True)
class ReaderKey:
    """One reader of one principal's inbox."""

    principal: str
    reader: str

    @property
    def named(self) -> bool:
        """Whether the reader chose its name (and so may come back for its leases)."""
        return not self.reader.startswith(UNNAMED_READER_PREFIX)


def unnamed_reader(boot_id: str, connection_id: int) -> str:
    """The reader name of a connection that gave none; unique across daemon restarts."""
    return f"{UNNAMED_READER_PREFIX}{boot_id}-{connection_id}"


@dataclass(slots=True)
class ReaderRegistry:
    """How many live connections each named reader reads on."""

    _attached: dict[ReaderKey, int] = field(default_factory=dict[ReaderKey, int])

    def attach(self, key: ReaderKey) -> None:
        """A connection started reading as `key`."""
        self._attached[key] = self._attached.get(key, 0) + 1

    def detach(self, key: ReaderKey) -> bool:
        """A connection reading as `key` ended; True when it was the reader's last one."""
        left = self._attached.get(key, 1) - 1
        if left > 0:
            self._attached[key] = left
            return False
        self._attached.pop(key, None)
        return True
