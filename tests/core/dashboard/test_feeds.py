"""Feeds: one reader, a bounded queue per client, slow clients dropped, and no gap or double on resume.

The source here is a list standing in for a table (rows with growing ids), read by the same
`fetch` contract the dashboard's SQLite queries honour.
"""

from collections.abc import AsyncGenerator

import anyio

from hyperhive_core.dashboard.feeds import MAX_REPLAY_ROWS, PAGE_ROWS, Batch, Entry, Feed, Gap, follow

WAIT_S = 5


class Table:
    """Rows with growing ids, and a fetch over them as the SQL queries do it."""

    def __init__(self) -> None:
        self.rows: list[Entry] = []
        # Set at each read: a follower reads only once it has subscribed.
        self.read = anyio.Event()

    def add(self, *agents: str) -> Entry:
        entry = Entry.of(len(self.rows) + 1, agents, f"row {len(self.rows) + 1}", event="row")
        self.rows.append(entry)
        return entry

    async def fetch(self, after: int, limit: int, agent: str | None) -> list[Entry]:
        self.read.set()
        self.read = anyio.Event()
        await anyio.lowlevel.checkpoint()
        return [r for r in self.rows if r.id > after and (agent is None or agent in r.agents)][:limit]

    def batch(self, after: int) -> Batch:
        """What a feed publishes after reading every row past `after`."""
        entries = tuple(r for r in self.rows if r.id > after)
        return Batch(after, entries[-1].id if entries else after, entries)


class Client:
    """Reads a follower's stream in the background, as the SSE response does."""

    def __init__(self, stream: AsyncGenerator[list[Entry] | Gap]) -> None:
        self.stream = stream
        self.got: list[Entry | Gap] = []
        self.changed = anyio.Event()
        self.ended = anyio.Event()
        # Cleared to stop reading (a slow client); set to read on.
        self.reading = anyio.Event()
        self.reading.set()

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.got if isinstance(e, Entry)]

    async def run(self) -> None:
        try:
            async for item in self.stream:
                self.got += item if isinstance(item, list) else [item]
                self.changed.set()
                self.changed = anyio.Event()
                await self.reading.wait()
        finally:
            self.ended.set()

    async def until(self, n: int) -> None:
        with anyio.fail_after(WAIT_S):
            while len(self.got) < n:
                await self.changed.wait()


async def test_a_follower_replays_then_follows_with_no_gap_and_no_double() -> None:
    table, feed = Table(), Feed()
    for _ in range(3):
        table.add("a")
    client = Client(follow(feed, table.fetch, cursor=1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.run)
        await client.until(2)
        # The feed's next read overlaps what the follower replayed (row 3) and adds rows 4..5.
        table.add("a")
        table.add("a")
        feed.publish(table.batch(2))
        await client.until(4)
        tg.cancel_scope.cancel()
    assert client.ids == [2, 3, 4, 5]


async def test_a_batch_that_starts_past_the_follower_is_preceded_by_a_catch_up_read() -> None:
    table, feed = Table(), Feed()
    client = Client(follow(feed, table.fetch, cursor=0))
    async with anyio.create_task_group() as tg:
        replaying = table.read
        tg.start_soon(client.run)
        with anyio.fail_after(WAIT_S):
            await replaying.wait()
        for _ in range(4):
            table.add("a")
        # The feed skipped rows 1..2 and publishes 3..4 only: the follower reads 1..2 itself.
        feed.publish(Batch(2, 4, tuple(table.rows[2:])))
        await client.until(4)
        tg.cancel_scope.cancel()
    assert client.ids == [1, 2, 3, 4]


async def test_a_follower_of_one_agent_gets_only_its_rows() -> None:
    table, feed = Table(), Feed()
    client = Client(follow(feed, table.fetch, cursor=0, agent="b"))
    async with anyio.create_task_group() as tg:
        replaying = table.read
        tg.start_soon(client.run)
        with anyio.fail_after(WAIT_S):
            await replaying.wait()
        table.add("a")
        table.add("a", "b")
        feed.publish(table.batch(0))
        table.add("b")
        table.add("c")
        feed.publish(table.batch(2))
        await client.until(2)
        tg.cancel_scope.cancel()
    assert client.ids == [2, 3]


async def test_a_client_that_falls_behind_is_dropped_and_resumes_from_its_last_id() -> None:
    table, feed = Table(), Feed(queue_batches=2)
    dropped = anyio.Event()
    slow = Client(follow(feed, table.fetch, cursor=0, dropped=dropped))
    async with anyio.create_task_group() as tg:
        replaying = table.read
        tg.start_soon(slow.run)
        with anyio.fail_after(WAIT_S):
            await replaying.wait()
        slow.reading = anyio.Event()  # it takes one entry, then stops reading
        table.add("a")
        feed.publish(table.batch(0))
        await slow.until(1)
        for _ in range(3):  # publishing never waits for it: the third batch finds its queue full
            table.add("a")
            feed.publish(table.batch(table.rows[-2].id))
        assert dropped.is_set()
        assert (feed.subscribers, feed.dropped) == (0, 1)
        slow.reading.set()
        with anyio.fail_after(WAIT_S):
            await slow.ended.wait()  # its stream ends without sending what was queued
        assert slow.ids == [1]
        # The browser comes back with the last id it got and misses nothing.
        resumed = Client(follow(feed, table.fetch, cursor=1))
        tg.start_soon(resumed.run)
        await resumed.until(3)
        assert resumed.ids == [2, 3, 4]
        tg.cancel_scope.cancel()


async def test_a_replay_too_long_to_send_tells_the_client_to_reload() -> None:
    table, feed = Table(), Feed()
    for _ in range(MAX_REPLAY_ROWS + PAGE_ROWS + 1):
        table.add("a")
    with anyio.fail_after(WAIT_S):
        got = [item async for item in follow(feed, table.fetch, cursor=0)]
    assert got[-1] == Gap(skipped=MAX_REPLAY_ROWS)
    pages = [item for item in got[:-1] if isinstance(item, list)]
    assert [len(page) for page in pages] == [PAGE_ROWS] * (MAX_REPLAY_ROWS // PAGE_ROWS)  # a page a write
    assert [e.id for page in pages for e in page] == list(range(1, MAX_REPLAY_ROWS + 1))


async def test_closing_a_feed_ends_its_followers_after_what_they_hold() -> None:
    table, feed = Table(), Feed()
    client = Client(follow(feed, table.fetch, cursor=0))
    async with anyio.create_task_group() as tg:
        replaying = table.read
        tg.start_soon(client.run)
        with anyio.fail_after(WAIT_S):
            await replaying.wait()
        table.add("a")
        feed.publish(table.batch(0))
        feed.close()
        with anyio.fail_after(WAIT_S):
            await client.ended.wait()
    assert client.ids == [1]
    with anyio.fail_after(WAIT_S):
        assert [e async for e in follow(feed, table.fetch, cursor=1)] == []
