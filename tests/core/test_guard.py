"""The runaway guard: its rules on their own, then two real agents that would ping-pong forever."""

import sys
from pathlib import Path

import anyio
import pytest
from sqlmodel import Session, col, func, or_, select

from hyperhive_core.broker.guard import RunawayGuard
from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.store import open_engine
from hyperhive_core.client import HiveClient, ToolCallError, open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ConversationLimitError, RateLimitedError
from tests.helpers import IDLE_AGENT, hive_config, needs_bwrap

# The echo driver with its own "never answer an echo" guard switched off: left alone, two of
# these answer each other forever, which is exactly what the daemon's guard must stop.
RELENTLESS_ECHO = ("env", "HIVE_ECHO_GUARD=0", sys.executable, "-m", "hyperhive_agent", "serve")


def test_a_pair_of_agents_is_stopped_after_the_cap_and_the_operator_resets_it() -> None:
    guard = RunawayGuard(max_exchanges=3, rate_limit=100)
    for sender, recipient in [("alice", "bob"), ("bob", "alice"), ("alice", "bob")]:
        guard.admit(sender, recipient)
    with pytest.raises(ConversationLimitError) as caught:
        guard.admit("bob", "alice")
    assert (caught.value.sender, caught.value.recipient, caught.value.limit) == ("bob", "alice", 3)
    # Other pairs and messages to the operator are untouched.
    guard.admit("alice", "carol")
    guard.admit("bob", "operator")
    assert [t.sender for t in guard.throttles(now=0)] == ["bob"]
    guard.admit("operator", "alice")
    guard.admit("bob", "alice")
    assert guard.throttles(now=0) == []


def test_the_manager_is_bounded_like_any_agent_and_does_not_reset_pairs() -> None:
    guard = RunawayGuard(max_exchanges=3, rate_limit=100)
    for sender, recipient in [("hm1nd", "alice"), ("alice", "hm1nd"), ("hm1nd", "alice")]:
        guard.admit(sender, recipient)
    with pytest.raises(ConversationLimitError):
        guard.admit("alice", "hm1nd")
    guard.admit("alice", "bob")
    guard.admit("bob", "alice")
    guard.admit("hm1nd", "bob")  # the manager writing to bob does not reset alice and bob
    guard.admit("alice", "bob")
    with pytest.raises(ConversationLimitError):
        guard.admit("bob", "alice")


def test_a_sender_over_its_rate_waits_for_the_window_to_slide() -> None:
    guard = RunawayGuard(max_exchanges=100, rate_limit=2, rate_window_s=10)
    guard.attempt("alice", now=0)
    guard.attempt("alice", now=4)
    with pytest.raises(RateLimitedError) as caught:
        guard.attempt("alice", now=5)
    assert caught.value.retry_after_s == pytest.approx(5)
    assert "rate limit" in guard.throttles(now=5)[0].reason
    guard.attempt("bob", now=5)
    # The refused call counted too: the window is full until 5 + 10.
    with pytest.raises(RateLimitedError):
        guard.attempt("alice", now=10.5)
    guard.attempt("alice", now=15.5)


def test_only_the_operator_is_never_limited() -> None:
    guard = RunawayGuard(max_exchanges=1, rate_limit=1)
    for _ in range(5):
        guard.attempt("operator", now=0)
        guard.admit("operator", "alice")
    guard.attempt("hm1nd", now=0)
    with pytest.raises(RateLimitedError):
        guard.attempt("hm1nd", now=0)


async def wait_for_guard_event(operator: HiveClient, agent: str) -> str:
    after: int | None = 0
    while True:
        page = await operator.agent_logs(agent, after=after, wait_s=10)
        for event in page.events:
            if event.data.get("subtype") == "refused" and event.data.get("to"):
                return str(event.data["message"])
        after = page.last_id


def exchanged(db: Path, a: str, b: str) -> int:
    with Session(open_engine(db)) as session:
        between = or_(
            (col(MessageRow.sender) == a) & (col(MessageRow.recipient) == b),
            (col(MessageRow.sender) == b) & (col(MessageRow.recipient) == a),
        )
        return session.exec(select(func.count()).select_from(MessageRow).where(between)).one()


@pytest.mark.containers
@needs_bwrap
async def test_two_agents_that_ping_pong_are_stopped_and_nothing_else_is_blocked(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=RELENTLESS_ECHO, max_exchanges=6)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            for name in ("alice", "bob", "carol"):
                await operator.spawn(name, driver="echo")
            async with open_hive_client(config.agent_socket("alice")) as alice:
                await alice.send("bob", "ping")  # bob answers, alice answers that, and so on
            # alice sent the 1st, 3rd and 5th messages, so the 7th, refused, is hers.
            reason = await wait_for_guard_event(operator, "alice")
            assert "have exchanged 6 messages" in reason
            assert exchanged(config.broker_path, "alice", "bob") == 6
            throttled = {a.name: a.throttled for a in await operator.list_agents()}
            assert throttled["alice"].startswith("runaway guard: 6 messages with bob")
            assert throttled["carol"] == ""

            # The operator is heard, answered, and its word resets the pair.
            sent = await operator.send("alice", "status?")
            got = (await operator.recv(timeout_s=15)).messages
            assert [(m.sender, m.body, m.reply_to) for m in got] == [("alice", "echo: status?", sent.id)]
            # Another agent still reaches alice.
            async with open_hive_client(config.agent_socket("carol")) as carol:
                await carol.send("alice", "hello from carol")


async def test_an_agent_over_its_rate_gets_a_tool_error_and_others_carry_on(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, rate_limit=5)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        await operator.spawn("bob")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            for i in range(5):
                await alice.send("operator", f"report {i}")
            with pytest.raises(ToolCallError) as caught:
                await alice.send("operator", "one too many")
            assert "alice called send 5 times in the last 60 s, the most allowed (rate limit" in caught.value.reason
        async with open_hive_client(config.agent_socket("bob")) as bob:
            await bob.send("operator", "bob is fine")
        status = await operator.status("alice")
        assert status.throttled.startswith("rate limit: 5 send calls in 60 s")
        assert status.refused == 1
        assert "rate limit" in status.last_refusal
        assert (await operator.status("bob")).throttled == ""
        assert (await operator.inbox()).queued == 6
