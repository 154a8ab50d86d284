"""The SSE streams with a real daemon and real agents: live messages and agent terminals, no gaps or doubles."""

import contextlib
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.dashboard import terminal
from hyperhive_core.dashboard.app import MAX_STREAMS
from hyperhive_core.errors import DaemonUnavailableError
from hyperhive_core.mcp.models import EventView
from tests.core.dashboard._dash import running_dashboard, sse
from tests.helpers import IDLE_AGENT

WAIT_S = 15
ESCAPES: dict[str, Any] = {
    "type": "assistant",
    "message": {"content": [{"type": "text", "text": "hi\x1b[2J\x1b]0;x\x07"}]},
}


async def test_a_committed_message_appears_on_the_stream_at_once(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash,
        open_hive_client(dash.config.host_socket) as operator,
        dash.client() as client,
    ):
        await operator.spawn("alice")
        earlier = await operator.send("alice", "before the page opened")
        with anyio.fail_after(WAIT_S):
            async with client.stream("GET", "/sse/messages") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                events = aiter(sse(response))
                sent = await operator.send("alice", "hello <b>alice</b>")
                event = await anext(events)
        assert earlier.id < sent.id
        assert (event.event, event.id) == ("msg", str(sent.id))  # only what came after the page's view
        assert f'id="m-{sent.id}"' in event.data
        assert "hello &lt;b&gt;alice&lt;/b&gt;" in event.data


async def test_a_reconnect_replays_what_was_missed_exactly_once(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash,
        open_hive_client(dash.config.host_socket) as operator,
        dash.client() as client,
    ):
        await operator.spawn("alice")
        with anyio.fail_after(WAIT_S):
            async with client.stream("GET", "/sse/messages") as response:
                events = aiter(sse(response))
                first = await operator.send("alice", "one")
                seen = [(await anext(events)).id]
            missed = [(await operator.send("alice", f"while away {i}")).id for i in range(3)]
            headers = {"Last-Event-ID": seen[-1]}
            async with client.stream("GET", "/sse/messages", headers=headers) as response:
                events = aiter(sse(response))
                seen += [(await anext(events)).id for _ in missed]
                live = await operator.send("alice", "after the reconnect")
                seen.append((await anext(events)).id)
        assert seen == [str(i) for i in [first.id, *missed, live.id]]


async def test_a_stream_for_one_agent_shows_only_its_messages(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash,
        open_hive_client(dash.config.host_socket) as operator,
        dash.client() as client,
    ):
        await operator.spawn("alice")
        await operator.spawn("bob")
        with anyio.fail_after(WAIT_S):
            async with client.stream("GET", "/sse/messages", params={"agent": "bob", "after": 0}) as response:
                events = aiter(sse(response))
                await operator.send("alice", "not for bob")
                to_bob = await operator.send("bob", "for bob")
                async with open_hive_client(dash.config.agent_socket("alice")) as alice:
                    from_alice = await alice.send("bob", "alice to bob")
                got = [(await anext(events)).id for _ in range(2)]
        assert got == [str(to_bob.id), str(from_alice.id)]


async def test_an_agents_terminal_opens_with_its_history_and_follows_its_turns(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir) as dash,
        open_hive_client(dash.config.host_socket) as operator,
        dash.client() as client,
    ):
        await operator.spawn("alice", driver="echo")
        await operator.send("alice", "first turn")
        with anyio.fail_after(WAIT_S):
            logged = await turn_logged(operator, "alice")
            async with client.stream("GET", "/sse/terminal/alice") as response:
                events = aiter(sse(response))
                history = [await anext(events) for _ in logged]
                await operator.send("alice", "second turn")
                live: list[Any] = []
                while not any("[turn_end]" in e.data for e in live):
                    live.append(await anext(events))
        assert [e.id for e in history] == [str(e.id) for e in logged]
        assert all(e.event == "line" for e in history + live)
        assert any("[received]" in e.data and "first turn" in e.data for e in history)
        assert any("[sent]" in e.data and "echo: second turn" in e.data for e in live)
        assert int(live[0].id) > int(history[-1].id)


