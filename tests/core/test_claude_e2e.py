"""End to end with the real daemon, the real claude-code and the fake Messages API.

The daemon starts `hive-agent serve` / `hive-mind serve` in its sandbox (bubblewrap when present)
with the operator's claude config dir bound in; its `settings.json` sends claude to a fake API on
127.0.0.1 (agents share the host's network); claude launches the real bridge, which reaches the
agent's socket; every turn's events land in the daemon's event log.
"""

import os
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.daemon import running_daemon
from hyperhive_core.mcp.models import MessageView
from tests.agent._claude import claude_path, needs_claude
from tests.fakes.messages_api import (
    DUMMY_KEY,
    ApiRequest,
    MessagesApi,
    Reply,
    ToolUse,
    Turn,
    call,
    replying_model,
    say,
    send,
    serve_messages_api,
)
from tests.helpers import hive_config

pytestmark = needs_claude

SECRET = "sk-test-SECRET-0123456789"
BOUND_S = 90.0
# Every tool the daemon offers an agent or the manager, as claude names them.
HIVE_TOOLS = (
    *("send", "recv", "ack", "inbox", "whoami", "peers", "report_events"),
    *("spawn", "kill", "rebuild", "propose", "proposals", "list_agents", "agent_status"),
)


async def events_until(operator: HiveClient, agent: str, subtype: str, *, after: int | None = None) -> list[Any]:
    """The agent's stored events (after event id `after`), followed until one has `subtype`."""
    seen: list[dict[str, Any]] = []
    while True:
        page = await operator.agent_logs(agent, after=after, wait_s=5)
        seen += [event.data | {"_id": event.id} for event in page.events]
        after = page.last_id if page.last_id is not None else after
        if any(event.get("subtype") == subtype for event in seen):
            return seen


