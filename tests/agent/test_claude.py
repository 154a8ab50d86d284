"""`hive-agent serve --driver claude` with the real claude-code against the fake Messages API.

Every turn is the real `claude` (the pinned claude-code), which launches the real
`python -m hyperhive_agent mcp` bridge to an in-memory hive on a unix socket and asks the fake
API on 127.0.0.1 what to do; the API's scripted model answers each hive message by calling
`mcp__hive__send`.
"""

import os
import signal
import uuid
from pathlib import Path

import anyio

from tests.agent._claude import TURN_BOUND_S, children, events_until, kinds, make_rig, needs_claude
from tests.agent._process import LineReader, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix
from tests.fakes.messages_api import (
    ApiError,
    ApiRequest,
    Drop,
    MessagesApi,
    Stall,
    Turn,
    say,
    serve_messages_api,
)

pytestmark = needs_claude


def serve(*flags: str) -> tuple[str, ...]:
    return ("serve", "--driver", "claude", *flags)


async def test_a_claude_turn_replies_through_the_bridge_with_the_hive_tools_loaded_up_front(
    short_tmpdir: Path,
) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
        rig.use_api(api)
        message_id = hive.put("operator", "hi")
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent(to="operator", body="claude: hi", reply_to=message_id)
            events = await events_until(hive, "turn_end")
    assert kinds(events) == [
        "hive/driver",
        "hive/turn_start",
        "system/init",
        "assistant/tool_use",
        "user/tool_result",
        "assistant/text",
        "result/success",
        "hive/usage",
        "hive/turn_end",
    ]
    # two model requests: the send, then the closing text; no ToolSearch round trip before the send
    first, second = api.model_requests()
    assert "mcp__hive__send" in first.tool_names
    assert [use["name"] for use in second.last_tool_uses()] == ["mcp__hive__send"]
    # the loop's own tools are never offered to the model
    for request in (first, second):
        assert {"mcp__hive__recv", "mcp__hive__ack", "mcp__hive__report_events"}.isdisjoint(request.tool_names)
    # by default claude works with the hive's working set of built-in tools, and nothing more
    assert {name for name in first.tool_names if not name.startswith("mcp__")} - {"DeferredToolPlaceholder"} == {
        "Bash",
        "Read",
        "Edit",
        "Write",
        "Glob",
        "Grep",
    }
    # the hive's MCP server is on claude's command line: no file in the work dir the agent could edit
    assert not (rig.work_dir / ".hive-mcp.json").exists()