async def turn_logged(operator: HiveClient, agent: str) -> list[EventView]:
    """`agent`'s events once a turn of it has ended (the loop reports them at the turn's end)."""
    events: list[EventView] = []
    while not any(e.data.get("subtype") == "turn_end" for e in events):
        page = await operator.agent_logs(agent, after=events[-1].id if events else 0, wait_s=WAIT_S)
        events += page.events
    return events


async def test_a_terminal_resumes_after_its_last_event_id_without_gaps_or_doubles(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash,
        open_hive_client(dash.config.host_socket) as operator,
        dash.client() as client,
    ):
        await operator.spawn("alice")
        async with open_hive_client(dash.config.agent_socket("alice")) as alice:
            await alice.report_events([{"type": "hive", "subtype": "note", "message": f"n{i}"} for i in range(5)])
            ids = [e.id for e in (await operator.agent_logs("alice")).events]
            with anyio.fail_after(WAIT_S):
                async with client.stream("GET", "/sse/terminal/alice", headers={"Last-Event-ID": str(ids[1])}) as r:
                    events = aiter(sse(r))
                    replayed = [await anext(events) for _ in ids[2:]]
                    await alice.report_events([ESCAPES])
                    live = await anext(events)
        assert [e.id for e in replayed] == [str(i) for i in ids[2:]]
        assert [e.data.rpartition("] ")[2] for e in replayed] == [f"n{i}{terminal.RESET}" for i in range(2, 5)]
        # The model's escape sequences arrive as visible text; only our own colour codes are escapes.
        assert "hi\\x1b[2J\\x1b]0;x\\x07" in live.data
        assert "\x1b[2J" not in live.data
        assert "\x07" not in live.data


async def test_the_terminal_of_an_unknown_agent_is_not_found(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        answer = await client.get("/sse/terminal/ghost")
        assert answer.status_code == 404
        assert (await client.get("/terminal/ghost")).status_code == 404
        assert (await client.get("/sse/messages", params={"agent": "NOT A NAME"})).status_code == 400


async def test_stopping_the_daemon_ends_open_streams(short_tmpdir: Path) -> None:
    ended = anyio.Event()
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        opened = anyio.Event()

        async def watch() -> None:
            async with client.stream("GET", "/sse/messages") as response:
                opened.set()
                async for _ in sse(response):
                    pass
            ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with anyio.fail_after(WAIT_S):
                await opened.wait()
            with anyio.fail_after(WAIT_S):
                # The daemon's own shutdown verb: the dashboard ends its streams as it stops.
                async with open_hive_client(dash.config.host_socket) as operator:
                    # It may close the session before its answer is written (as `hivectl shutdown` knows).
                    with contextlib.suppress(DaemonUnavailableError):
                        await operator.shutdown()
                await ended.wait()


async def test_past_its_limit_of_live_streams_the_dashboard_says_try_later(short_tmpdir: Path) -> None:
    async with running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash, dash.client() as client:
        request = (
            f"GET /sse/messages HTTP/1.1\r\nHost: {dash.host}\r\nAuthorization: Bearer {dash.token}\r\n\r\n"
        ).encode()
        host, _, port = dash.host.rpartition(":")
        streams: list[anyio.abc.SocketStream] = []
        try:
            with anyio.fail_after(WAIT_S):
                for _ in range(MAX_STREAMS):
                    stream = await anyio.connect_tcp(host, int(port))
                    streams.append(stream)
                    await stream.send(request)
                    assert (await stream.receive()).startswith(b"HTTP/1.1 200")  # open, and counted
                refused = await client.get("/sse/messages")
        finally:
            for stream in streams:
                await stream.aclose()
    assert refused.status_code == 503
    assert f"already serves {MAX_STREAMS} live streams; try again later" in refused.text
