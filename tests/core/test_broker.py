"""The broker's conformance suite, on each engine (a real SQLite file, a real PostgreSQL database):
durability, exactly-once recv, leases, keys, wake-ups and limits."""

from pathlib import Path

import anyio
import pytest

from hyperhive_core.broker.broker import Broker
from hyperhive_core.broker.sqlite import SqliteMessageStore
from hyperhive_core.broker.storage import Appended, AppendRequest
from hyperhive_core.broker.store import DbLimits, HiveStore, open_engine
from hyperhive_core.errors import (
    BodyNotTextError,
    BodyTooLargeError,
    BrokerError,
    DatabaseFullError,
    EmptyBodyError,
    InboxFullError,
    KeyReusedError,
    UnknownMessageError,
)
from hyperhive_core.states import MessageState
from tests.conftest import HiveDb


async def open_broker(
    db: HiveDb, *, max_body_bytes: int = 64 * 1024, max_inbox_depth: int = 10_000, lease_hold_s: float = 30.0
) -> Broker:
    store = await db.open(lease_hold_s=lease_hold_s)
    return Broker(store, max_body_bytes=max_body_bytes, max_inbox_depth=max_inbox_depth)


async def test_a_sent_message_is_in_the_file_when_send_returns(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    row = (await broker.send("operator", "alice", "hello")).row
    # A second, independent store (its own connections) sees the committed row: nothing waited in a buffer.
    other = await open_broker(hive_db)
    rows = (await other.recv("alice", timeout_s=0, limit=10)).messages
    assert [(r.id, r.sender, r.body) for r in rows] == [(row.id, "operator", "hello")]


async def test_recv_hands_each_message_out_once_to_concurrent_callers(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    received: list[int] = []
    sent: list[int] = []
    total = 200

    async def consume() -> None:
        while len(received) < total:
            rows = (await broker.recv("alice", timeout_s=0.5, limit=7)).messages
            received.extend(r.id or 0 for r in rows)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(consume)
            sent.extend([(await broker.send("bob", "alice", f"m{i}")).row.id or 0 for i in range(total)])
    assert sorted(received) == sorted(sent)
    assert len(received) == len(set(received))


async def test_a_waiting_recv_wakes_when_a_message_arrives(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    got: list[str] = []
    waiting = anyio.Event()

    async def wait_for_one() -> None:
        waiting.set()
        got.extend(r.body for r in (await broker.recv("alice", timeout_s=60, limit=1)).messages)

    # Bounded far below recv's own 60 s timeout: only the wake-up can finish it in time.
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_one)
            await waiting.wait()
            await broker.send("bob", "alice", "wake up")
    assert got == ["wake up"]


async def test_recv_returns_nothing_when_the_timeout_passes(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    await broker.send("alice", "bob", "not for alice")
    assert (await broker.recv("alice", timeout_s=0.05, limit=10)).messages == []
    assert [r.body for r in await broker.peek("bob", 10)] == ["not for alice"]


async def test_a_body_over_the_limit_is_refused_and_nothing_is_stored(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db, max_body_bytes=8)
    with pytest.raises(BodyTooLargeError) as caught:
        await broker.send("operator", "alice", "ünïcode!")  # 8 characters, 10 bytes
    assert (caught.value.size, caught.value.limit) == (10, 8)
    assert await broker.counts("alice") == {}


async def test_a_full_inbox_refuses_new_messages_and_keeps_the_old(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db, max_inbox_depth=2)
    await broker.send("operator", "alice", "one")
    await broker.send("operator", "alice", "two")
    with pytest.raises(InboxFullError) as caught:
        await broker.send("operator", "alice", "three")
    assert (caught.value.agent, caught.value.limit) == ("alice", 2)
    assert [r.body for r in (await broker.recv("alice", timeout_s=0, limit=10)).messages] == ["one", "two"]
    # Reading makes room again.
    await broker.send("operator", "alice", "three")


async def test_a_reply_acknowledges_the_message_it_answers(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    question = (await broker.send("operator", "alice", "ping?")).row
    [delivered] = (await broker.recv("alice", timeout_s=0, limit=1)).messages
    assert delivered.state == MessageState.DELIVERED
    answer = (await broker.send("alice", "operator", "pong", reply_to=question.id)).row
    assert answer.reply_to == question.id
    assert await broker.counts("alice") == {MessageState.ACKED: 1}


async def test_reply_to_a_message_the_sender_never_saw_is_refused(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    private = (await broker.send("operator", "alice", "for alice only")).row
    assert private.id is not None
    with pytest.raises(UnknownMessageError) as caught:
        await broker.send("bob", "operator", "snooping", reply_to=private.id)
    assert caught.value.message_id == private.id
    with pytest.raises(UnknownMessageError):
        await broker.send("bob", "operator", "nothing", reply_to=9999)
    assert await broker.counts("operator") == {}


async def test_an_empty_or_blank_body_is_refused(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    for body in ("", " \n\t "):
        with pytest.raises(EmptyBodyError):
            await broker.send("operator", "alice", body)
    assert await broker.counts("alice") == {}


async def test_one_bad_message_in_a_group_commit_fails_alone(hive_db: HiveDb) -> None:
    # Sends that arrive together are committed together: a reply_to SQLite cannot hold, or one that
    # names nothing, must fail its own send and no other.
    broker = await open_broker(hive_db)
    outcomes: dict[str, object] = {}

    async def send(label: str, reply_to: int | None) -> None:
        try:
            outcomes[label] = (await broker.send("bob", "alice", label, reply_to=reply_to)).row.id
        except BrokerError as exc:
            outcomes[label] = exc

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(send, f"good-{i}", None)
            if i % 10 == 5:
                tg.start_soon(send, f"overflow-{i}", 2**63)
                tg.start_soon(send, f"unknown-{i}", 10**9)
    good = {k: v for k, v in outcomes.items() if k.startswith("good")}
    assert len(good) == 40
    assert all(isinstance(v, int) for v in good.values())
    assert all(isinstance(v, BrokerError) for k, v in outcomes.items() if not k.startswith("good"))
    assert all(isinstance(v, UnknownMessageError) for k, v in outcomes.items() if k.startswith("unknown"))
    assert await broker.counts("alice") == {MessageState.QUEUED: 40}


async def test_a_send_repeated_with_its_key_is_stored_once(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    first = await broker.send("bob", "alice", "hello", key="k-1")
    again = await broker.send("bob", "alice", "hello", key="k-1")
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.row.id == first.row.id
    # Keys are per sender: carol's k-1 is another message.
    other = await broker.send("carol", "alice", "hello", key="k-1")
    assert other.row.id != first.row.id
    with pytest.raises(KeyReusedError) as caught:
        await broker.send("bob", "alice", "something else", key="k-1")
    assert caught.value.message_id == first.row.id
    assert await broker.counts("alice") == {MessageState.QUEUED: 2}


async def test_concurrent_sends_with_one_key_store_one_message(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    ids: list[int | None] = []

    async def send() -> None:
        ids.append((await broker.send("bob", "alice", "once", key="same")).row.id)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(send)
    assert len(set(ids)) == 1
    assert await broker.counts("alice") == {MessageState.QUEUED: 1}


async def test_a_cursor_acknowledges_only_what_its_own_reader_was_handed(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db)
    m1 = (await broker.send("bob", "alice", "m1")).row
    m2 = (await broker.send("bob", "alice", "m2")).row
    assert m1.id is not None
    assert m2.id is not None
    [got_a] = (await broker.recv("alice", timeout_s=0, limit=1, after=0, reader="~a")).messages
    [got_b] = (await broker.recv("alice", timeout_s=0, limit=1, after=0, reader="~b")).messages
    assert (got_a.id, got_b.id) == (m1.id, m2.id)
    # B's cursor passes m1's id, but m1 is A's: it stays A's lease.
    await broker.recv("alice", timeout_s=0, limit=1, after=m2.id, reader="~b")
    assert await broker.counts("alice") == {MessageState.DELIVERED: 1, MessageState.ACKED: 1}
    # A goes away without finishing m1: it comes back, to anyone.
    await broker.release_reader("alice", "~a")
    again = (await broker.recv("alice", timeout_s=0, limit=10)).messages
    assert [(m.id, m.deliveries) for m in again] == [(m1.id, 2)]


async def test_a_named_readers_leases_wait_for_it_then_return_to_the_queue(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db, lease_hold_s=0.3)
    m1 = (await broker.send("bob", "alice", "m1")).row
    await broker.recv("alice", timeout_s=0, limit=1, after=0, reader="turn-loop")
    reply = (await broker.send("alice", "bob", "on it")).row
    await broker.hold_reader("alice", "turn-loop")
    # Held: another reader does not get it...
    assert (await broker.recv("alice", timeout_s=0, limit=10, after=0, reader="~x")).messages == []
    # ...its reader does, when it comes back, with what it sent since.
    back = await broker.recv("alice", timeout_s=0, limit=10, after=0, reader="turn-loop", returning=True)
    assert [(m.id, m.deliveries) for m in back.messages] == [(m1.id, 2)]
    assert [m.id for m in back.already_sent] == [reply.id]
    # Away again, past the hold: a waiting reader gets it when the hold ends, without a new send.
    await broker.hold_reader("alice", "turn-loop")
    with anyio.fail_after(5):
        later = await broker.recv("alice", timeout_s=4, limit=10, after=0, reader="~y")
    assert [(m.id, m.deliveries) for m in later.messages] == [(m1.id, 3)]


async def test_at_the_size_limit_sends_stop_but_reading_and_acknowledging_go_on(short_tmpdir: Path) -> None:
    # SQLite's own limit (a page count); PostgreSQL has none, its server's full disk is DatabaseFullError too.
    broker = Broker(
        SqliteMessageStore(HiveStore(open_engine(short_tmpdir / "b.sqlite"), DbLimits(max_bytes=1024 * 1024)))
    )
    body = "x" * 4000
    stored = 0
    refused: DatabaseFullError | None = None
    while refused is None and stored < 10_000:
        try:
            await broker.send("bob", "operator", body)
            stored += 1
        except DatabaseFullError as exc:
            refused = exc
    assert refused is not None
    assert stored > 100
    got = 0
    while batch := (await broker.recv("operator", timeout_s=0, limit=100, after=0, reader="~op")).messages:
        got += len(batch)
        acked, _ = await broker.ack("operator", [m.id or 0 for m in batch])
        assert len(acked) == len(batch)
    assert got == stored


async def test_the_inbox_depth_holds_within_one_group_commit(hive_db: HiveDb) -> None:
    broker = await open_broker(hive_db, max_inbox_depth=5)
    outcomes: list[bool] = []

    async def send(i: int) -> None:
        try:
            await broker.send("bob", "alice", f"m{i}")
            outcomes.append(True)
        except InboxFullError:
            outcomes.append(False)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(send, i)
    assert outcomes.count(True) == 5
    assert await broker.counts("alice") == {MessageState.QUEUED: 5}


async def test_a_group_commit_gives_each_message_its_own_outcome(hive_db: HiveDb) -> None:
    # One group holding every kind of outcome: PostgreSQL checks and stores it in a few set-wide
    # statements; each message must fare exactly as it would alone.
    store = await hive_db.open()
    now = 1000.0

    def request(sender: str, recipient: str, body: str, **fields: object) -> AppendRequest:
        depth = fields.pop("max_depth", 100)
        assert isinstance(depth, int)
        reply_to = fields.pop("reply_to", None)
        assert reply_to is None or isinstance(reply_to, int)
        key = fields.pop("key", None)
        assert key is None or isinstance(key, str)
        return AppendRequest(sender, recipient, body, reply_to, now, depth, key)

    [first, question] = await store.append_many(
        [request("alice", "bob", "keyed", key="k1"), request("carol", "alice", "a question")]
    )
    assert isinstance(first, Appended)
    assert isinstance(question, Appended)
    # alice takes the question: her reply acknowledges it
    [taken] = await store.claim("alice", 10, now=now)
    assert taken.id == question.row.id
    full = [request("x", "dave", f"fill {i}") for i in range(2)]
    assert all(isinstance(o, Appended) for o in await store.append_many(full))

    outcomes = await store.append_many(
        [
            request("alice", "bob", "keyed", key="k1"),  # the same send again: a duplicate
            request("alice", "bob", "other body", key="k1"),  # the key with another message
            request("alice", "carol", "the answer", reply_to=question.row.id),  # acknowledges the question
            request("alice", "carol", "and more", reply_to=question.row.id),  # a second reply, no second ack
            request("alice", "bob", "to nothing", reply_to=999_999),  # no such message
            request("bob", "carol", "not his", reply_to=question.row.id),  # bob took no part in it
            request("x", "dave", "one too many", max_depth=2),  # dave's inbox is full
            request("alice", "erin", "plain"),
            request("alice", "erin", "keyed anew", key="k2"),
        ]
    )
    duplicate, reused, answer, more, nothing, not_his, overflow, plain, fresh = outcomes
    assert isinstance(duplicate, Appended)
    assert duplicate.duplicate
    assert duplicate.row.id == first.row.id
    assert isinstance(reused, KeyReusedError)
    assert isinstance(answer, Appended)
    assert isinstance(more, Appended)
    assert isinstance(nothing, UnknownMessageError)
    assert isinstance(not_his, UnknownMessageError)
    assert isinstance(overflow, InboxFullError)
    assert isinstance(plain, Appended)
    assert isinstance(fresh, Appended)
    stored = [answer, more, plain, fresh]
    ids = [o.row.id or 0 for o in stored]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert [m.body for m in await store.peek("carol", 10)] == ["the answer", "and more"]
    assert [m.body for m in await store.peek("erin", 10)] == ["plain", "keyed anew"]
    assert store.counts("alice")[MessageState.ACKED] == 1
    assert store.counts("alice").get(MessageState.DELIVERED, 0) == 0
    assert store.queued("dave") == 2
    # a later store (another process) reads what was committed, the acknowledgement included
    other = await hive_db.open()
    assert other.counts("alice")[MessageState.ACKED] == 1
    assert other.queued("erin") == 2


async def test_a_key_twice_in_one_group_stores_one_message(hive_db: HiveDb) -> None:
    store = await hive_db.open()
    twice = AppendRequest("alice", "bob", "once", None, 1.0, 100, "k")
    first, second = await store.append_many([twice, twice])
    assert isinstance(first, Appended)
    assert isinstance(second, Appended)
    assert second.duplicate
    assert second.row.id == first.row.id
    assert store.queued("bob") == 1


@pytest.mark.parametrize("body", ["nul \x00 inside", "lone \ud800 surrogate"])
async def test_a_body_no_engine_stores_as_text_is_refused_alike_on_both(hive_db: HiveDb, body: str) -> None:
    # A lone surrogate failed a whole group commit on PostgreSQL (other senders' messages with it); a
    # NUL was stored by SQLite and refused by PostgreSQL.
    broker = await open_broker(hive_db)
    with pytest.raises(BodyNotTextError) as caught:
        await broker.send("alice", "bob", body)
    assert "base64" in str(caught.value)
    assert (await broker.send("alice", "bob", "plain text")).row.body == "plain text"
    assert [m.body for m in (await broker.recv("bob", timeout_s=0, limit=10)).messages] == ["plain text"]
