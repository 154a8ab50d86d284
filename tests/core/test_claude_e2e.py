"""End to end with the real daemon: agents and the manager answered by the fake claude (tests/fakes).

The daemon starts `hive-agent serve` / `hive-mind serve` in its sandbox (bubblewrap when present)
with the operator's claude config dir bound in; the fake claude launches the real bridge, which
reaches the agent's socket; every turn's events land in the daemon's event log.
"""

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.daemon import running_daemon
from tests.agent._claude import FAKES_DIR, VENV_BIN
from tests.helpers import hive_config

SECRET = "sk-test-SECRET-0123456789"
BOUND_S = 60.0


async def events_until(operator: HiveClient, agent: str, subtype: str) -> list[dict[str, Any]]:
    """The agent's stored events, followed until one has `subtype`."""
    seen: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        page = await operator.agent_logs(agent, after=after, wait_s=5)
        seen += [event.data for event in page.events]
        after = page.last_id if page.last_id is not None else after
        if any(event.get("subtype") == subtype for event in seen):
            return seen


@pytest.fixture
def logged_in_claude(short_tmpdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake claude on the daemon's PATH (which agents inherit) and an operator's login dir."""
    monkeypatch.setenv("PATH", f"{FAKES_DIR}:{VENV_BIN}:{os.environ.get('PATH', '')}")
    # the operator's shell may hold a key; the daemon must not hand it to agents
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    claude_dir = short_tmpdir / "claude"
    claude_dir.mkdir()
    (claude_dir / ".credentials.json").write_text('{"claudeAiOauth": {"accessToken": "dummy"}}')
    return claude_dir


async def test_a_claude_agent_answers_the_operator_and_its_turn_is_in_its_logs(
    short_tmpdir: Path, logged_in_claude: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=logged_in_claude)
    with anyio.fail_after(BOUND_S):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice", role="You answer questions.")
            sent = await operator.send("alice", "hello")
            got = (await operator.recv(timeout_s=BOUND_S)).messages
            assert [(m.sender, m.body, m.reply_to) for m in got] == [("alice", "claude: hello", sent.id)]
            events = await events_until(operator, "alice", "turn_end")
            # What the operator sees: `hivectl logs alice`, the whole command, shows claude's tool call.
            shown = await anyio.run_process(
                [sys.executable, "-m", "hyperhive_core", "--run-dir", str(config.run_dir), "logs", "alice"],
                env={**os.environ, "COLUMNS": "300"},
            )
    logs = shown.stdout.decode()
    assert "→ mcp__hive__send" in logs
    assert "turn done in" in logs
    assert SECRET not in logs
    subtypes = [e.get("subtype") for e in events]
    assert subtypes[0] == "driver"
    assert "using claude" in events[0]["message"]
    assert {"turn_start", "init", "success", "turn_end"} <= set(subtypes)
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert "mcp__hive__send" in init["tools"]
    assert "mcp__hive__recv" not in init["tools"]
    agent_log = (config.agent_state_dir("alice") / "agent.log").read_text()
    assert SECRET not in agent_log
    assert SECRET not in repr(events)


async def test_the_manager_answers_through_claude_with_the_lifecycle_tools_at_hand(
    short_tmpdir: Path, logged_in_claude: Path
) -> None:
    config = hive_config(short_tmpdir, claude_config_dir=logged_in_claude)
    with anyio.fail_after(BOUND_S):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn_manager()
            sent = await operator.send("hm1nd", "how big is the hive?")
            got = (await operator.recv(timeout_s=BOUND_S)).messages
            assert [(m.sender, m.body, m.reply_to) for m in got] == [("hm1nd", "claude: how big is the hive?", sent.id)]
            events = await events_until(operator, "hm1nd", "turn_end")
    [init] = [e for e in events if e.get("subtype") == "init"]
    assert {"mcp__hive__spawn", "mcp__hive__kill", "mcp__hive__list_agents"} <= set(init["tools"])
