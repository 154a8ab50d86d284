"""Per-agent totals the agents view and the sampler show: sent and received, last activity, tokens, cost.

Kept in memory and brought up to date on demand by reading only what is new since the last look
(message and event ids only grow), so an idle dashboard costs nothing and a busy one reads each
row once. Tokens and cost come from claude's `result` events in the event log (the newest 5,000
per agent are kept there).
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
        self.tokens = Counter[str]()
        self.turns = Counter[str]()
        self.cost_usd: dict[str, float] = {}
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
            usage = await reader.run(functools.partial(reader.usage, self._event_cursor))
            self.sent.update(tally.sent)
            self.received.update(tally.received)
            self.tokens.update(usage.tokens)
            self.turns.update(usage.turns)
            for agent, cost in usage.cost_usd.items():
                self.cost_usd[agent] = self.cost_usd.get(agent, 0.0) + cost
            for agent, at in [*tally.last_at.items(), *usage.last_at.items()]:
                self.last_at[agent] = max(at, self.last_at.get(agent, 0.0))
            self._message_cursor = tally.last_message_id
            self._event_cursor = usage.last_event_id