@pytest.fixture
def claude_dir(short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real claude on the daemon's PATH (which agents inherit) and an operator's claude config dir."""
    monkeypatch.setenv("PATH", claude_path())
    # the operator's shell may hold a key; the daemon must not hand it to agents
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    path = short_tmpdir / "claude"
    path.mkdir()
    return path


def instructions_of(request: ApiRequest) -> str:
    """The hive server's instructions as claude put them in the system prompt."""
    return request.context_text.split("\n## hive\n", 1)[1].split("\n\n", 1)[0]


async def test_a_claude_agent_answers_the_operator_and_its_turn_is_in_its_logs(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    async with serve_messages_api() as api:
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice", role="You answer questions.")
                sent = await operator.send("alice", "hello")
                got = (await operator.recv(timeout_s=BOUND_S)).messages
                assert [(m.sender, m.body, m.reply_to) for m in got] == [("alice", "claude: hello", sent.id)]
                events = await events_until(operator, "alice", "turn_end")
                status = await operator.status("alice")
                # What the operator sees: `hivectl logs alice`, the whole command, shows claude's tool call.
                shown = await anyio.run_process(
                    [sys.executable, "-m", "hyperhive_core", "--run-dir", str(config.run_dir), "logs", "alice"],
                    env={**os.environ, "COLUMNS": "300"},
                )
    assert (status.driver, status.driver_in_use) == ("auto", "claude")
    logs = shown.stdout.decode()
    assert "→ mcp__hive__send" in logs
    assert "turn done in" in logs
    subtypes = [e.get("subtype") for e in events]
    assert subtypes[0] == "driver"
    assert "using claude" in events[0]["message"]
    assert {"turn_start", "init", "success", "turn_end"} <= set(subtypes)
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert init["cwd"] == str(config.agent_state_dir("alice") / "work")
    # the model is offered the hive's tools at once, never the loop's own, and the server's
    # instructions name no tool it was not given
    first = api.model_requests()[0]
    assert "mcp__hive__send" in first.tool_names
    said = instructions_of(first)
    assert "You are alice" in said
    for tool in HIVE_TOOLS:
        if f"mcp__hive__{tool}" not in first.tool_names:
            assert re.search(rf"\b{tool}\b", said) is None, f"the instructions name {tool}, which claude hides"
    # no secret, neither the operator's shell key nor claude's own, in the logs or events
    agent_log = (config.agent_state_dir("alice") / "agent.log").read_text()
    for secret in (SECRET, DUMMY_KEY):
        assert secret not in logs
        assert secret not in agent_log
        assert secret not in repr(events)
    assert all(r.api_key == DUMMY_KEY for r in api.model_requests())


async def test_a_refused_key_shows_as_not_logged_in_in_status_and_recovers_when_the_key_is_fixed(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    async with serve_messages_api() as api:
        api.write_settings(claude_dir, key="sk-ant-revoked-0000000000")
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                await operator.send("alice", "one")
                [echoed] = (await operator.recv(timeout_s=BOUND_S)).messages
                events = await events_until(operator, "alice", "turn_end")
                refused = await operator.status("alice")
                api.write_settings(claude_dir)  # the operator fixes the key
                await operator.send("alice", "two")
                [answered] = (await operator.recv(timeout_s=BOUND_S)).messages
                await events_until(operator, "alice", "turn_end", after=events[-1]["_id"])
                fixed = await operator.status("alice")
    assert echoed.body == "echo: one"
    assert refused.driver_in_use.startswith(
        "echo (fallback: claude is not logged in: the API refused claude's credentials (401"
    )
    assert answered.body == "claude: two"
    assert fixed.driver_in_use == "claude"
    assert sum(1 for r in api.model_requests() if r.api_key != DUMMY_KEY) == 1  # no minutes of retries


async def test_after_a_daemon_restart_the_agent_resumes_its_claude_session(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    async with serve_messages_api() as api:
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                await operator.send("alice", "remember me")
                assert [m.body for m in (await operator.recv(timeout_s=BOUND_S)).messages] == ["claude: remember me"]
            session = (config.agent_state_dir("alice") / "work" / ".hive-claude-session").read_text()
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.send("alice", "still you?")
                assert [m.body for m in (await operator.recv(timeout_s=BOUND_S)).messages] == ["claude: still you?"]
    assert (config.agent_state_dir("alice") / "work" / ".hive-claude-session").read_text() == session
    last = api.model_requests()[-1]
    assert "remember me" in last.transcript()


WORKERS = ("alice", "bob")
TASK = "count the words of 'a b c' and of 'd e'"


def manager_model(request: ApiRequest) -> Reply:
    """hm1nd proposes two agents for the operator's task, gives them their parts once the operator
    approved both (the operator's messages say so), then reports their answers."""
    me = re.match(r"You are (\S+),", request.prompt())
    if me is None or me.group(1) != "hm1nd":
        return replying_model(request)  # the workers answer what they are given
    if request.answers_tools:
        return say("Done for now.")
    messages = request.hive_messages()
    if any(m.sender == "operator" and m.body == TASK for m in messages):
        proposals = (
            ToolUse("mcp__hive__spawn", {"name": name, "role": "counts words", "reason": "to split the count"})
            for name in WORKERS
        )
        return call(*proposals)
    applied = set(re.findall(r"\(spawn (alice|bob)\): approved by operator and applied", request.transcript()))
    if any(m.sender == "operator" for m in messages):
        if applied == set(WORKERS):
            return call(send("alice", "count the words of 'a b c'"), send("bob", "count the words of 'd e'"))
        return say("Waiting for the operator to approve the other agent.")
    answers = re.findall(r"message \d+ from (alice|bob)[^:]*:\n    (.*)", request.transcript().replace("\\n", "\n"))
    heard = dict(answers)
    if set(heard) == set(WORKERS):
        summary = "; ".join(f"{name}: {heard[name]}" for name in WORKERS)
        return call(send("operator", f"done: {summary}"))
    return say("Waiting for the other agent.")


async def test_the_manager_splits_a_task_between_two_agents_the_operator_approves_and_reports_to_the_operator(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    async with serve_messages_api(MessagesApi(manager_model)) as api:
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn_manager()
                await operator.send("hm1nd", TASK)
                # The manager's spawns are proposals: nothing runs until the operator approves them.
                await events_until(operator, "hm1nd", "turn_end")
                proposals = await operator.approvals()
                assert sorted(p.summary for p in proposals) == ["spawn alice", "spawn bob"]
                assert [a.name for a in await operator.list_agents()] == ["hm1nd"]
                for proposal in proposals:
                    await operator.approve(proposal.id)
                [report] = (await operator.recv(timeout_s=BOUND_S)).messages
                agents = await operator.list_agents()
                alice = await events_until(operator, "alice", "turn_end")
    assert report.sender == "hm1nd"
    assert report.body == ("done: alice: claude: count the words of 'a b c'; bob: claude: count the words of 'd e'")
    assert {a.name: a.role for a in agents} == {"alice": "counts words", "bob": "counts words", "hm1nd": ""}
    assert any(e.get("subtype") == "init" for e in alice)  # a claude turn of its own
    # the manager's first request already offers its lifecycle tools, loaded up front
    first = next(r for r in api.model_requests() if "You are hm1nd" in r.prompt())
    assert {"mcp__hive__spawn", "mcp__hive__list_agents", "mcp__hive__send"} <= set(first.tool_names)
    assert "mcp__hive__recv" not in first.tool_names
    assert re.search(r"\brecv\b", instructions_of(first)) is None


async def recv_all(operator: HiveClient, count: int) -> list[MessageView]:
    """The operator's next `count` messages, in the order they were stored."""
    got: list[MessageView] = []
    while len(got) < count:
        got += (await operator.recv(timeout_s=BOUND_S, max=count - len(got))).messages
    return got


async def test_a_spent_budget_pauses_a_claude_agent_with_its_messages_queued_until_the_operator_raises_it(
    short_tmpdir: Path, claude_dir: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=claude_dir)
    async with serve_messages_api() as api:
        api.write_settings(claude_dir)
        with anyio.fail_after(BOUND_S):
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                await operator.spawn("alice")
                await operator.set_budget("alice", tokens_total=1)  # one turn spends it
                await operator.send("alice", "one")
                first = await recv_all(operator, 2)  # alice's answer, and the daemon's notice
                await operator.send("alice", "two")
                held = await events_until(operator, "alice", "held")
                inbox = await operator.inbox("alice")
                paused = await operator.status("alice")
                requests_while_paused = len(api.model_requests())
                await operator.set_budget("alice", tokens_total=100_000)
                second = await recv_all(operator, 2)  # the notice that alice resumes, and her answer
                await events_until(operator, "alice", "turn_end", after=held[-1]["_id"])
                done = await operator.status("alice")
    assert sorted((m.sender, m.body.split(":")[0]) for m in first) == [("alice", "claude"), ("hive", "budget")]
    assert (inbox.queued, inbox.delivered, [m.body for m in inbox.messages]) == (1, 0, ["two"])
    assert paused.paused.startswith("budget: alice used 240 tokens of its 1-token total budget")
    assert [e.get("subtype") for e in held if e.get("subtype") in ("usage", "paused", "held")] == [
        "usage",
        "paused",
        "held",
    ]
    assert sorted(m.body for m in second) == [
        "budget: alice resume their turns: the operator changed the budget.",
        "claude: two",
    ]
    # nothing reached the model while alice was paused; her second turn came after the raise
    replies = [r for r in api.model_requests() if isinstance(r.reply, Turn)]
    assert requests_while_paused == 2
    assert len(replies) == 4
    assert "two" in replies[2].prompt()
    # what the daemon counted is what the (fake) API billed: input and output tokens of every answer
    billed = sum(r.reply.input_tokens + r.reply.output_tokens for r in replies if isinstance(r.reply, Turn))
    assert (done.usage_total.tokens, done.usage_total.turns, done.paused) == (billed, 2, "")
    assert done.usage_total.cost_usd > 0
