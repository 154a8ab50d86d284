"""Resources: a full or locked database gives a clear error and corrupts nothing; bounds hold under a flood."""

import sqlite3
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ToolCallError
from hyperhive_core.mcp.models import HiveStatus
from tests.helpers import IDLE_AGENT, hive_config

BIG = "x" * 60_000


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def fill(client: HiveClient, to: str) -> tuple[list[int], ToolCallError]:
    """Send big messages until the daemon refuses one; what was stored, and the refusal."""
    stored: list[int] = []
    for _ in range(1000):
        try:
            receipt = await client.send(to, BIG)
        except ToolCallError as exc:
            return stored, exc
        stored.append(receipt.id)
    raise AssertionError("1000 messages of 60 KB fitted in 2 MB")


async def test_a_full_database_refuses_clearly_and_keeps_every_stored_message(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, max_db_mb=2)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        stored, refusal = await fill(operator, "alice")
        assert refusal.reason.startswith("the hive database is at its size limit")
        assert "nothing was stored" in refusal.reason
        assert len(stored) > 10
        # Still serving: reads work and small writes are refused the same clear way, not crashed.
        assert (await operator.inbox("alice", limit=1)).queued == len(stored)
        assert [a.name for a in await operator.list_agents()] == ["alice"]
        status = await operator.call("hive_status", {}, HiveStatus)
        assert any("of its limit" in w for w in status.warnings)
        # The room kept below the limit is for reading: alice takes and acknowledges what is queued.
        async with open_hive_client(config.agent_socket("alice")) as alice:
            first = (await alice.recv(timeout_s=0, max=5, after=0)).messages
            assert [m.id for m in first] == stored[:5]
            await alice.recv(timeout_s=0, max=1, after=first[-1].id)
    assert integrity(config.broker_path) == "ok"
    # With room again, every message that was acknowledged is there, once, in order.
    roomy = config.model_copy(update={"max_db_mb": None})
    async with running_daemon(roomy), open_hive_client(config.agent_socket("alice")) as alice:
        got: list[int] = []
        while batch := (await alice.recv(timeout_s=0, max=100)).messages:
            got.extend(m.id for m in batch)
        assert got == stored[5:]
        await alice.send("operator", "room again")


@contextmanager
def database_locked_by_another_process(db: Path) -> Generator[None]:
    """Another connection holds the write lock until the block ends (as a second daemon or a backup would)."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(30)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        yield
    finally:
        release.set()
        holder.join()


async def test_a_locked_database_refuses_clearly_and_recovers(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, db_busy_timeout_s=0.2)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        before = await operator.send("alice", "before the lock")
        with database_locked_by_another_process(config.broker_path), pytest.raises(ToolCallError) as caught:
            await operator.send("alice", "during the lock")
        assert caught.value.reason.startswith("the hive database is locked by another process")
        after = await operator.send("alice", "after the lock")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            got = (await alice.recv(timeout_s=0, max=10)).messages
        assert [(m.id, m.body) for m in got] == [(before.id, "before the lock"), (after.id, "after the lock")]
    assert integrity(config.broker_path) == "ok"


async def flood(client: HiveClient, to: str, n: int, body: str = "flood") -> list[str]:
    """Send `n` messages at once; the outcome of each: 'ok' or the refusal."""
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await client.send(to, body)
            outcomes.append("ok")
        except ToolCallError as exc:
            outcomes.append(exc.reason)

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return outcomes


async def test_inbox_depth_body_size_and_rate_hold_exactly_under_a_flood(short_tmpdir: Path) -> None:
    config: HiveConfig = hive_config(
        short_tmpdir,
        agent_command=IDLE_AGENT,
        max_inbox_depth=50,
        rate_limit=30,
        max_body_bytes=100,
        max_exchanges=1000,
    )
    with anyio.fail_after(30):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            for name in ("alice", "bob", "carol"):
                await operator.spawn(name)
            # The operator is never rate limited: this floods alice's inbox past its depth.
            outcomes = await flood(operator, "alice", 200)
            assert outcomes.count("ok") == 50
            assert all(o == "ok" or o.startswith("inbox of 'alice' is full (50 unread") for o in outcomes)
            assert (await operator.inbox("alice")).queued == 50
            async with open_hive_client(config.agent_socket("bob")) as bob:
                outcomes = await flood(bob, "carol", 100)
                assert outcomes.count("ok") == 30
                assert all(o == "ok" or "(rate limit" in o for o in outcomes)
            oversized = await flood(operator, "bob", 5, body="y" * 101)
            assert all("over the limit of 100 bytes" in o for o in oversized)
            assert (await operator.inbox("carol")).queued == 30
            assert (await operator.inbox("bob")).queued == 0
