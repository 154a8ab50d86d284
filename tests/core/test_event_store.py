"""Agents' turn events in the store on each engine (`hive_db`): appended and read back per agent,
the newest kept, whatever an agent puts in them."""

import json

from hyperhive_core.broker.events import EventLog
from hyperhive_core.broker.storage import PRUNE_EVERY
from tests.conftest import HiveDb


async def test_events_are_read_back_per_agent_in_order_and_only_the_newest_are_kept(hive_db: HiveDb) -> None:
    log = EventLog(await hive_db.open(), keep=10)
    assert await log.append("alice", [{"type": "system", "n": 0}]) == 1
    await log.append("bob", [{"type": "result", "n": 0}])
    # One call of PRUNE_EVERY events always prunes: alice keeps her newest 10, bob his one.
    await log.append("alice", [{"type": "assistant", "n": n} for n in range(1, PRUNE_EVERY + 1)])
    alice = await log.read("alice", after=0, limit=1000)
    assert [json.loads(e.data)["n"] for e in alice] == list(range(PRUNE_EVERY - 9, PRUNE_EVERY + 1))
    assert [e.id or 0 for e in alice] == sorted(e.id or 0 for e in alice)
    assert {e.type for e in alice} == {"assistant"}
    assert [(e.type, json.loads(e.data)) for e in await log.read("bob", after=0, limit=10)] == [
        ("result", {"type": "result", "n": 0})
    ]
    newest = await log.read("alice", after=None, limit=3)
    assert [e.id for e in newest] == [e.id for e in alice[-3:]]
    after = await log.read("alice", after=alice[-2].id, limit=10)
    assert [e.id for e in after] == [alice[-1].id]


async def test_an_event_with_nul_characters_is_stored_on_every_engine(hive_db: HiveDb) -> None:
    # PostgreSQL's text cannot hold NUL; what an agent reports is kept all the same (its JSON escapes it).
    log = EventLog(await hive_db.open())
    event = {"type": "odd\x00type", "text": "a\x00b"}
    assert await log.append("alice", [event]) == 1
    [stored] = await log.read("alice", after=0, limit=10)
    assert json.loads(stored.data) == event
    assert stored.type == "odd\ufffdtype"
