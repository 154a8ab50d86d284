"""`hive-agent serve --driver claude` against the fake claude (tests/fakes/claude), a real SDK client.

Every turn is a real `claude` process that launches the real `python -m hyperhive_agent mcp`
bridge, which reaches an in-memory hive on a unix socket.
"""

import signal
from pathlib import Path

import anyio

from tests.agent._claude import TURN_BOUND_S, events_until, kinds, make_rig
from tests.agent._process import LineReader, running_agent
from tests.agent._server import FakeHive, Sent, serve_unix

SECRET = "sk-test-SECRET-0123456789"


def serve(*flags: str) -> tuple[str, ...]:
    return ("serve", "--driver", "claude", *flags)


async def test_a_claude_turn_replies_through_the_bridge_and_reports_its_events_in_order(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
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
        "hive/turn_end",
    ]
    [run] = rig.runs()
    argv: list[str] = run["argv"]
    assert argv[:2] == ["-p", run["prompt"]]
    assert f"--mcp-config={rig.work_dir / '.hive-mcp.json'}" in argv
    assert {"--strict-mcp-config", "--verbose"} <= set(argv)
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[-3:] == ["--disallowedTools", "mcp__hive__report_events", "mcp__hive__recv"]
    assert "mcp__hive__recv" not in events[2]["tools"]


async def test_the_second_turn_resumes_the_session_with_only_the_new_messages(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    (rig.work_dir / "CLAUDE.md").write_text("Always answer in haiku.\n")
    env = rig.env(HIVE_ROLE="You review pull requests.")
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=env, cwd=rig.work_dir, inherit_env=False),
    ):
        with anyio.fail_after(TURN_BOUND_S):
            first_id = hive.put("bob", "first")
            assert await hive.sent.receive() == Sent(to="bob", body="claude: first", reply_to=first_id)
            first = await events_until(hive, "turn_end")
            second_id = hive.put("carol", "second\nin two lines")
            assert await hive.sent.receive() == Sent("carol", "claude: second\nin two lines", second_id)
            await events_until(hive, "turn_end")
    [init] = [e for e in first if e.get("subtype") == "init"]
    one, two = rig.runs()
    assert "--resume" not in one["argv"]
    assert two["argv"][two["argv"].index("--resume") + 1] == init["session_id"]
    assert "You are alice" in one["prompt"]
    assert "You review pull requests." in one["prompt"]
    assert "Always answer in haiku." in one["prompt"]
    assert f"message {first_id} from bob:\n    first\n" in one["prompt"]
    assert "You are alice" in two["prompt"]
    assert f"message {second_id} from carol:\n    second\n    in two lines\n" in two["prompt"]
    assert "first" not in two["prompt"]
    assert "pull requests" not in two["prompt"]


async def test_a_session_that_cannot_be_resumed_is_replaced_and_the_turn_still_replies(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    (rig.work_dir / ".hive-claude-session").write_text("lost-session\n")
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        message_id = hive.put("operator", "still there?")
        with anyio.fail_after(TURN_BOUND_S):
            assert "could not resume session lost-session" in await LineReader(agent.stderr).until("resume")
            assert await hive.sent.receive() == Sent("operator", "claude: still there?", message_id)
            events = await events_until(hive, "turn_end")
    [lost] = [e for e in events if e.get("subtype") == "session"]
    assert "No conversation found with session ID: lost-session" in lost["message"]
    [init] = [e for e in events if e.get("subtype") == "init"]
    resumed, fresh = rig.runs()
    assert resumed["argv"][resumed["argv"].index("--resume") + 1] == "lost-session"
    assert "--resume" not in fresh["argv"]
    assert (rig.work_dir / ".hive-claude-session").read_text().strip() == init["session_id"]


async def test_a_hung_claude_is_killed_at_the_turn_timeout_and_the_next_batch_works(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket) as server,
        running_agent(*serve("--turn-timeout", "5"), env=rig.env(mode="hang,reply"), cwd=rig.work_dir,
                      inherit_env=False) as agent,
    ):  # fmt: skip
        hive.put("operator", "are you stuck?")
        with anyio.fail_after(TURN_BOUND_S):
            assert "claude did not finish within 5 s; killed it" in await LineReader(agent.stderr).until("failed")
            events = await events_until(hive, "turn_error")
            # the hung claude's bridge went with it: its connection to the hive is closed
            later_id = hive.put("operator", "and now?")
            assert await hive.sent.receive() == Sent("operator", "claude: and now?", later_id)
            await events_until(hive, "turn_end")
    assert kinds(events)[-3:] == ["hive/turn_start", "system/init", "hive/turn_error"]
    assert server.accepted >= 3  # the loop, the hung run's bridge, the next run's bridge


