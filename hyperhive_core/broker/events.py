"""Each agent's turn events (claude's stream-json lines and the turn loop's own), for `hivectl logs`.

Events are opaque JSON objects to the daemon: stored as reported, one row each, the newest
`keep` per agent kept. A reader can wait for new events the way `recv` waits for messages.
"""

import functools
import json
import time
from collections.abc import Sequence
from typing import Any

import anyio
from sqlmodel import SQLModel

from hyperhive_core.broker.models import EventRow
from hyperhive_core.broker.storage import MessageStore

MAX_EVENT_BYTES = 16 * 1024
MAX_EVENTS_PER_CALL = 100
KEEP_EVENTS = 5_000


def _encode(event: dict[str, Any]) -> tuple[str, str]:
    # PostgreSQL's text cannot hold NUL (the JSON below escapes it, the bare type does not).
    kind = str(event.get("type", "unknown"))[:40].replace("\0", "\ufffd")
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if len(data.encode()) > MAX_EVENT_BYTES:
        # Keep the shape a reader needs (type, subtype) and say what was cut, not the whole blob.
        data = json.dumps(
            {
                "type": kind,
                "subtype": event.get("subtype"),
                "truncated": True,
                "bytes": len(data.encode()),
                "head": data[: MAX_EVENT_BYTES // 2],
            },
            ensure_ascii=False,
        )
    return kind, data


class EventLog:
    """Append and follow agents' turn events."""

    def __init__(self, store: MessageStore, *, keep: int = KEEP_EVENTS) -> None:
        self._store = store
        # Its own writer: events never queue behind messages (the database orders the two).
        self._writer = anyio.CapacityLimiter(1)
        self._keep = keep
        self._wakeups: dict[str, anyio.Event] = {}

    async def append(self, agent: str, events: list[dict[str, Any]], *, also: Sequence[SQLModel] = ()) -> int:
        """Store `events` for `agent`, and `also` rows of other tables in the same commit; returns how many events."""
        if not events:
            return 0
        encoded = [_encode(e) for e in events]
        append = functools.partial(
            self._store.append_events, agent, encoded, now=time.time(), keep=self._keep, also=also
        )
        await anyio.to_thread.run_sync(append, limiter=self._writer)
        if (wakeup := self._wakeups.pop(agent, None)) is not None:
            wakeup.set()
        return len(encoded)

    async def read(self, agent: str, *, after: int | None, limit: int, wait_s: float = 0.0) -> list[EventRow]:
        """Events after id `after` (the newest `limit` when None), waiting up to `wait_s` for a first one."""
        deadline = anyio.current_time() + wait_s
        while True:
            wakeup = self._wakeups.setdefault(agent, anyio.Event())
            rows = await anyio.to_thread.run_sync(
                functools.partial(self._store.events, agent, after=after, limit=limit)
            )
            remaining = deadline - anyio.current_time()
            if rows or remaining <= 0:
                return rows
            with anyio.move_on_after(remaining):
                await wakeup.wait()