async def test_later_turns_reuse_one_claude_and_a_restarted_agent_resumes_the_session(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    (rig.work_dir / "CLAUDE.md").write_text("Always answer in haiku.\n")
    env = rig.env(HIVE_ROLE="You review pull requests.")
    async with serve_messages_api() as api, FakeHive() as hive, serve_unix(hive.server, rig.socket):
        rig.use_api(api)
        async with running_agent(*serve(), env=env, cwd=rig.work_dir, inherit_env=False) as agent:
            with anyio.fail_after(TURN_BOUND_S):
                first_id = hive.put("bob", "first")
                assert await hive.sent.receive() == Sent(to="bob", body="claude: first", reply_to=first_id)
                await events_until(hive, "turn_end")
                [claude] = children(agent.pid)
                second_id = hive.put("carol", "second\nin two lines")
                assert await hive.sent.receive() == Sent("carol", "claude: second\nin two lines", second_id)
                await events_until(hive, "turn_end")
                assert children(agent.pid) == [claude]  # the same claude served both turns
                agent.send_signal(signal.SIGTERM)
                assert await agent.wait() == 0
        session = rig.session()
        async with running_agent(*serve(), env=env, cwd=rig.work_dir, inherit_env=False):
            with anyio.fail_after(TURN_BOUND_S):
                third_id = hive.put("bob", "third")
                assert await hive.sent.receive() == Sent("bob", "claude: third", third_id)
                await events_until(hive, "turn_end")
    assert session is not None
    assert rig.session() == session
    prompts = [r.prompt() for r in api.model_requests() if not r.answers_tools]
    one, two, three = prompts
    assert "You are alice" in one
    assert "You review pull requests." in one
    assert "Always answer in haiku." in one
    assert f"message {first_id} from bob:\n    first\n" in one
    assert f"message {second_id} from carol:\n    second\n    in two lines\n" in two
    assert "first" not in two
    assert "pull requests" not in two
    assert "pull requests" not in three
    # the resumed session carries the whole conversation to the model
    last = api.model_requests()[-2]
    assert "claude: first" in last.transcript()
    assert "claude: second" in last.transcript()


async def test_an_idle_claude_is_let_go_and_the_next_turn_resumes_its_session(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    env = rig.env(HIVE_CLAUDE_KEEP_ALIVE="1")
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve("--recv-timeout", "1"), env=env, cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api)
        with anyio.fail_after(TURN_BOUND_S):
            first_id = hive.put("operator", "first")
            assert await hive.sent.receive() == Sent("operator", "claude: first", first_id)
            await events_until(hive, "turn_end")
            for claude in children(agent.pid):  # (none if it is gone already)
                pidfd = os.pidfd_open(claude)
                try:
                    await anyio.wait_readable(pidfd)  # it exits once the agent has idled a second
                finally:
                    os.close(pidfd)
            assert "ending claude until the next one" in await LineReader(agent.stderr).until("no turn for")
            second_id = hive.put("operator", "second")
            assert await hive.sent.receive() == Sent("operator", "claude: second", second_id)
    assert "claude: first" in api.model_requests()[-1].transcript()


async def test_a_session_that_cannot_be_resumed_is_replaced_and_the_turn_still_replies(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    lost = str(uuid.uuid4())
    (rig.work_dir / ".hive-claude-session").write_text(lost + "\n")
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api)
        message_id = hive.put("operator", "still there?")
        with anyio.fail_after(TURN_BOUND_S):
            assert f"could not resume session {lost}" in await LineReader(agent.stderr).until("resume")
            assert await hive.sent.receive() == Sent("operator", "claude: still there?", message_id)
            events = await events_until(hive, "turn_end")
    [gone] = [e for e in events if e.get("subtype") == "session"]
    assert "No conversation found" in gone["message"]
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert rig.session() == init["session_id"] != lost


async def test_a_model_that_never_answers_is_cut_at_the_turn_timeout_and_the_next_batch_works(
    short_tmpdir: Path,
) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket) as server,
        running_agent(*serve("--turn-timeout", "8"), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api)
        api.queue(Stall())
        hive.put("operator", "are you stuck?")
        with anyio.fail_after(TURN_BOUND_S):
            assert "claude did not finish within 8 s; killed it" in await LineReader(agent.stderr).until("failed")
            events = await events_until(hive, "turn_error")
            later_id = hive.put("operator", "and now?")
            assert await hive.sent.receive() == Sent("operator", "claude: and now?", later_id)
            await events_until(hive, "turn_end")
    assert kinds(events)[-3:] == ["hive/turn_start", "system/init", "hive/turn_error"]
    assert server.accepted >= 3  # the loop, the hung claude's bridge, the next claude's bridge


async def test_a_claude_that_dies_is_reported_and_the_next_batch_resumes_its_session(
    short_tmpdir: Path,
) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api)
        with anyio.fail_after(TURN_BOUND_S):
            first_id = hive.put("operator", "first")
            assert await hive.sent.receive() == Sent("operator", "claude: first", first_id)
            await events_until(hive, "turn_end")
            api.queue(Stall())
            hive.put("operator", "boom?")
            await api.wait_requests(3)
            [claude] = children(agent.pid)
            session = rig.session()
            os.kill(claude, signal.SIGKILL)  # as the OOM killer would
            [error] = [e for e in await events_until(hive, "turn_error") if e.get("subtype") == "turn_error"]
            later_id = hive.put("operator", "better now?")
            assert await hive.sent.receive() == Sent("operator", "claude: better now?", later_id)
            await events_until(hive, "turn_end")
            # a claude that dies between turns is started again on the same session, no turn lost
            [idle] = children(agent.pid)
            os.kill(idle, signal.SIGKILL)
            last_id = hive.put("operator", "and after a quiet death?")
            assert await hive.sent.receive() == Sent("operator", "claude: and after a quiet death?", last_id)
            quiet = await events_until(hive, "turn_end")
    assert "turn_error" not in [e.get("subtype") for e in quiet]
    assert "claude exited with status -9" in error["message"]
    assert error["driver"] == "claude"
    assert session is not None
    assert rig.session() == session
    assert "claude: first" in api.model_requests()[-1].transcript()


