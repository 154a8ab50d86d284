"""Per-agent totals the agents view and the sampler show: messages sent and received, last activity.

Kept in memory and brought up to date on demand by reading only what is new since the last look
(message and event ids only grow), so an idle dashboard costs nothing and a busy one reads each
row once. (Tokens and cost are the daemon's own record: `hive.budgets`, `AgentInfo.usage_total`.)
"""

import functools
from collections import Counter

import anyio

from hyperhive_core.dashboard.queries import HiveReader


class Activity:
    """Running totals per principal, refreshed incrementally."""

    def __init__(self, reader: HiveReader) -> None:
        self._reader = reader
        self._lock = anyio.Lock()
        self._message_cursor = 0
        self._event_cursor = 0
        self.sent = Counter[str]()
        self.received = Counter[str]()
        self.last_at: dict[str, float] = {}

    @property
    def total_sent(self) -> int:
        """Every message stored so far (each has one sender)."""
        return sum(self.sent.values())

    async def refresh(self) -> None:
        """Read what is new since the last refresh.

        Raises:
            StorageError: the database could not be read.
        """
        async with self._lock:
            reader = self._reader
            tally = await reader.run(functools.partial(reader.tally, self._message_cursor))
            events = await reader.run(functools.partial(reader.event_times, self._event_cursor))
            self.sent.update(tally.sent)
            self.received.update(tally.received)
            for agent, at in [*tally.last_at.items(), *events.last_at.items()]:
                self.last_at[agent] = max(at, self.last_at.get(agent, 0.0))
            self._message_cursor = tally.last_message_id
            self._event_cursor = events.last_event_id
