"""Nothing lost, nothing doubled: senders and receivers at work while the daemon is killed with -9, again and again.

A receiver acknowledges by cursor under a reader name (`recv(after=..., reader=...)`, as the turn
loop does), so what it was handed but never got because the daemon died mid-answer comes back to it
after the restart, and what it did get is not handed out again.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ToolCallError
from tests.helpers import IDLE_AGENT, daemon_process, hive_config

SENDERS = ("s1", "s2", "s3")
RECEIVERS = ("r1", "r2")
ROUNDS = 10


@dataclass
class Ledger:
    """What happened, from the clients' side."""

    attempted: set[str] = field(default_factory=set[str])
    acknowledged: dict[int, str] = field(default_factory=dict[int, str])
    received: list[tuple[int, str, str]] = field(default_factory=list[tuple[int, str, str]])
    cursors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RECEIVERS, 0))
    sent_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SENDERS, 0))


async def send_until_gone(
    config: HiveConfig, ledger: Ledger, sender: str, on_ack: anyio.Event, quota: list[int]
) -> None:
    try:
        async with open_hive_client(config.agent_socket(sender)) as client:
            while True:
                n = ledger.sent_by[sender]
                body = f"{sender}-{n}"
                ledger.attempted.add(body)
                ledger.sent_by[sender] = n + 1
                receipt = await client.send(RECEIVERS[n % len(RECEIVERS)], body)
                ledger.acknowledged[receipt.id] = body
                quota[0] -= 1
                if quota[0] <= 0:
                    on_ack.set()
    except ToolCallError:
        raise
    except Exception:
        return  # the daemon died under us: that is the test


async def receive_until_gone(config: HiveConfig, ledger: Ledger, receiver: str) -> None:
    try:
        async with open_hive_client(config.agent_socket(receiver)) as client:
            while True:
                got = await client.recv(timeout_s=0.5, max=20, after=ledger.cursors[receiver], reader="rx")
                for m in got.messages:
                    ledger.received.append((m.id, m.recipient, m.body))
                    ledger.cursors[receiver] = max(ledger.cursors[receiver], m.id)
    except ToolCallError:
        raise
    except Exception:
        return


async def test_acknowledged_messages_arrive_exactly_once_across_ten_kill_9s(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    ledger = Ledger()
    rng = random.Random(20261124)
    with anyio.fail_after(240):
        async with daemon_process(config), open_hive_client(config.host_socket) as operator:
            for name in (*SENDERS, *RECEIVERS):
                await operator.spawn(name)
        for _ in range(ROUNDS):
            async with daemon_process(config) as daemon, anyio.create_task_group() as tg:
                # Kill after a random number of acknowledged sends: a random moment, chosen by events.
                quota = [rng.randint(10, 150)]
                enough = anyio.Event()
                for sender in SENDERS:
                    tg.start_soon(send_until_gone, config, ledger, sender, enough, quota)
                for receiver in RECEIVERS:
                    tg.start_soon(receive_until_gone, config, ledger, receiver)
                await enough.wait()
                daemon.kill()
        # Drain: every acknowledged message must arrive, once.
        async with daemon_process(config):
            for receiver in RECEIVERS:
                async with open_hive_client(config.agent_socket(receiver)) as client:
                    cursor = ledger.cursors[receiver]
                    while got := (await client.recv(timeout_s=0.2, max=100, after=cursor, reader="rx")).messages:
                        for m in got:
                            ledger.received.append((m.id, m.recipient, m.body))
                            ledger.cursors[receiver] = max(ledger.cursors[receiver], m.id)
                        cursor = ledger.cursors[receiver]

    ids = [i for i, _, _ in ledger.received]
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    by_id = {i: body for i, _, body in ledger.received}
    missing = {i: body for i, body in ledger.acknowledged.items() if by_id.get(i) != body}
    assert not missing, f"{len(missing)} acknowledged messages never arrived"
    assert {body for _, _, body in ledger.received} <= ledger.attempted, "a message appeared that nobody sent"
    assert len(ledger.acknowledged) >= ROUNDS * 10


async def test_what_a_session_took_by_cursor_and_did_not_acknowledge_comes_back_when_it_ends(
    short_tmpdir: Path,
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        first = await operator.send("alice", "one")
        second = await operator.send("alice", "two")
        async with open_hive_client(config.agent_socket("alice")) as crashing:
            got = await crashing.recv(timeout_s=1, max=1, after=0)
            assert [m.id for m in got.messages] == [first.id]
        # That session ended mid-turn: "one" is queued again, ahead of "two".
        async with open_hive_client(config.agent_socket("alice")) as alice:
            again = await alice.recv(timeout_s=1, max=10, after=0)
            assert [m.id for m in again.messages] == [first.id, second.id]
            assert (await alice.recv(timeout_s=0, after=second.id)).messages == []
        # Acknowledged by the cursor before the session ended: nothing comes back.
        async with open_hive_client(config.agent_socket("alice")) as alice:
            assert (await alice.recv(timeout_s=0, after=0)).messages == []
        view = await operator.inbox("alice")
        assert (view.queued, view.delivered) == (0, 0)


async def test_taking_for_good_without_a_cursor_is_never_handed_back(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.send("alice", "once")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            assert [m.body for m in (await alice.recv(timeout_s=1)).messages] == ["once"]
        async with open_hive_client(config.agent_socket("alice")) as alice:
            assert (await alice.recv(timeout_s=0, after=0)).messages == []