async def test_a_crashing_claude_is_reported_with_its_stderr_and_the_loop_carries_on(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(mode="crash,reply"), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        hive.put("operator", "boom?")
        with anyio.fail_after(TURN_BOUND_S):
            failed = await LineReader(agent.stderr).until("failed")
            [error] = [e for e in await events_until(hive, "turn_error") if e.get("subtype") == "turn_error"]
            later_id = hive.put("operator", "better now?")
            assert await hive.sent.receive() == Sent("operator", "claude: better now?", later_id)
    assert "claude exited with status 2" in failed
    assert "simulated crash" in error["message"]
    assert error["driver"] == "claude"


async def test_a_claude_that_is_not_logged_in_hands_this_and_later_batches_to_echo_saying_so_once(
    short_tmpdir: Path,
) -> None:
    rig = make_rig(short_tmpdir)  # no credentials
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        with anyio.fail_after(TURN_BOUND_S):
            first_id = hive.put("operator", "one")
            assert await hive.sent.receive() == Sent("operator", "echo: one", first_id)
            events = await events_until(hive, "turn_end")
            second_id = hive.put("operator", "two")
            assert await hive.sent.receive() == Sent("operator", "echo: two", second_id)
            await events_until(hive, "turn_end")
            agent.send_signal(signal.SIGTERM)
            stderr = await LineReader(agent.stderr).rest()
            assert await agent.wait() == 0
    [fallback] = [line for line in stderr.splitlines() if "from now on" in line]
    assert "claude is not logged in" in fallback
    assert "Not logged in" in fallback
    assert [e["driver"] for e in events if e.get("subtype") == "driver"] == ["claude", "echo"]
    assert len(rig.runs()) == 1


async def test_a_prompt_too_long_for_the_command_line_reaches_claude_on_stdin(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    body = "x" * 150_000
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent(*serve(), env=rig.env(), cwd=rig.work_dir, inherit_env=False),
    ):
        message_id = hive.put("operator", body)
        with anyio.fail_after(TURN_BOUND_S):
            assert await hive.sent.receive() == Sent("operator", "claude: " + body, message_id)
    [run] = rig.runs()
    assert run["argv"][0] == "-p"
    assert run["argv"][1].startswith("--")
    assert body in run["prompt"]


async def test_sigterm_during_a_claude_turn_ends_claude_and_the_agent_exits_0(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)
    rig.log_in()
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket) as server,
        running_agent(*serve(), env=rig.env(mode="hang"), cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        hive.put("operator", "take your time")
        with anyio.fail_after(TURN_BOUND_S):
            await events_until(hive, "init")
            agent.send_signal(signal.SIGTERM)
            assert await agent.wait() == 0
            # the hung claude and its bridge are gone too: every connection to the hive closes
            assert server.accepted == 2


async def test_no_secret_from_the_environment_reaches_the_agents_log_or_events(short_tmpdir: Path) -> None:
    rig = make_rig(short_tmpdir)  # logged in only by the API key
    env = rig.env(mode="leak,reply", ANTHROPIC_API_KEY=SECRET)
    async with (
        FakeHive() as hive,
        serve_unix(hive.server, rig.socket),
        running_agent("serve", env=env, cwd=rig.work_dir, inherit_env=False) as agent,
    ):
        with anyio.fail_after(TURN_BOUND_S):
            hive.put("operator", "tell me your key")
            events = await events_until(hive, "turn_error")
            message_id = hive.put("operator", "fine")
            assert await hive.sent.receive() == Sent("operator", "claude: fine", message_id)
            events += await events_until(hive, "turn_end")
            agent.send_signal(signal.SIGTERM)
            stderr = await LineReader(agent.stderr).rest()
            assert await agent.wait() == 0
    reported = repr(events)
    assert "ANTHROPIC_API_KEY from the environment" in reported  # why auto chose claude, by name only
    assert "[redacted]" in reported
    assert SECRET not in reported
    assert "[redacted]" in stderr
    assert SECRET not in stderr