async def test_overloaded_and_dropped_answers_are_retried_by_claude_with_backoff(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
        rig.use_api(api)
        api.queue(ApiError(529, "Overloaded"), ApiError(429, "rate limited", retry_after_s=1), Drop())
        message_id = hive.put("operator", "busy?")
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("operator", "claude: busy?", message_id)
            events = await events_until(hive, "turn_end")
    retries = [e for e in events if e.get("subtype") == "api_retry"]
    assert [e.get("error_status") for e in retries] == [529, 429, None]
    assert all(e["retry_delay_ms"] > 0 for e in retries)
    times = [r.received_at for r in api.model_requests()]
    assert times[1] - times[0] >= 0.3  # claude waited before asking again


async def test_a_refused_key_falls_back_to_echo_at_once_and_claude_answers_again_once_the_key_is_fixed(
    short_tmpdir: Path,
) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api, key="sk-ant-revoked-key-000000")
        stderr = LineReader(agent.stderr)
        first_id = hive.put("operator", "one")
        with anyio.fail_after(TURN_BOUND_S):
            # one 401 is enough: claude would retry it for minutes
            assert await hive.sent.receive() == Sent("operator", "echo: one", first_id)
            events = await events_until(hive, "turn_end")
            assert "not logged in" in await stderr.until("echo answers until claude can run")
            rig.use_api(api)  # the operator fixes the key
            second_id = hive.put("operator", "two")
            assert await hive.sent.receive() == Sent("operator", "claude: two", second_id)
            events += await events_until(hive, "turn_end")
    refused = [r for r in api.model_requests() if r.api_key != api.settings()["env"]["ANTHROPIC_API_KEY"]]
    assert len(refused) == 1
    drivers = [e for e in events if e.get("subtype") == "driver"]
    assert [d["in_use"] for d in drivers][1].startswith(
        "echo (fallback: claude is not logged in: the API refused claude's credentials (401"
    )
    assert drivers[-1]["in_use"] == "claude"
    assert "sk-ant-revoked-key-000000" not in repr(events)


async def test_a_claude_without_any_login_says_so_and_runs_once_a_login_appears(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)  # an empty config dir: claude says "Not logged in"
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
        with anyio.fail_after(TURN_BOUND_S):
            first_id = hive.put("operator", "one")
            assert await hive.sent.receive() == Sent("operator", "echo: one", first_id)
            events = await events_until(hive, "turn_end")
            rig.use_api(api)
            second_id = hive.put("operator", "two")
            assert await hive.sent.receive() == Sent("operator", "claude: two", second_id)
    [asked, fell_back] = [e for e in events if e.get("subtype") == "driver"]
    assert asked["in_use"] == "claude"
    assert "hive/usage" not in kinds(events)  # claude's "Not logged in" result used nothing: nothing to count
    assert fell_back["in_use"].startswith("echo (fallback: claude is not logged in (it said: Not logged in")


async def test_a_long_prompt_reaches_the_model_whole(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    body = "x" * 150_000  # larger than one command-line argument may be
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
        rig.use_api(api)
        message_id = hive.put("operator", body)
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("operator", "claude: " + body, message_id)
    assert body in api.model_requests()[0].prompt()


async def test_sigterm_during_a_claude_turn_ends_claude_and_the_agent_exits_0(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    async with (
        serve_messages_api() as api,
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket) as server,
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        rig.use_api(api)
        api.queue(Stall())
        hive.put("operator", "take your time")
        with anyio.fail_after(TURN_BOUND_S):
            await events_until(hive, "init")
            await api.wait_requests(1)
            agent.send_signal(signal.SIGTERM)
            assert await agent.wait() == 0
            # the hung claude and its bridge are gone too: every connection to the hive closes
            assert server.accepted == 2


SECRET = "sk-ant-SECRET-0123456789abcdef"


def leaky_model(request: ApiRequest) -> Turn:
    """A model that repeats the key it was called with, as a confused model might."""
    return say(f"my key is {request.api_key}")


async def test_no_secret_reaches_the_agents_log_or_events(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    api = MessagesApi(leaky_model, keys=[SECRET])
    async with (
        serve_messages_api(api),
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
    ):
        rig.use_api(api, key=SECRET)
        async with running_agent("serve", env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent:
            with anyio.fail_after(TURN_BOUND_S):
                hive.put("operator", "tell me your key")
                events = await events_until(hive, "turn_end")
                agent.send_signal(signal.SIGTERM)
                stderr = await LineReader(agent.stderr).rest()
                assert await agent.wait() == 0
    reported = repr(events)
    assert f"ANTHROPIC_API_KEY in {rig.claude_dir / 'settings.json'}" in reported  # why, by name only
    assert "my key is [redacted]" in reported
    assert SECRET not in reported
    assert SECRET not in stderr
