"""Delivery you can trust, through real sockets and daemon processes: leases per reader, sends retried
across a kill -9 stored once, one bad request failing alone, the manager under the guard, and a
bridge that waits for its daemon.
"""

import logging
import sys
from pathlib import Path

import anyio
import pytest
from sqlmodel import Session, col, func, select

from hyperhive_agent import wire
from hyperhive_core.broker.models import MessageRow
from hyperhive_core.broker.store import open_engine
from hyperhive_core.client import HiveClient, open_hive_client, open_session
from hyperhive_core.daemon import running_daemon
from hyperhive_core.errors import ToolCallError
from hyperhive_core.mcp.models import MessageView
from tests.helpers import IDLE_AGENT, bridged_session, daemon_process, hive_config, needs_bwrap

# The echo driver with its own "never answer an echo" rule off: it answers anything, forever.
RELENTLESS_ECHO = ("env", "HIVE_ECHO_GUARD=0", sys.executable, "-m", "hyperhive_agent", "serve")


def stored_bodies(db: Path, body: str) -> int:
    with Session(open_engine(db)) as session:
        query = select(func.count()).select_from(MessageRow).where(col(MessageRow.body) == body)
        return session.exec(query).one()


async def test_a_cursor_acknowledges_only_its_own_sessions_leases(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    with anyio.fail_after(20):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            m1 = await operator.send("alice", "m1")
            m2 = await operator.send("alice", "m2")
            socket = config.agent_socket("alice")
            async with open_hive_client(socket) as b:
                async with open_hive_client(socket) as a:
                    assert [m.id for m in (await a.recv(max=1, after=0)).messages] == [m1.id]
                    assert [m.id for m in (await b.recv(max=1, after=0)).messages] == [m2.id]
                    # B finished m2: its cursor passes m1's id too, but m1 is A's.
                    await b.recv(after=m2.id)
                # A went away without finishing m1: it comes back, and only it.
                again = (await b.recv(timeout_s=5, max=10, after=m2.id)).messages
                assert [(m.id, m.deliveries) for m in again] == [(m1.id, 2)]
                await b.recv(after=m2.id)  # now m1 is B's: its cursor acknowledges it
            view = await operator.inbox("alice")
            assert (view.queued, view.delivered) == (0, 0)


async def test_a_named_reader_gets_back_what_it_held_when_the_daemon_was_killed(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    with anyio.fail_after(60):
        async with daemon_process(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            question = await operator.send("alice", "question")
            async with open_hive_client(config.agent_socket("alice")) as loop:
                got = await loop.recv(max=1, after=0, reader=wire.TURN_LOOP_READER)
                assert [m.id for m in got.messages] == [question.id]
                # The turn answers, then the daemon dies before the turn's cursor comes back.
                answer = await loop.send("operator", "half an answer")
        async with daemon_process(config):
            async with open_hive_client(config.agent_socket("alice")) as other:
                # Held for its reader: another session of alice does not get it.
                assert (await other.recv(timeout_s=0, after=0)).messages == []
            async with open_hive_client(config.agent_socket("alice")) as loop:
                back = await loop.recv(timeout_s=0, after=0, reader=wire.TURN_LOOP_READER)
                assert [(m.id, m.deliveries) for m in back.messages] == [(question.id, 2)]
                # ...told what it sent before, so the turn run again does not send it twice.
                assert [m.id for m in back.already_sent] == [answer.id]
                await loop.recv(timeout_s=0, after=question.id, reader=wire.TURN_LOOP_READER)
            async with open_hive_client(config.host_socket) as operator:
                assert (await operator.inbox("alice")).delivered == 0


async def test_a_send_committed_just_before_the_daemon_died_is_stored_once(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir)
    body = "exactly once, across a kill -9"
    results: list[object] = []
    got: list[MessageView] = []
    with anyio.fail_after(60):
        # The daemon kills itself with SIGKILL right after committing a send, before answering it.
        async with daemon_process(config, env={"HYPERHIVE_FAILPOINTS": "send-committed"}) as doomed:
            async with open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
            async with (
                bridged_session(config.agent_socket("alice")) as (session, stderr),
                anyio.create_task_group() as tg,
            ):
                answered = anyio.Event()

                async def send() -> None:
                    result = await session.call_tool("send", {"to": "operator", "body": body})
                    assert not result.is_error, result.content
                    results.append(result.structured_content)
                    answered.set()

                tg.start_soon(send)
                assert await doomed.wait() == -9
                assert stored_bodies(config.broker_path, body) == 1
                async with daemon_process(config):
                    await stderr.until("the hive daemon is back")
                    await answered.wait()  # the bridge sent the call again; the new daemon answered it
                    async with open_hive_client(config.host_socket) as operator:
                        got.extend((await operator.recv(timeout_s=0, max=10)).messages)
    [receipt] = results
    assert isinstance(receipt, dict)
    assert [(m.id, m.body) for m in got] == [(receipt["id"], body)]
    assert stored_bodies(config.broker_path, body) == 1


async def test_an_overflowing_reply_to_fails_alone_amid_concurrent_sends_and_counts_against_the_rate(
    short_tmpdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, rate_limit=40)
    outcomes: list[str] = []
    refusals: list[str] = []
    with anyio.fail_after(60), caplog.at_level(logging.INFO):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            await operator.spawn("bob")

            async def good(i: int) -> None:
                try:
                    await operator.send("alice", f"good {i}")
                    outcomes.append("ok")
                except ToolCallError as exc:
                    outcomes.append(exc.reason)

            async def bad(bob: HiveClient, value: int) -> None:
                try:
                    await bob.send("operator", "overflow", reply_to=value)
                except ToolCallError as exc:
                    refusals.append(exc.reason)

            async with open_hive_client(config.agent_socket("bob")) as bob, anyio.create_task_group() as tg:
                for i in range(300):
                    tg.start_soon(good, i)
                    if i % 3 == 0:
                        tg.start_soon(bad, bob, 2**63 if i % 2 else -(2**63) - 1)
            assert outcomes == ["ok"] * 300
            assert len(refusals) == 100
            schema = [r for r in refusals if "reply_to" in r]
            assert len(schema) == 40  # refused by the schema until the rate limit, which counts them
            assert all("invalid arguments" in r and "call again" in r for r in schema)
            assert all("rate limit" in r for r in refusals if r not in schema)
            status = await operator.status("bob")
            assert status.refused == 100
            assert status.throttled.startswith("rate limit")
            async with open_hive_client(config.agent_socket("bob")) as bob:
                with pytest.raises(ToolCallError) as caught:
                    await bob.send("operator", "a good one, over the rate")
                assert "rate limit" in caught.value.reason
            assert (await operator.inbox("alice")).queued == 300
    assert not [r for r in caplog.records if r.exc_info is not None]


@pytest.mark.parametrize("body", ["", "   \n\t"], ids=["empty", "blank"])
async def test_an_empty_body_is_refused_with_what_to_do(short_tmpdir: Path, body: str) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        with pytest.raises(ToolCallError) as caught:
            await operator.send("alice", body)
        assert caught.value.reason == "message body is empty; write what the recipient should read"
        assert (await operator.inbox("alice")).queued == 0


async def test_a_repeated_key_returns_the_first_send_and_a_reused_key_is_refused(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        first = await operator.send("alice", "once", key="op-1")
        again = await operator.send("alice", "once", key="op-1")
        assert again.id == first.id
        with pytest.raises(ToolCallError) as caught:
            await operator.send("alice", "another", key="op-1")
        assert f"already stored message {first.id}" in caught.value.reason
        assert (await operator.inbox("alice")).queued == 1


@pytest.mark.containers
@needs_bwrap
async def test_the_manager_is_stopped_by_the_runaway_guard_like_any_agent(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=RELENTLESS_ECHO, manager_command=RELENTLESS_ECHO, max_exchanges=6)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn_manager(driver="echo")
            await operator.spawn("alice", driver="echo")
            async with open_hive_client(config.agent_socket("hm1nd")) as manager:
                await manager.send("alice", "ping")  # alice answers, hm1nd answers that, and so on
            throttled = ""
            after: int | None = 0
            while not throttled:
                page = await operator.agent_logs("hm1nd", after=after, wait_s=10)
                refused = [e for e in page.events if e.data.get("subtype") == "refused" and e.data.get("to")]
                throttled = str(refused[0].data["message"]) if refused else ""
                after = page.last_id
            assert "have exchanged 6 messages" in throttled
            with Session(open_engine(config.broker_path)) as session:
                pair = (
                    select(func.count()).select_from(MessageRow).where(col(MessageRow.sender).in_(["hm1nd", "alice"]))
                )
                assert session.exec(pair).one() == 6


async def test_a_bridge_started_before_the_daemon_waits_for_it(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    socket = config.agent_socket("alice")
    names: list[object] = []
    answered = anyio.Event()

    async def claude_session() -> None:
        async with bridged_session(socket) as (session, _):
            result = await session.call_tool("whoami", {})
            assert result.structured_content is not None
            names.append(result.structured_content["name"])
            answered.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(claude_session)
            await anyio.wait_all_tasks_blocked()
            assert not socket.exists()
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                await answered.wait()
    assert names == ["alice"]


async def test_refused_sends_are_counted_per_agent_and_shown_in_the_recipients_inbox(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT, max_body_bytes=1000)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        async with open_session(config.agent_socket("alice")) as alice:
            result = await alice.call_tool("send", {"to": "operator", "body": "x" * 2000})
            assert result.is_error
        status = await operator.status("alice")
        assert status.refused == 1
        assert "over the limit of 1000 bytes" in status.last_refusal
        [refusal] = (await operator.inbox()).refused
        assert (refusal.sender, refusal.recipient) == ("alice", "operator")
        assert "over the limit" in refusal.reason


async def test_a_connection_may_read_as_a_bounded_number_of_readers(short_tmpdir: Path) -> None:
    config = hive_config(short_tmpdir, agent_command=IDLE_AGENT)
    async with running_daemon(config), open_hive_client(config.host_socket) as operator:
        await operator.spawn("alice")
        async with open_hive_client(config.agent_socket("alice")) as alice:
            for i in range(wire.MAX_READERS_PER_CONNECTION):
                await alice.recv(after=0, reader=f"r{i}")
            with pytest.raises(ToolCallError) as caught:
                await alice.recv(after=0, reader="one-too-many")
            assert "reuse a reader name" in caught.value.reason
            await alice.recv(after=0, reader="r0")  # a name it has is fine
