"""The broker on a real SQLite file: durability, exactly-once recv, wake-ups and limits."""

from pathlib import Path

import anyio
import pytest

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.store import HiveStore, open_engine
from hyperhive_core.errors import BodyTooLargeError, InboxFullError, UnknownMessageError
from hyperhive_core.states import MessageState


def open_broker(path: Path, **limits: int) -> Broker:
    return Broker(HiveStore(open_engine(path)), **limits)


async def test_a_sent_message_is_in_the_file_when_send_returns(short_tmpdir: Path) -> None:
    db = short_tmpdir / "broker.sqlite"
    broker = open_broker(db)
    row = await broker.send("operator", "alice", "hello")
    # A second, independent engine sees the committed row: nothing waited in a buffer.
    other = open_broker(db)
    rows = await other.recv("alice", timeout_s=0, limit=10)
    assert [(r.id, r.sender, r.body) for r in rows] == [(row.id, "operator", "hello")]


async def test_recv_hands_each_message_out_once_to_concurrent_callers(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite")
    received: list[int] = []
    sent: list[int] = []
    total = 200

    async def consume() -> None:
        while len(received) < total:
            rows = await broker.recv("alice", timeout_s=0.5, limit=7)
            received.extend(r.id or 0 for r in rows)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(consume)
            sent.extend([(await broker.send("bob", "alice", f"m{i}")).id or 0 for i in range(total)])
    assert sorted(received) == sorted(sent)
    assert len(received) == len(set(received))


async def test_a_waiting_recv_wakes_when_a_message_arrives(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite")
    got: list[str] = []
    waiting = anyio.Event()

    async def wait_for_one() -> None:
        waiting.set()
        got.extend(r.body for r in await broker.recv("alice", timeout_s=60, limit=1))

    # Bounded far below recv's own 60 s timeout: only the wake-up can finish it in time.
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_one)
            await waiting.wait()
            await broker.send("bob", "alice", "wake up")
    assert got == ["wake up"]


async def test_recv_returns_nothing_when_the_timeout_passes(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite")
    await broker.send("alice", "bob", "not for alice")
    assert await broker.recv("alice", timeout_s=0.05, limit=10) == []
    assert [r.body for r in await broker.peek("bob", 10)] == ["not for alice"]


async def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite", max_body_bytes=8)
    with pytest.raises(BodyTooLargeError) as caught:
        await broker.send("operator", "alice", "ünïcode!")  # 8 characters, 10 bytes
    assert (caught.value.size, caught.value.limit) == (10, 8)
    assert await broker.counts("alice") == {}


async def test_a_full_inbox_refuses_new_messages_and_keeps_the_old(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite", max_inbox_depth=2)
    await broker.send("operator", "alice", "one")
    await broker.send("operator", "alice", "two")
    with pytest.raises(InboxFullError) as caught:
        await broker.send("operator", "alice", "three")
    assert (caught.value.agent, caught.value.limit) == ("alice", 2)
    assert [r.body for r in await broker.recv("alice", timeout_s=0, limit=10)] == ["one", "two"]
    # Reading makes room again.
    await broker.send("operator", "alice", "three")


async def test_a_reply_acknowledges_the_message_it_answers(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite")
    question = await broker.send("operator", "alice", "ping?")
    [delivered] = await broker.recv("alice", timeout_s=0, limit=1)
    assert delivered.state == MessageState.DELIVERED
    answer = await broker.send("alice", "operator", "pong", reply_to=question.id)
    assert answer.reply_to == question.id
    assert await broker.counts("alice") == {MessageState.ACKED: 1}


async def test_reply_to_a_message_the_sender_never_saw_is_refused(short_tmpdir: Path) -> None:
    broker = open_broker(short_tmpdir / "broker.sqlite")
    private = await broker.send("operator", "alice", "for alice only")
    assert private.id is not None
    with pytest.raises(UnknownMessageError) as caught:
        await broker.send("bob", "operator", "snooping", reply_to=private.id)
    assert caught.value.message_id == private.id
    with pytest.raises(UnknownMessageError):
        await broker.send("bob", "operator", "nothing", reply_to=9999)
    assert await broker.counts("operator") == {}
